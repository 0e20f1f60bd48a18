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
    if config.upstream.enabled:
        from pibuddy.tools.catalog import build_registry  # noqa: PLC0415
        from pibuddy.upstream.audio_port import NoAudio  # noqa: PLC0415
        from pibuddy.upstream.service import UpstreamService  # noqa: PLC0415

        services.append(UpstreamService(config, bus=bus, registry=build_registry(config), audio=NoAudio()))
    if not services:
        _LOGGER.warning("nothing is enabled in the config: PiBuddy will idle (see config.yaml)")
    return services
