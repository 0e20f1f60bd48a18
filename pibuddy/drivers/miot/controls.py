"""Spec -> controls: the named properties and actions of one device, as the LLM sees them.

Names are the spec's own (`on`, `brightness`, `color_temperature`, `mode`, `toggle`). A name that occurs in
several services keeps its bare form in the first (the device's main function) and is prefixed with the
service name elsewhere (`indicator_light_on`). The device-information service is left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.drivers.miot.spec import Action, DeviceSpec, Property

_SKIPPED_SERVICES: Final = frozenset({"device_information", "device-information"})
# What people (and LLMs) call a control -> the spec's name for it.
_SYNONYMS: Final = {"power": "on", "switch": "on", "state": "on", "colour_temperature": "color_temperature",
                    "color_temp": "color_temperature", "speed": "fan_level", "level": "fan_level",
                    "bright": "brightness", "开关": "on", "亮度": "brightness", "色温": "color_temperature",
                    "模式": "mode", "风速": "fan_level"}


@dataclass(frozen=True, slots=True)
class Control:
    """A property or an action of a device, under the name tools use."""

    name: str
    service: str
    prop: Property | None = None
    action: Action | None = None

    def summary(self) -> str:
        if self.prop is not None:
            return self.prop.summary().replace(self.prop.name, self.name, 1)
        assert self.action is not None
        inputs = f" ({len(self.action.ins)} inputs)" if self.action.ins else ""
        return f"{self.name} (action{inputs})"


class Controls:
    """Every control of one device spec, in spec order."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec
        self._by_name: dict[str, Control] = {}
        services = [s for s in spec.services if s.name not in _SKIPPED_SERVICES]
        for service in services:
            for prop in service.properties:
                self._add(Control(self._name(prop.name, service.name), service.name, prop=prop))
            for action in service.actions:
                self._add(Control(self._name(action.name, service.name), service.name, action=action))

    def _name(self, base: str, service: str) -> str:
        name = base if base not in self._by_name else f"{_underscored(service)}_{base}"
        suffix = 2
        while name in self._by_name:  # the same service name twice in one spec
            name, suffix = f"{_underscored(service)}_{base}_{suffix}", suffix + 1
        return name

    def _add(self, control: Control) -> None:
        self._by_name[control.name] = control

    def __iter__(self) -> Iterator[Control]:
        return iter(self._by_name.values())

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    @property
    def readable(self) -> list[Control]:
        return [c for c in self._by_name.values() if c.prop is not None and c.prop.readable]

    @property
    def writable(self) -> list[Control]:
        return [c for c in self._by_name.values() if c.prop is not None and c.prop.writable]

    @property
    def actions(self) -> list[Control]:
        return [c for c in self._by_name.values() if c.action is not None]

    def find(self, name: str) -> Control | None:
        """The control called `name`, allowing spaces, hyphens, case and common synonyms (`power` -> `on`)."""
        key = _underscored(name.strip().casefold())
        found = self._by_name.get(key) or self._by_name.get(_SYNONYMS.get(key, ""))
        if found is None and key.startswith("set_"):
            found = self._by_name.get(key.removeprefix("set_"))
        return found

    def describe(self) -> str:
        """`on on/off, brightness 1-100 %, toggle (action)`: what can be set or done."""
        return ", ".join(c.summary() for c in [*self.writable, *self.actions])

    def tool_schema(self) -> dict[str, Any]:
        """An inputSchema with one optional property per writable control and an `action` enum."""
        properties: dict[str, Any] = {}
        for control in self.writable:
            assert control.prop is not None
            schema = control.prop.schema()
            schema["description"] = control.prop.description or control.name
            properties[control.name] = schema
        simple_actions = [c.name for c in self.actions if c.action is not None and not c.action.ins]
        if simple_actions:
            properties["action"] = {"type": "string", "enum": simple_actions, "description": "An action to run."}
        return {"type": "object", "properties": properties}


def _underscored(text: str) -> str:
    return "_".join(text.replace("-", " ").split())
