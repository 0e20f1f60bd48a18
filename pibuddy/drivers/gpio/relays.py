"""Configured outputs (relays) as the `gpio_switch` tool: on, off or state, by name, alias or room.

`Relays.open()` claims the pins and sets each relay's initial state; the `RelayService` does that when
PiBuddy starts (so a relay is in its configured state from boot), and a tool call opens them on demand when
no service runs. Off a Pi the relays stay off and the tool says why.
"""

from __future__ import annotations

import logging
from typing import Any

from gpiozero import Factory, OutputDevice

from pibuddy.config import GpioConfig, RelayConfig
from pibuddy.drivers.gpio.pins import GpioUnavailable, open_pin_factory
from pibuddy.drivers.names import find_named
from pibuddy.errors import DriverError, InvalidArguments, NotFound
from pibuddy.supervisor import Health, Service
from pibuddy.tools.arguments import string
from pibuddy.tools.registry import Tool, tool

_LOGGER = logging.getLogger(__name__)


class Relays:
    """Args:
    config: the `gpio` section (its `relays` and `pin_factory`).
    pin_factory: a gpiozero factory to use instead of `config.pin_factory` (tests).
    """

    def __init__(self, config: GpioConfig, *, pin_factory: Factory | None = None) -> None:
        self.configs: list[RelayConfig] = list(config.relays)
        self._factory_name = config.pin_factory
        self._factory = pin_factory
        self._outputs: dict[str, OutputDevice] = {}

    def open(self) -> None:
        """Claim every relay's pin in its initial state; idempotent. Raises `GpioUnavailable`."""
        if self._outputs:
            return
        factory = self._factory or open_pin_factory(self._factory_name)
        try:
            for relay in self.configs:
                self._outputs[relay.name] = OutputDevice(relay.pin, active_high=relay.active_high,
                                                         initial_value=relay.initial, pin_factory=factory)
        except Exception as exc:  # gpiozero's PinInvalidPin, GPIOPinInUse ... at the driver boundary
            self.close()
            raise GpioUnavailable(f"cannot claim the relay pins: {exc}") from None

    def close(self) -> None:
        for output in self._outputs.values():
            output.close()
        self._outputs.clear()

    def switch(self, name: str, on: bool) -> str:
        relay, output = self._find(name)
        output.value = on
        return f"The {relay.name} is now {'on' if on else 'off'}."

    def state(self, name: str) -> str:
        relay, output = self._find(name)
        return f"The {relay.name} is {'on' if output.value else 'off'}."

    def _find(self, name: str) -> tuple[RelayConfig, OutputDevice]:
        found = find_named(name, self.configs)
        if not found:
            raise NotFound(f"there is no switch called {name!r}; known switches: {_names(self.configs)}")
        if len(found) > 1:
            raise InvalidArguments(f"{name!r} could be {_names(found)}; say which one")
        self.open()
        return found[0], self._outputs[found[0].name]


def _names(relays: list[RelayConfig]) -> str:
    return ", ".join(f"{r.name} ({r.area})" if r.area else r.name for r in relays)


def gpio_tools(relays: Relays) -> list[Tool]:
    @tool("gpio_switch",
          f"Switches an output of the Raspberry Pi (a relay) on or off, or tells its state. Switches: "
          f"{_names(relays.configs)}.",
          params={"name": string(description="switch name, alias or room"),
                  "action": string(enum=["on", "off", "state"])})
    async def gpio_switch(arguments: dict[str, Any]) -> str:
        if arguments["action"] == "state":
            return relays.state(arguments["name"])
        return relays.switch(arguments["name"], arguments["action"] == "on")

    return [gpio_switch]


class RelayService(Service):
    """Puts the relays in their initial state at start and releases them at stop."""

    name = "gpio_relays"

    def __init__(self, relays: Relays) -> None:
        self._relays = relays
        self._off: str | None = None

    @property
    def relays(self) -> Relays:
        return self._relays

    async def start(self) -> None:
        try:
            self._relays.open()
        except DriverError as exc:
            if self._off is None:
                _LOGGER.warning("%s; the relays (gpio_switch) stay off", exc.message)
            self._off = exc.message

    async def stop(self) -> None:
        self._relays.close()

    def health(self) -> Health:
        return Health(self._off is None, self._off or f"{len(self._relays.configs)} relays")
