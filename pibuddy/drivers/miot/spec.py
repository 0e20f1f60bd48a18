"""MIoT-Spec-V2 instances (docs/drivers.md §1.6) as typed data, and the value rules a property's spec implies.

A device instance is `{type: urn, description, services: [{iid, type, description, properties, actions}]}`.
Names come from the URN's fourth part (`urn:miot-spec-v2:property:brightness:0000000D:...` -> `brightness`),
so the LLM speaks of "brightness", never of siid 2 / piid 3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.drivers.miot.errors import BadReply
from pibuddy.drivers.sentences import words
from pibuddy.errors import InvalidArguments
from pibuddy.jsonvalues import is_int

_INTEGER_FORMATS: Final = frozenset({"uint8", "uint16", "uint32", "int8", "int16", "int32", "int64"})
_TRUE_WORDS: Final = frozenset({"on", "true", "yes", "1", "open", "开", "打开", "开启"})
_FALSE_WORDS: Final = frozenset({"off", "false", "no", "0", "close", "关", "关闭", "关掉"})
# Spec unit -> how it is spoken after a number.
_UNITS: Final = {"percentage": "%", "kelvin": "K", "celsius": "°C", "fahrenheit": "°F", "seconds": "s",
                 "minutes": "min", "hours": "h", "days": "days", "lux": "lx", "watt": "W", "kWh": "kWh",
                 "pascal": "Pa", "mg/m3": "mg/m³", "μg/m3": "µg/m³", "ppm": "ppm", "rpm": "rpm", "L": "L"}


class SpecError(BadReply):
    """A spec document that does not have the MIoT-Spec-V2 shape."""

    code = "bad_spec"


def urn_name(urn: str) -> str:
    """The short name inside a URN: `urn:miot-spec-v2:service:light:00007802:...` -> `light`."""
    parts = urn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else urn


@dataclass(frozen=True, slots=True)
class Choice:
    """One entry of a property's value-list: the wire value and its name (`2` / `sleep`)."""

    value: int
    name: str


