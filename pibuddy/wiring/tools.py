"""The one place that decides which tools PiBuddy offers: built-ins first, then each enabled driver's."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pibuddy.config import Config
from pibuddy.supervisor import Service
from pibuddy.tools.builtin import builtin_tools
from pibuddy.tools.host import Host
from pibuddy.tools.registry import ToolRegistry
from pibuddy.tools.volume import SoftwareGain, SystemVolume

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Toolbox:
    """The tools, and the services that keep their drivers connected (for the supervisor to run)."""

    registry: ToolRegistry
    services: list[Service]


def build_toolbox(config: Config, *, speaker: SoftwareGain | None = None, volume: SystemVolume | None = None
                  ) -> Toolbox:
    """Every tool `config` enables, plus the drivers' services.

    `speaker` is PiBuddy's own speaker when it runs one: its software gain sets the volume where no system
    mixer works. `volume`: the mixer the volume tool uses (default: one built for `speaker`).

    Order matters (the list is part of the LLM prompt, keep its prefix stable): the firmware-like built-ins,
    then drivers in a fixed order as they are added here (Home Assistant, MIoT, BLE, GPIO).
    """
    registry = ToolRegistry()
    services: list[Service] = []
    if config.tools.builtin:
        for builtin in builtin_tools(volume or SystemVolume(speaker=speaker), Host()):
            registry.register(builtin)
    if config.homeassistant.enabled:
        from pibuddy.drivers.homeassistant import (  # noqa: PLC0415 (13 MB of imports: only when on)
            HomeAssistantService,
            homeassistant_tools,
        )

        homeassistant = HomeAssistantService(config.homeassistant)
        for ha_tool in homeassistant_tools(homeassistant):
            registry.register(ha_tool)
        services.append(homeassistant)
    if config.miot.enabled:
        from pibuddy.drivers.miot import MiotDriver, MiotService, miot_tools  # noqa: PLC0415 (20 MB: only when on)

        miot = MiotDriver(config.miot, config.device.resolved_state_dir)
        if miot.configured:  # else the driver is simply off (logged once)
            for miot_tool in miot_tools(miot):
                registry.register(miot_tool)
            services.append(MiotService(miot))
        else:
            _LOGGER.info("miot is enabled but has no devices and no Mi account: run `pibuddy miot setup`")
    if config.ble.enabled:
        from pibuddy.drivers.ble import BleDriver, BleService, ble_tools  # noqa: PLC0415 (bleak is slow to import)

        ble = BleDriver(config.ble)
        for ble_tool in ble_tools(ble):
            registry.register(ble_tool)
        services.append(BleService(ble))
    if config.gpio.enabled and config.gpio.relays:
        from pibuddy.drivers.gpio import Relays, RelayService, gpio_tools  # noqa: PLC0415 (gpiozero: only when on)

        relays = Relays(config.gpio)
        for gpio_tool in gpio_tools(relays):
            registry.register(gpio_tool)
        services.append(RelayService(relays))
    return Toolbox(registry, services)


def build_registry(config: Config) -> ToolRegistry:
    """The tools alone; drivers whose service is not running connect on demand for each call."""
    return build_toolbox(config).registry
