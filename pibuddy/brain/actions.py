"""Intents -> calls of PiBuddy's existing tools (never the drivers directly).

One planner per intent in a dispatch table. A plan says which tool calls to make and whether the reply is
the package's response template (commands: "Turned on the light") or the tool's own sentence (questions:
the tool's text carries the state). Intents with no planner (weather, shopping lists) are out of
the local brain's reach: `plan()` returns None and the brain says it cannot do that offline.

Planners speak Home Assistant's actions (`turn_on`, `set_brightness` ...); each driver's `DriverTools`
turns one into a call of that driver's tool, or None when the driver cannot do it. A room or "all" phrase
goes to every driver with a fitting device there: as one phrase to Home Assistant (its tools resolve
"Bedroom lights" themselves), as one call per device to the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.brain.intents import IntentMatch, IntentMatcher
from pibuddy.brain.sentences import EVERYTHING
from pibuddy.brain.vocabulary import BLE_DEVICE, BLE_SENSOR, GPIO, HOMEASSISTANT, MIOT, Thing, Vocabulary

SPEAKER_VOLUME_TOOL: Final = "self.audio_speaker.set_volume"
TIMER_START_TOOL: Final = "timer_start"

# Domain -> the kind word the tools' name resolution knows ("living room lights" -> every light there).
_KIND_WORDS: Final = {"light": "lights", "fan": "fans", "cover": "blinds", "switch": "switches", "lock": "locks",
                      "climate": "thermostat", "media_player": "speaker", "vacuum": "vacuum", "sensor": "sensor"}
_TEMPERATURE: Final = "temperature"
_MEASURING_DOMAINS: Final = frozenset({"sensor", "climate"})
# The device classes a device of a domain without a class of its own answers to.
_CLASSLESS: Final = {"cover": frozenset({"blind", "curtain", "shade", "shutter", "awning"})}
# "Everything in the kitchen": what is switched on and off, never locks, covers or heating.
_SWITCHED_OFF_BY_EVERYTHING: Final = frozenset({"light", "switch", "fan", "input_boolean", "media_player"})


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
    guessed: bool = False
    """A target is a room-and-kind phrase the vocabulary has no such device for ("the kitchen fans" where the
    kitchen's fan is a switch): the tools may still resolve it by name, or say what is missing there."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a tool is asked to act on: a device's key, or (Home Assistant) a room or "all" plus a kind."""

    phrase: str
    source: str
    thing: Thing | None = None
    guessed: bool = False
    """See `Plan.guessed`."""

    @property
    def domain(self) -> str | None:
        return self.thing.domain if self.thing else None


class DriverTools(ABC):
    """One driver's tools for the brain's needs; each method returns None for what the driver cannot do."""

    grouped = False
    """The tools take a room plus a kind ("Bedroom lights") as one target."""

    @abstractmethod
    def command(self, target: Target, action: str, value: Any = None) -> ToolCall | None:
        """A Home Assistant action (turn_on, set_brightness ...) with its value, if it takes one."""

    @abstractmethod
    def question(self, target: Target, quantity: str | None) -> ToolCall | None:
        """The state of `target`, or one `quantity` of it (temperature)."""

    def run(self, target: Target) -> ToolCall | None:
        """Run a scene or script."""
        del target
        return None


class HomeAssistantTools(DriverTools):
    grouped = True
    _VALUE_ARGUMENTS: Final = {"set_brightness": "brightness", "set_color": "color", "set_position": "position",
                               "set_temperature": "temperature", "set_volume": "volume"}

    def command(self, target: Target, action: str, value: Any = None) -> ToolCall:
        arguments = {"target": target.phrase, "action": action}
        if action in self._VALUE_ARGUMENTS:
            arguments[self._VALUE_ARGUMENTS[action]] = value
        return ToolCall("ha_control_device", arguments)

    def question(self, target: Target, quantity: str | None) -> ToolCall:
        return ToolCall("ha_get_device_state", {"target": target.phrase})

    def run(self, target: Target) -> ToolCall | None:
        tool = {"scene": "ha_run_scene", "script": "ha_run_script"}.get(target.domain or "")
        return ToolCall(tool, {"name": target.phrase}) if tool else None


class MiotTools(DriverTools):
    """`miot_control` sets the spec's controls: `on` and `brightness` (percent in the MIoT light spec)."""

    def command(self, target: Target, action: str, value: Any = None) -> ToolCall | None:
        if action in ("turn_on", "turn_off"):
            return ToolCall("miot_control", {"target": target.phrase, "control": "on", "value": action == "turn_on"})
        if action == "set_brightness":
            return ToolCall("miot_control", {"target": target.phrase, "control": "brightness", "value": value})
        return None

    def question(self, target: Target, quantity: str | None) -> ToolCall:
        return ToolCall("miot_get_state", {"target": target.phrase})


class BleSensorTools(DriverTools):
    def command(self, target: Target, action: str, value: Any = None) -> None:
        return None

    def question(self, target: Target, quantity: str | None) -> ToolCall:
        return ToolCall("ble_read_sensor", {"name": target.phrase, "quantity": quantity or ""})


class BleDeviceTools(DriverTools):
    """`ble_control` runs the configured actions named `on`, `off` and `brightness` (on the device's scale)."""

    def command(self, target: Target, action: str, value: Any = None) -> ToolCall | None:
        if action in ("turn_on", "turn_off"):
            return ToolCall("ble_control", {"device": target.phrase, "action": action.removeprefix("turn_")})
        if action == "set_brightness":
            return ToolCall("ble_control", {"device": target.phrase, "action": "brightness",
                                            "value": _on_scale(value, target.thing)})
        return None

    def question(self, target: Target, quantity: str | None) -> None:
        return None  # its readings are whatever the config names; the brain cannot know which one answers


class GpioTools(DriverTools):
    def command(self, target: Target, action: str, value: Any = None) -> ToolCall | None:
        if action not in ("turn_on", "turn_off"):
            return None
        return ToolCall("gpio_switch", {"name": target.phrase, "action": action.removeprefix("turn_")})

    def question(self, target: Target, quantity: str | None) -> ToolCall | None:
        return None if quantity else ToolCall("gpio_switch", {"name": target.phrase, "action": "state"})


def _on_scale(percent: Any, thing: Thing | None) -> int:
    """A spoken percentage on the device's own brightness scale (1-255 -> 40 % is 102)."""
    scale = thing.brightness_range if thing else None
    if scale is None:
        return int(percent)
    low, high = scale
    return max(low, min(high, round(float(percent) * high / 100)))


# driver (Thing.source) -> its tools. A driver that offers names must be listed here too.
TOOLS: Final[dict[str, DriverTools]] = {
    HOMEASSISTANT: HomeAssistantTools(), MIOT: MiotTools(), BLE_SENSOR: BleSensorTools(),
    BLE_DEVICE: BleDeviceTools(), GPIO: GpioTools(),
}

Planner = Callable[[IntentMatch, Vocabulary], Plan | None]


def _targets(match: IntentMatch, vocabulary: Vocabulary, default_kind: str | None = None,
             default_domain: str | None = None) -> list[Target]:
    """What the command is about: the named device, or the fitting devices in a room (or everywhere); a
    template that names no domain is about `default_domain` (or `default_kind`)."""
    area = match.value("area")
    if match.value("name") is not None:
        said = match.said("name") or ""
        in_area = vocabulary.named(said, area) if area else []
        thing = in_area[0] if len(in_area) == 1 else vocabulary.thing(match.value("name"))
        return [Target(thing.key, thing.source, thing)] if thing else []
    if match.value("floor") is not None:
        return []  # the tools' name resolution knows rooms, not floors
    if match.value(EVERYTHING):
        return [Target(t.key, t.source, t) for t in (vocabulary.in_area(area) if area else [])
                if t.domain in _SWITCHED_OFF_BY_EVERYTHING]
    domain, device_class = match.value("domain") or default_domain, match.value("device_class")
    kind = device_class or _KIND_WORDS.get(domain or "", default_kind)
    if kind is None:
        return []
    phrase = f"{area} {kind}" if area else f"all {kind}"

    def fits(thing: Thing) -> bool:
        if kind == _TEMPERATURE and thing.domain not in _MEASURING_DOMAINS:
            return False
        if domain not in (None, thing.domain):
            return False
        # A cover that states no class is a blind, not a garage door: "the bedroom blind" names it.
        return device_class in (None, thing.device_class) or (
            thing.device_class is None and device_class in _CLASSLESS.get(thing.domain, ()))

    candidates = [t for t in (vocabulary.in_area(area) if area else vocabulary.things) if fits(t)]
    targets: list[Target] = []
    for source in dict.fromkeys(t.source for t in candidates):
        mine = [t for t in candidates if t.source == source]
        if TOOLS[source].grouped and len(mine) > 1:
            targets.append(Target(phrase, source))
        else:  # one device is named by its key, so "the bedroom lights" and "the bedroom light" are one target
            targets += [Target(t.key, source, t) for t in mine]
    if not targets and any(t.source == HOMEASSISTANT for t in vocabulary.things):
        targets.append(Target(phrase, HOMEASSISTANT, guessed=True))  # its tools say what is missing there
    return targets


def _plan(targets: list[Target], call: Callable[[Target], ToolCall | None], *, tool_text: bool = False
          ) -> Plan | None:
    """The calls for `targets` (one driver may be unable to; if none can, there is no plan)."""
    calls = tuple(c for c in (call(t) for t in targets) if c is not None)
    if not calls:
        return None
    return Plan(calls, tool_text, targets[0].thing if len(targets) == 1 else None, any(t.guessed for t in targets))


def _control(action: str, slot: str | None = None, domain: str | None = None) -> Planner:
    """An `action` on the target (of `domain`, unless the match names one); `slot` holds its value."""

    def planner(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
        value = None
        if slot is not None:
            if match.value(slot) is None:
                return None
            value = str(match.value(slot)) if slot == "color" else _number(match.value(slot))
        return _plan(_targets(match, vocabulary, default_domain=domain),
                     lambda t: TOOLS[t.source].command(t, action, value))

    return planner


def _number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def _switch(on: bool) -> Planner:
    """HassTurnOn/Off: scenes and scripts run; covers open/close; locks lock/unlock; the rest switch."""
    by_domain = {"cover": "open" if on else "close", "lock": "lock" if on else "unlock"}

    def planner(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
        def call(target: Target) -> ToolCall | None:
            tools = TOOLS[target.source]
            if on and target.domain in ("scene", "script"):
                return tools.run(target)
            domain = target.domain or match.value("domain")
            return tools.command(target, by_domain.get(domain or "", "turn_on" if on else "turn_off"))

        return _plan(_targets(match, vocabulary), call)

    return planner


def _light_set(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
    if match.value("brightness") is not None:
        return _control("set_brightness", "brightness")(match, vocabulary)
    if match.value("color") is not None:
        return _control("set_color", "color")(match, vocabulary)
    return None


def _question(kind: str, quantity: str | None = None) -> Planner:
    def planner(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
        return _plan(_targets(match, vocabulary, default_kind=kind),
                     lambda t: TOOLS[t.source].question(t, quantity), tool_text=True)

    return planner


def _volume(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
    """A named media player's volume, or PiBuddy's own speaker when no device is named."""
    if match.value("name") is not None or match.value("area") is not None:
        return _control("set_volume", "volume_level")(match, vocabulary)
    if match.value("volume_level") is None:
        return None
    return Plan((ToolCall(SPEAKER_VOLUME_TOOL, {"volume": int(_number(match.value("volume_level")))}),))


def _timer_name(match: IntentMatch) -> str:
    name = match.value("name")
    return name.strip() if isinstance(name, str) else ""


def _start_timer(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
    """"Set a pasta timer for 8 minutes": the response template answers ("Timer started")."""
    del vocabulary
    parts = {unit: int(_number(match.value(unit))) for unit in ("hours", "minutes", "seconds")
             if match.value(unit) is not None}
    if not parts:
        return None
    return Plan((ToolCall(TIMER_START_TOOL, {**parts, "name": _timer_name(match)}),))


def _cancel_timer(every: bool) -> Planner:
    def planner(match: IntentMatch, vocabulary: Vocabulary) -> Plan:
        del vocabulary
        return Plan((ToolCall("timer_cancel", {"name": _timer_name(match), "all": every}),), tool_text=every)

    return planner


def _timer_status(match: IntentMatch, vocabulary: Vocabulary) -> Plan:
    del vocabulary
    return Plan((ToolCall("timer_status", {"name": _timer_name(match)}),), tool_text=True)


def _answered_locally(match: IntentMatch, vocabulary: Vocabulary) -> Plan:
    """No tool: the response template answers (the brain fills slots.time and slots.date)."""
    del match, vocabulary
    return Plan()


PLANNERS: Final[dict[str, Planner]] = {
    "HassTurnOn": _switch(True),
    "HassTurnOff": _switch(False),
    "HassLightSet": _light_set,
    "HassSetPosition": _control("set_position", "position"),
    "HassClimateSetTemperature": _control("set_temperature", "temperature", "climate"),
    "HassMediaPause": _control("pause"),
    "HassMediaUnpause": _control("play"),
    "HassSetVolume": _volume,
    "HassGetState": _question("sensor"),
    "HassClimateGetTemperature": _question(_TEMPERATURE, _TEMPERATURE),
    "HassGetCurrentTime": _answered_locally,
    "HassGetCurrentDate": _answered_locally,
    "HassNevermind": _answered_locally,
    "HassStartTimer": _start_timer,
    "HassCancelTimer": _cancel_timer(every=False),
    "HassCancelAllTimers": _cancel_timer(every=True),
    "HassTimerStatus": _timer_status,
}


def plan(match: IntentMatch, vocabulary: Vocabulary) -> Plan | None:
    """The tool calls for `match`, or None when the local brain cannot act on it."""
    planner = PLANNERS.get(match.intent)
    return planner(match, vocabulary) if planner is not None else None


def readable(matcher: IntentMatcher, text: str, vocabulary: Vocabulary) -> bool:
    """Whether the brain can make anything of `text`: a command or question, or one about a device it does not
    know (answered "no device called ...")."""
    return matcher.match(" ".join(text.split()), vocabulary) is not None


def understood(matcher: IntentMatcher, text: str, vocabulary: Vocabulary) -> bool:
    """Whether `text` is something the brain can act on or answer (a question back counts)."""
    match = matcher.match_known(" ".join(text.split()), vocabulary)
    return match is not None and plan(match, vocabulary) is not None
