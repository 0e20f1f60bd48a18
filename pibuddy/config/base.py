"""What every config section shares: the frozen, strict base model and common field types."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX: Final = "PIBUDDY_"
DEFAULT_OTA_URL: Final = "https://api.tenclass.net/xiaozhi/ota/"
SYSTEM_STATE_DIR: Final = Path("/var/lib/pibuddy")
SYSTEM_CONFIG_PATH: Final = Path("/etc/pibuddy/config.yaml")

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    """Base of every section: immutable, and unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


Fraction = Annotated[float, Field(ge=0, le=1)]


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
