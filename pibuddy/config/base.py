"""What every config section shares: the frozen, strict base model and common field types."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo
from pydantic_core import PydanticCustomError

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


def require_token_off_loopback(token: SecretStr | None, info: ValidationInfo, *, enabled: str, host: str
                               ) -> SecretStr | None:
    """The validator of a listener's token: required when the listener is `enabled` and its `host` is not a
    loopback address (nobody else on the LAN may use it without one)."""
    if info.data.get(enabled) and token is None and not is_loopback(info.data.get(host, "127.0.0.1")):
        raise PydanticCustomError("token_required", f"required when {host} is not a loopback address")
    return token


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
