"""Entity states as short sentences a voice can speak ("Floor Lamp is on at 40% brightness."), and colours."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from pibuddy.errors import InvalidArguments

# Colour names people say, English and Chinese -> RGB.
COLOURS: Final[dict[str, tuple[int, int, int]]] = {
    "red": (255, 0, 0), "红": (255, 0, 0), "红色": (255, 0, 0),
    "orange": (255, 165, 0), "橙": (255, 165, 0), "橙色": (255, 165, 0),
    "yellow": (255, 255, 0), "黄": (255, 255, 0), "黄色": (255, 255, 0),
    "green": (0, 255, 0), "绿": (0, 255, 0), "绿色": (0, 255, 0),
    "cyan": (0, 255, 255), "青": (0, 255, 255), "青色": (0, 255, 255),
    "blue": (0, 0, 255), "蓝": (0, 0, 255), "蓝色": (0, 0, 255),
    "purple": (128, 0, 128), "紫": (128, 0, 128), "紫色": (128, 0, 128),
    "pink": (255, 192, 203), "粉": (255, 192, 203), "粉色": (255, 192, 203), "粉红色": (255, 192, 203),
    "white": (255, 255, 255), "白": (255, 255, 255), "白色": (255, 255, 255),
    "warm white": (255, 180, 107), "暖白": (255, 180, 107), "暖白色": (255, 180, 107), "暖光": (255, 180, 107),
}
_SPOKEN_COLOURS: Final = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "white", "warm white")
_HEX: Final = re.compile(r"#?([0-9a-fA-F]{6})")


def parse_colour(text: str) -> tuple[int, int, int]:
    """`red`, `红色`, `#ff8800` -> RGB; anything else raises InvalidArguments naming what works."""
    key = " ".join(text.casefold().split())
    if key in COLOURS:
        return COLOURS[key]
    match = _HEX.fullmatch(key)
    if match:
        value = int(match.group(1), 16)
        return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF
    raise InvalidArguments(f"unknown colour {text!r}: use a colour name ({', '.join(_SPOKEN_COLOURS)}) "
                           "or #RRGGBB")


def colour_name(rgb: Any) -> str | None:
    """The nearest spoken colour name to an RGB triple, or None if there is none."""
    if not (isinstance(rgb, list | tuple) and len(rgb) == 3 and all(isinstance(c, int | float) for c in rgb)):
        return None
    return min(_SPOKEN_COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLOURS[name], rgb, strict=True)))


def state_sentence(name: str, state: Mapping[str, Any]) -> str:
    """One sentence about a state object from Home Assistant (`{state, attributes}`)."""
    value = str(state.get("state", "unknown"))
    attributes = state.get("attributes")
    attributes = attributes if isinstance(attributes, Mapping) else {}
    if value == "unavailable":
        return f"{name} is unavailable (Home Assistant cannot reach it)."
    domain = str(state.get("entity_id", "")).partition(".")[0]
    details = _DETAILS.get(domain, _no_details)(value, attributes)
    spoken = _SPOKEN_STATES.get(domain, {}).get(value, value)
    unit = attributes.get("unit_of_measurement")
    if unit and domain in ("sensor", "input_number", "number"):
        spoken = f"{value} {unit}"
    return f"{name} is {spoken}{''.join(f', {d}' for d in details)}."


_SPOKEN_STATES: Final[dict[str, dict[str, str]]] = {
    "climate": {"off": "off", "heat": "heating", "cool": "cooling", "heat_cool": "on (heat/cool)", "auto": "on (auto)",
                "dry": "drying", "fan_only": "on (fan only)"},
}


def _no_details(value: str, attributes: Mapping[str, Any]) -> list[str]:
    del value, attributes
    return []


def _light(value: str, attributes: Mapping[str, Any]) -> list[str]:
    if value != "on":
        return []
    details = []
    brightness = attributes.get("brightness")
    if isinstance(brightness, int | float):
        details.append(f"at {round(brightness * 100 / 255)}% brightness")
    colour = colour_name(attributes.get("rgb_color")) if attributes.get("color_mode") not in ("onoff",
                                                                                             "brightness") else None
    if colour and colour != "white":
        details.append(f"colour {colour}")
    return details


def _climate(value: str, attributes: Mapping[str, Any]) -> list[str]:
    del value
    details = []
    if isinstance(attributes.get("temperature"), int | float):
        details.append(f"target {attributes['temperature']:g}°")
    if isinstance(attributes.get("current_temperature"), int | float):
        details.append(f"currently {attributes['current_temperature']:g}°")
    return details


def _cover(value: str, attributes: Mapping[str, Any]) -> list[str]:
    position = attributes.get("current_position")
    if isinstance(position, int | float) and value == "open" and position < 100:
        return [f"at {position:g}%"]
    return []


def _media_player(value: str, attributes: Mapping[str, Any]) -> list[str]:
    volume = attributes.get("volume_level")
    if value != "off" and isinstance(volume, int | float):
        return [f"volume {round(volume * 100)}%"]
    return []


_DETAILS: Final = {"light": _light, "climate": _climate, "cover": _cover, "media_player": _media_player}
