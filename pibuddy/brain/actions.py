"""Intents -> calls of PiBuddy's existing tools (never the drivers directly).

One planner per intent in a dispatch table. A plan says which tool calls to make and whether the reply is
the package's response template (commands: "Turned on the light") or the tool's own sentence (questions:
the tool's text carries the state). Intents with no planner (timers, weather, shopping lists) are out of
the local brain's reach: `plan()` returns None and the brain says it cannot do that offline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.brain.intents import IntentMatch
from pibuddy.brain.vocabulary import HOMEASSISTANT, Thing, Vocabulary


@dataclass(frozen=True, slots=True)
class SourceTools:
    """The tools one driver offers for the brain's needs."""

    control: str
    state: str
    scene: str
    script: str


# driver (Thing.source) -> its tools. A driver that offers names must be listed here too.
TOOLS: Final[dict[str, SourceTools]] = {
    HOMEASSISTANT: SourceTools("ha_control_device", "ha_get_device_state", "ha_run_scene", "ha_run_script"),
}
SPEAKER_VOLUME_TOOL: Final = "self.audio_speaker.set_volume"

# Domain -> the kind word the tools' name resolution knows ("living room lights" -> every light there).
_KIND_WORDS: Final = {"light": "lights", "fan": "fans", "cover": "blinds", "switch": "switches", "lock": "locks",
                      "climate": "thermostat", "media_player": "speaker", "vacuum": "vacuum", "sensor": "sensor"}


@dataclass(frozen=True, slots=True)
class ToolCall:
    tool: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do for a match. No calls: answered locally (time, date) or nothing to do (never mind)."""

    calls: tuple[ToolCall, ...] = ()
    tool_text: bool = False
    """Speak the tool's result (questions) instead of the response template."""
    thing: Thing | None = None


@dataclass(frozen=True, slots=True)
class _Target:
    phrase: str
    source: str
    thing: Thing | None = None

    @property
    def domain(self) -> str | None:
        return self.thing.domain if self.thing else None


def _target(match: IntentMatch, vocabulary: Vocabulary, default_kind: str | None = None) -> _Target | None:
    """The tool's `target` phrase: a device's key, or a room (or "all") plus a kind of device."""
    area = match.value("area")
    key = match.value("name")
    if key is not None:
        said = match.said("name") or ""
        in_area = vocabulary.named(said, area) if area else []
        thing = in_area[0] if len(in_area) == 1 else vocabulary.thing(key)
        return _Target(thing.key, thing.source, thing) if thing else None
    if match.value("floor") is not None:
        return None  # the tools' name resolution knows rooms, not floors
    domain = match.value("domain")
    kind = match.value("device_class") or _KIND_WORDS.get(domain or "", default_kind)
    if kind is None:
        return None
    phrase = f"{area} {kind}" if area else f"all {kind}"
    sources = {t.source for t in vocabulary.things if domain is None or t.domain == domain}
    return _Target(phrase, sources.pop() if len(sources) == 1 else HOMEASSISTANT)


def _control(action: str, **values: Any) -> Callable[[IntentMatch, Vocabulary], Plan | None]:
    """A `control` call; `values` maps tool arguments to the match slot that holds them."""

    def planner(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
        target = _target(match, vocabulary)
        if target is None:
            return None
        arguments: dict[str, Any] = {"target": target.phrase, "action": action}
        for argument, slot in values.items():
            if match.value(slot) is None:
                return None
            arguments[argument] = _number(match.value(slot)) if argument != "color" else str(match.value(slot))
        return Plan((ToolCall(TOOLS[target.source].control, arguments),), thing=target.thing)

    return planner


def _number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _switch(on: bool) -> Callable[[IntentMatch, Vocabulary], Plan | None]:
    """HassTurnOn/Off: scenes and scripts run; covers open/close; locks lock/unlock; the rest switch."""
    by_domain = {"cover": "open" if on else "close", "lock": "lock" if on else "unlock"}

    def planner(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
        target = _target(match, vocabulary)
        if target is None:
            return None
        tools = TOOLS[target.source]
        if on and target.domain in ("scene", "script"):
            tool = tools.scene if target.domain == "scene" else tools.script
            return Plan((ToolCall(tool, {"name": target.phrase}),), thing=target.thing)
        domain = target.domain or match.value("domain")
        action = by_domain.get(domain or "", "turn_on" if on else "turn_off")
        return Plan((ToolCall(tools.control, {"target": target.phrase, "action": action}),), thing=target.thing)

    return planner


def _light_set(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
    if match.value("brightness") is not None:
        return _control("set_brightness", brightness="brightness")(match, vocabulary)
    if match.value("color") is not None:
        return _control("set_color", color="color")(match, vocabulary)
    return None


def _question(kind: str) -> Callable[[IntentMatch, Vocabulary], Plan | None]:
    def planner(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
        target = _target(match, vocabulary, default_kind=kind)
        if target is None:
            return None
        return Plan((ToolCall(TOOLS[target.source].state, {"target": target.phrase}),), tool_text=True,
                    thing=target.thing)

    return planner


def _volume(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
    """A named media player's volume, or PiBuddy's own speaker when no device is named."""
    if match.value("name") is not None or match.value("area") is not None:
        return _control("set_volume", volume="volume_level")(match, vocabulary)
    if match.value("volume_level") is None:
        return None
    return Plan((ToolCall(SPEAKER_VOLUME_TOOL, {"volume": int(_number(match.value("volume_level")))}),))


def _answered_locally(match: IntentMatch, vocabulary: Vocabulary) -> Plan:
    """No tool: the response template answers (the brain fills slots.time and slots.date)."""
    del match, vocabulary
    return Plan()


PLANNERS: Final[dict[str, Callable[[IntentMatch, Vocabulary], Plan | None]]] = {
    "HassTurnOn": _switch(True),
    "HassTurnOff": _switch(False),
    "HassLightSet": _light_set,
    "HassSetPosition": _control("set_position", position="position"),
    "HassClimateSetTemperature": _control("set_temperature", temperature="temperature"),
    "HassMediaPause": _control("pause"),
    "HassMediaUnpause": _control("play"),
    "HassSetVolume": _volume,
    "HassGetState": _question("sensor"),
    "HassClimateGetTemperature": _question("temperature"),
    "HassGetCurrentTime": _answered_locally,
    "HassGetCurrentDate": _answered_locally,
    "HassNevermind": _answered_locally,
}


def plan(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
    """The tool calls for `match`, or None when the local brain cannot act on it."""
    planner = PLANNERS.get(match.intent)
    return planner(match, vocabulary) if planner is not None else None