@dataclass(frozen=True, slots=True)
class Property:
    siid: int
    piid: int
    name: str
    description: str
    format: str
    access: frozenset[str]
    unit: str | None = None
    value_range: tuple[float, float, float] | None = None
    choices: tuple[Choice, ...] = ()

    @property
    def readable(self) -> bool:
        return "read" in self.access

    @property
    def writable(self) -> bool:
        return "write" in self.access

    @property
    def spoken_unit(self) -> str:
        return _UNITS.get(self.unit or "", "") if self.unit not in (None, "none") else ""

    def schema(self) -> dict[str, Any]:
        """The JSON schema of a value to write, for a tool's inputSchema."""
        if self.choices:
            return {"type": "string", "enum": [c.name for c in self.choices]}
        if self.format == "bool":
            return {"type": "boolean"}
        if self.format == "string":
            return {"type": "string"}
        schema: dict[str, Any] = {"type": "integer" if self.format in _INTEGER_FORMATS else "number"}
        if self.value_range is not None:
            schema["minimum"], schema["maximum"] = _plain(self.value_range[0]), _plain(self.value_range[1])
        return schema

    def summary(self) -> str:
        """`brightness 1-100 %`, `mode: basic|sleep|strong`, `on on/off`: what a caller may set."""
        if self.choices:
            return f"{self.name}: {'|'.join(c.name for c in self.choices)}"
        if self.format == "bool":
            return f"{self.name} on/off"
        if self.value_range is not None:
            low, high = _plain(self.value_range[0]), _plain(self.value_range[1])
            return f"{self.name} {low}-{high}{' ' + self.spoken_unit if self.spoken_unit else ''}"
        return f"{self.name} ({self.format})"

    def to_wire(self, value: Any, *, device: str) -> Any:
        """The value to send for a spoken/LLM `value`, checked against the spec; InvalidArguments otherwise."""
        if self.choices:
            return self._choice_value(value, device)
        if self.format == "bool":
            return _as_bool(value, f"{self.name} of {device} is on or off")
        if self.format == "string":
            if not isinstance(value, str):
                raise InvalidArguments(f"{self.name} of {device} takes text")
            return value
        return self._number_value(value, device)

    def spoken(self, value: Any) -> str:
        """A read value as words: `on`, `natural wind`, `40 %`."""
        if self.format == "bool" and isinstance(value, bool):
            return "on" if value else "off"
        for choice in self.choices:
            if choice.value == value and not isinstance(value, bool):
                return words(choice.name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"{value} {self.spoken_unit}".strip()

    def _choice_value(self, value: Any, device: str) -> int:
        names = "|".join(c.name for c in self.choices)
        if isinstance(value, str):
            wanted = _slug(value)
            for choice in self.choices:
                if choice.name == wanted or (value.strip().lstrip("-").isdigit() and choice.value == int(value)):
                    return choice.value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            for choice in self.choices:
                if choice.value == value:
                    return choice.value
        raise InvalidArguments(f"{self.name} of {device} is one of {names}")

    def _number_value(self, value: Any, device: str) -> int | float:
        number = _as_number(value)
        if number is None:
            raise InvalidArguments(f"{self.name} of {device} takes a number")
        if self.value_range is not None:
            low, high, step = self.value_range
            if not low <= number <= high:
                unit = f" {self.spoken_unit}" if self.spoken_unit else ""
                raise InvalidArguments(f"{self.name} of {device} goes from {_plain(low)} to {_plain(high)}{unit}")
            if step > 0:  # the device rejects values off its grid: round to the nearest step
                number = min(high, low + round((number - low) / step) * step)
        if self.format in _INTEGER_FORMATS:
            return round(number)
        return float(number)


@dataclass(frozen=True, slots=True)
class Action:
    siid: int
    aiid: int
    name: str
    description: str
    ins: tuple[int, ...] = ()
    outs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Service:
    siid: int
    name: str
    description: str
    properties: tuple[Property, ...] = ()
    actions: tuple[Action, ...] = ()

    def property(self, piid: int) -> Property | None:
        return next((p for p in self.properties if p.piid == piid), None)


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    urn: str
    description: str
    services: tuple[Service, ...]

    @property
    def kind(self) -> str:
        """The device type: `light`, `fan`, `switch` ... (the URN's name part)."""
        return urn_name(self.urn)

    def service(self, siid: int) -> Service | None:
        return next((s for s in self.services if s.siid == siid), None)


def parse_spec(data: Any) -> DeviceSpec:
    """A `DeviceSpec` from an instance document; raises `SpecError` naming what is wrong."""
    if not isinstance(data, Mapping) or not isinstance(data.get("type"), str):
        raise SpecError("a spec instance is an object with a type URN")
    services = data.get("services")
    if not isinstance(services, list):
        raise SpecError(f"spec {data['type']}: services is not a list")
    return DeviceSpec(data["type"], str(data.get("description", "")), tuple(_service(s) for s in services))


def _service(data: Any) -> Service:
    siid, urn = _iid_and_type(data, "service")
    properties = tuple(_property(siid, p) for p in _list(data, "properties"))
    actions = tuple(_action(siid, a) for a in _list(data, "actions"))
    return Service(siid, urn_name(urn), str(data.get("description", "")), properties, actions)


def _property(siid: int, data: Any) -> Property:
    piid, urn = _iid_and_type(data, "property")
    value_format = str(data.get("format", "string"))
    access = data.get("access", [])
    if not isinstance(access, list):
        raise SpecError(f"property {siid}.{piid}: access is not a list")
    value_range = data.get("value-range")
    parsed_range = None
    if value_range is not None:
        if (not isinstance(value_range, list) or len(value_range) < 2
                or not all(_as_number(v) is not None for v in value_range)):
            raise SpecError(f"property {siid}.{piid}: value-range is not [min, max, step]")
        step = float(value_range[2]) if len(value_range) > 2 else 0.0
        parsed_range = (float(value_range[0]), float(value_range[1]), step)
    unit = data.get("unit")
    return Property(siid, piid, _underscored(urn_name(urn)), str(data.get("description", "")), value_format,
                    frozenset(str(a) for a in access), unit if isinstance(unit, str) else None, parsed_range,
                    _choices(siid, piid, data.get("value-list")))


def _choices(siid: int, piid: int, data: Any) -> tuple[Choice, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise SpecError(f"property {siid}.{piid}: value-list is not a list")
    found: list[Choice] = []
    for entry in data:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("value"), int):
            raise SpecError(f"property {siid}.{piid}: a value-list entry lacks an integer value")
        name = _slug(str(entry.get("description", ""))) or str(entry["value"])
        taken = {c.name for c in found}
        if name in taken:  # descriptions repeat in real specs ("Level" twice): keep them distinct
            name = f"{name}_{entry['value']}"
        found.append(Choice(entry["value"], name))
    return tuple(found)


def _action(siid: int, data: Any) -> Action:
    aiid, urn = _iid_and_type(data, "action")
    ins, outs = data.get("in", []), data.get("out", [])
    if not (_int_list(ins) and _int_list(outs)):
        raise SpecError(f"action {siid}.{aiid}: in/out are not lists of piids")
    return Action(siid, aiid, _underscored(urn_name(urn)), str(data.get("description", "")), tuple(ins),
                  tuple(outs))


def _iid_and_type(data: Any, what: str) -> tuple[int, str]:
    if not isinstance(data, Mapping) or not isinstance(data.get("iid"), int) or not isinstance(data.get("type"), str):
        raise SpecError(f"a {what} needs an integer iid and a type URN")
    return data["iid"], data["type"]


def _list(data: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise SpecError(f"service {data.get('iid')}: {key} is not a list")
    return value


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(is_int(v) for v in value)


def _as_bool(value: Any, message: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise InvalidArguments(message)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip().rstrip("%").strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _plain(number: float) -> int | float:
    return int(number) if float(number).is_integer() else number


def _slug(text: str) -> str:
    """`Strong Wind` -> `strong_wind`; CJK is kept as it is."""
    return "_".join(text.strip().casefold().replace("-", " ").split())


def _underscored(name: str) -> str:
    return name.replace("-", "_")
