"""Which OpenClaw services a config enables: the node, the operator brain, the MQTT bridge."""

from __future__ import annotations

from pibuddy.config import Config
from pibuddy.events import EventBus
from pibuddy.supervisor import Service
from pibuddy.tools.registry import ToolRegistry


def openclaw_services(config: Config, bus: EventBus, registry: ToolRegistry) -> list[Service]:
    """The bridge first (a node on the mqtt transport reaches the gateway through it), then the sessions."""
    from pibuddy.openclaw.brain import OpenClawBrain  # noqa: PLC0415
    from pibuddy.openclaw.bridge import OpenClawBridge  # noqa: PLC0415 (only what is enabled gets imported)
    from pibuddy.openclaw.node import OpenClawNode  # noqa: PLC0415

    cfg = config.openclaw
    services: list[Service] = []
    if cfg.bridge_enabled:
        services.append(OpenClawBridge(config))
    if cfg.enabled:
        services.append(OpenClawNode(config, bus=bus, registry=registry))
        if cfg.operator_enabled:
            services.append(OpenClawBrain(config, bus=bus))
    return services
