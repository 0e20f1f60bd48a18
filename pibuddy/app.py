"""Wiring: which services `pibuddy run` starts for a given config."""

from __future__ import annotations

import logging

from pibuddy.config import Config
from pibuddy.events import EventBus
from pibuddy.supervisor import Service

_LOGGER = logging.getLogger(__name__)


def build_services(config: Config, bus: EventBus) -> list[Service]:
    """The services this config enables, in start order."""
    services: list[Service] = []
    if not services:
        _LOGGER.warning("nothing is enabled in the config: PiBuddy will idle (see config.yaml)")
    return services
