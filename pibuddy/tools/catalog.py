"""The one place that decides which tools PiBuddy offers: built-ins first, then each enabled driver's."""

from __future__ import annotations

from pibuddy.config import Config
from pibuddy.tools.builtin import builtin_tools
from pibuddy.tools.host import Host
from pibuddy.tools.registry import ToolRegistry
from pibuddy.tools.volume import SystemVolume


def build_registry(config: Config) -> ToolRegistry:
    """A registry holding every tool `config` enables.

    Order matters (the list is part of the LLM prompt, keep its prefix stable): the firmware-like built-ins,
    then drivers in a fixed order as they are added here (Home Assistant, MIoT, BLE, GPIO).
    """
    registry = ToolRegistry()
    if config.tools.builtin:
        for builtin in builtin_tools(SystemVolume(), Host()):
            registry.register(builtin)
    return registry
