"""What `ha_control_device` can do: each action's domains, its value, the check against an entity's supported
features and ranges, and the Home Assistant service call it becomes.

Checking here, before calling, gives the LLM a sentence it can repeat ("Living Room Light cannot be
dimmed") instead of Home Assistant's bare 400, and lets an area command skip the entities that cannot
take part (an on/off lamp in a room whose other lights are dimmed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.drivers.homeassistant.index import Entity
from pibuddy.drivers.homeassistant.speech import parse_colour
from pibuddy.errors import DriverError, InvalidArguments

# Home Assistant's feature bits (EntityFeature enums), for the checks below.
_CLIMATE_TARGET_TEMPERATURE: Final = 1
_CLIMATE_TURN_OFF: Final = 128
_CLIMATE_TURN_ON: Final = 256
_COVER_OPEN: Final = 1
_COVER_CLOSE: Final = 2
_COVER_SET_POSITION: Final = 4
_MEDIA_PAUSE: Final = 1
_MEDIA_VOLUME_SET: Final = 4
_MEDIA_TURN_ON: Final = 128
_MEDIA_TURN_OFF: Final = 256
_MEDIA_PLAY: Final = 16384
_DIMMABLE_MODES: Final = frozenset({"brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"})
_COLOUR_MODES: Final = frozenset({"hs", "xy", "rgb", "rgbw", "rgbww"})

# turn_on / turn_off / toggle per domain: the service, and the feature bit it needs (0: none).
_SWITCHING: Final[dict[str, dict[str, tuple[str, int]]]] = {
    **{domain: {"turn_on": ("turn_on", 0), "turn_off": ("turn_off", 0), "toggle": ("toggle", 0)}
       for domain in ("light", "switch", "fan", "input_boolean", "automation", "humidifier", "siren", "script")},
    "cover": {"turn_on": ("open_cover", _COVER_OPEN), "turn_off": ("close_cover", _COVER_CLOSE),
              "toggle": ("toggle", _COVER_OPEN | _COVER_CLOSE)},
    "media_player": {"turn_on": ("turn_on", _MEDIA_TURN_ON), "turn_off": ("turn_off", _MEDIA_TURN_OFF),
                     "toggle": ("toggle", _MEDIA_TURN_ON | _MEDIA_TURN_OFF)},
    "climate": {"turn_on": ("turn_on", _CLIMATE_TURN_ON), "turn_off": ("turn_off", _CLIMATE_TURN_OFF),
                "toggle": ("toggle", _CLIMATE_TURN_ON | _CLIMATE_TURN_OFF)},
    "scene": {"turn_on": ("turn_on", 0)},
}

Check = Callable[[Entity, Any], str | None]  # None: fine; else why this entity cannot


@dataclass(frozen=True, slots=True)
class Action:
    """One `ha_control_device` action."""

    name: str
    domains: frozenset[str]
    value: str | None  # the tool argument it needs, e.g. "brightness"
    service: Callable[[str], str | None]  # domain -> service name, None if the domain cannot
    data: Callable[[Any], dict[str, Any]]
    check: Check

    def plan(self, entity: Entity, value: Any) -> str | None:
        """Why `entity` cannot do this action with `value`, or None when it can."""
        if self.service(entity.domain) is None:
            return f"{entity.name} cannot {self.name.replace('_', ' ')}"
        return self.check(entity, value)


def _features(bits: int, what: str) -> Check:
    def check(entity: Entity, value: Any) -> str | None:
        del value
        return None if entity.supported_features & bits == bits else f"{entity.name} cannot {what}"
    return check


def _switching_check(action: str) -> Check:
    def check(entity: Entity, value: Any) -> str | None:
        del value
        _, bits = _SWITCHING[entity.domain][action]
        word = {"turn_on": "be turned on", "turn_off": "be turned off", "toggle": "be toggled"}[action]
        return None if entity.supported_features & bits == bits else f"{entity.name} cannot {word}"
    return check


def _light_modes(modes: frozenset[str], what: str) -> Check:
    def check(entity: Entity, value: Any) -> str | None:
        del value
        supported = entity.attributes.get("supported_color_modes") or ()
        return None if modes.intersection(supported) else f"{entity.name} cannot {what}"
    return check


def _temperature_check(entity: Entity, value: Any) -> str | None:
    if not entity.supported_features & _CLIMATE_TARGET_TEMPERATURE:
        return f"{entity.name} has no target temperature"
    low, high = entity.attributes.get("min_temp"), entity.attributes.get("max_temp")
    if isinstance(low, int | float) and isinstance(high, int | float) and not low <= value <= high:
        return f"{entity.name} accepts {low:g} to {high:g} degrees"
    return None


def _hvac_check(entity: Entity, value: Any) -> str | None:
    modes = entity.attributes.get("hvac_modes") or []
    return None if value in modes else f"{entity.name} supports the modes {', '.join(map(str, modes))}"


def _only(domain: str, service: str) -> Callable[[str], str | None]:
    return lambda d: service if d == domain else None


def _switch_service(action: str) -> Callable[[str], str | None]:
    def service(domain: str) -> str | None:
        found = _SWITCHING.get(domain, {}).get(action)
        return found[0] if found else None
    return service


def _no_data(value: Any) -> dict[str, Any]:
    del value
    return {}


def _switching(name: str) -> Action:
    domains = frozenset(d for d, services in _SWITCHING.items() if name in services)
    return Action(name, domains, None, _switch_service(name), _no_data, _switching_check(name))


ACTIONS: Final[dict[str, Action]] = {a.name: a for a in (
    _switching("turn_on"),
    _switching("turn_off"),
    _switching("toggle"),
    Action("set_brightness", frozenset({"light"}), "brightness", _only("light", "turn_on"),
           lambda v: {"brightness_pct": v}, _light_modes(_DIMMABLE_MODES, "change brightness")),
    Action("set_color", frozenset({"light"}), "color", _only("light", "turn_on"),
           lambda v: {"rgb_color": list(parse_colour(v))}, _light_modes(_COLOUR_MODES, "change colour")),
    Action("set_temperature", frozenset({"climate"}), "temperature", _only("climate", "set_temperature"),
           lambda v: {"temperature": v}, _temperature_check),
    Action("set_hvac_mode", frozenset({"climate"}), "hvac_mode", _only("climate", "set_hvac_mode"),
           lambda v: {"hvac_mode": v}, _hvac_check),
    Action("open", frozenset({"cover"}), None, _only("cover", "open_cover"), _no_data,
           _features(_COVER_OPEN, "open")),
    Action("close", frozenset({"cover"}), None, _only("cover", "close_cover"), _no_data,
           _features(_COVER_CLOSE, "close")),
    Action("set_position", frozenset({"cover"}), "position", _only("cover", "set_cover_position"),
           lambda v: {"position": v}, _features(_COVER_SET_POSITION, "be set to a position")),
    Action("lock", frozenset({"lock"}), None, _only("lock", "lock"), _no_data, lambda e, v: None),
    Action("unlock", frozenset({"lock"}), None, _only("lock", "unlock"), _no_data, lambda e, v: None),
    Action("play", frozenset({"media_player"}), None, _only("media_player", "media_play"), _no_data,
           _features(_MEDIA_PLAY, "play")),
    Action("pause", frozenset({"media_player"}), None, _only("media_player", "media_pause"), _no_data,
           _features(_MEDIA_PAUSE, "pause")),
    Action("set_volume", frozenset({"media_player"}), "volume", _only("media_player", "volume_set"),
           lambda v: {"volume_level": round(v / 100, 2)}, _features(_MEDIA_VOLUME_SET, "change volume")),
)}


@dataclass(frozen=True, slots=True)
class Call:
    """One service call: `domain.service` on `entities`, and the entities left out with the reason."""

    domain: str
    service: str
    data: dict[str, Any]
    entities: tuple[Entity, ...]
    skipped: tuple[str, ...]


def plan_calls(action: Action, entities: tuple[Entity, ...], value: Any) -> list[Call]:
    """Group capable entities by domain into service calls; raise if none can do it at all."""
    if action.value is not None and value is None:
        raise InvalidArguments(f"{action.name} needs the argument {action.value}")
    data = action.data(value)
    reasons = {e.entity_id: action.plan(e, value) for e in entities}
    capable = [e for e in entities if reasons[e.entity_id] is None]
    if not capable:
        raise DriverError("; ".join(r for r in reasons.values() if r) + ".", code="unsupported")
    skipped = tuple(r for r in reasons.values() if r)
    calls = []
    for domain in dict.fromkeys(e.domain for e in capable):
        service = action.service(domain)
        assert service is not None  # plan() said this domain can
        calls.append(Call(domain, service, data, tuple(e for e in capable if e.domain == domain), skipped))
        skipped = ()  # report the skipped ones once
    return calls
