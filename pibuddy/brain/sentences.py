"""The one source of sentences: home-assistant-intents' templates (Apache-2.0) plus PiBuddy's own phrasings, in
hassil's format. The intent matcher matches text against them and the recogniser's grammar or language model is
generated from them (`pibuddy.brain.grammar`), so whatever the brain understands as text it can also hear.

PiBuddy's phrasings are what people say that the package lacks: dim/brighten to a level, start/stop, a device
unique by its kind ("open the blinds", "set the thermostat to 21 degrees"), a room's thermostat, "everything in
the kitchen", "all the lights" (`slots.everything` marks the switchable devices of a room), "set a pasta timer for
8 minutes", "how much time is left"; in Chinese, everything in a room. Each names the package's reply that fits
it ("open the blinds": "Opening"); where none fits, it has one of its own in the same format ("Turned off
everything in the kitchen").
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any, Final

import home_assistant_intents
from hassil import Intents
from hassil.util import merge_dict

from pibuddy.brain.errors import BrainUnavailable

EVERYTHING: Final = "everything"
"""The slot that asks for every switchable device in a room (not locks, covers or heating)."""

_LIGHTS: Final = {"requires_context": {"domain": "light"}}
_SWITCHABLE: Final = {"requires_context": {"domain": ["fan", "switch", "input_boolean", "media_player", "vacuum"]}}

# "8 minutes", "1 hour and 30 minutes", "2 minutes 30 seconds": the package's slot lists, in its order.
_TIMER_LENGTH: Final = ("({timer_hours:hours}( |-)hour[s] [[and] {timer_minutes:minutes}( |-)minute[s]]"
                        "|{timer_minutes:minutes}( |-)minute[s] [[and] {timer_seconds:seconds}( |-)second[s]]"
                        "|{timer_seconds:seconds}( |-)second[s])")

# Keyed by the package's language code.
_PHRASINGS: Final[dict[str, dict[str, Any]]] = {
    "en": {
        "intents": {
            "HassLightSet": {"data": [
                {"sentences": ["(dim|brighten|set) [the] {name} [brightness] to {brightness}[%| percent]"], **_LIGHTS},
                {"sentences": ["(dim|brighten|set) [the] {area} (light|lights|lamp|lamps) to {brightness}[%| percent]",
                               "(dim|brighten) [the] (light|lights|lamp|lamps) in [the] {area} to "
                               "{brightness}[%| percent]"],
                 "slots": {"domain": "light"}},
            ]},
            "HassTurnOn": {"data": [
                {"sentences": ["start [the] {name}"], **_SWITCHABLE},
                {"sentences": ["turn on all [of] [the] (lights|lamps)", "turn all [of] [the] (lights|lamps) on"],
                 "slots": {"domain": "light"}, "response": "light_all"},
                {"sentences": ["turn on [the] (light|lamp)", "turn [the] (light|lamp) on"],
                 "slots": {"domain": "light"}},
                {"sentences": ["(turn|switch) on [the] fan", "(turn|switch) [the] fan on"], "slots": {"domain": "fan"}},
                {"sentences": ["open [the] (blind|blinds|curtain|curtains|shade|shades|shutters)"],
                 "slots": {"domain": "cover"}, "response": "cover"},
                {"sentences": ["turn on everything in [the] {area}", "turn everything on in [the] {area}"],
                 "slots": {EVERYTHING: True}, "response": EVERYTHING},
            ]},
            "HassTurnOff": {"data": [
                {"sentences": ["stop [the] {name}"], **_SWITCHABLE},
                {"sentences": ["turn off [the] (light|lamp)", "turn [the] (light|lamp) off"],
                 "slots": {"domain": "light"}},
                {"sentences": ["(turn|switch) off [the] fan", "(turn|switch) [the] fan off"],
                 "slots": {"domain": "fan"}},
                {"sentences": ["close [the] (blind|blinds|curtain|curtains|shade|shades|shutters)"],
                 "slots": {"domain": "cover"}, "response": "cover"},
                {"sentences": ["turn off everything in [the] {area}", "turn everything off in [the] {area}"],
                 "slots": {EVERYTHING: True}, "response": EVERYTHING},
            ]},
            "HassStartTimer": {"data": [
                {"sentences": ["<timer_set> [a|an|my] {timer_name:name} timer for <timer_length>"],
                 "expansion_rules": {"timer_length": _TIMER_LENGTH}},
            ]},
            "HassTimerStatus": {"data": [
                {"sentences": ["(how much time|how long) [is] left", "how much time [do] (I|we) have left"]},
            ]},
            "HassClimateSetTemperature": {"data": [
                {"sentences": ["set [the] (thermostat|heating|temperature) to {temperature} [degrees]",
                               "set [the] {area} [thermostat|temperature] to {temperature} degrees",
                               "set [the] (thermostat|heating|temperature) in [the] {area} to {temperature} "
                               "[degrees]"],
                 "slots": {"domain": "climate"}},
            ]},
        },
        "responses": {"intents": {  # where the package has no fitting reply (no device type or name to say)
            "HassTurnOn": {EVERYTHING: "Turned on everything in the {{ slots.area }}"},
            "HassTurnOff": {EVERYTHING: "Turned off everything in the {{ slots.area }}"},
        }},
    },
    "zh-CN": {
        "intents": {
            "HassTurnOn": {"data": [
                {"sentences": ["<turn_on>{area}[的]<all>(设备|电器)",
                               "[把|将|让|给]{area}[的]<all>(设备|电器)<turn_on>"],
                 "slots": {EVERYTHING: True}, "response": EVERYTHING},
            ]},
            "HassTurnOff": {"data": [
                {"sentences": ["<turn_off>{area}[的]<all>(设备|电器)",
                               "[把|将|让|给]{area}[的]<all>(设备|电器)<turn_off>"],
                 "slots": {EVERYTHING: True}, "response": EVERYTHING},
            ]},
        },
        "responses": {"intents": {
            "HassTurnOn": {EVERYTHING: "{{ slots.area }}的所有设备已打开"},
            "HassTurnOff": {EVERYTHING: "{{ slots.area }}的所有设备已关闭"},
        }},
    },
}


@functools.cache
def load_intents(language: str) -> tuple[Intents, Mapping[str, Any]]:
    """The templates for `language` (a home-assistant-intents code) and the package's responses."""
    data = home_assistant_intents.get_intents(language)
    if data is None:
        raise BrainUnavailable(f"home-assistant-intents has no data file for {language}")
    data = copy.deepcopy(data)
    _ask_helpers_as_switches(data)
    merge_dict(data, copy.deepcopy(_PHRASINGS.get(language, {})))
    return Intents.from_dict(data), data.get("responses", {})


def _ask_helpers_as_switches(data: dict[str, Any]) -> None:
    """An input_boolean is switched on and off by the package's switch commands but asked about by none of its
    questions ("is the kitchen fan on" matched nothing): let every question that fits a switch fit it too, in
    every language. Questions that fit no switch (covers, locks, sensors) stay out of its reach."""
    for template in data.get("intents", {}).get("HassGetState", {}).get("data", []):
        domains = template.get("requires_context", {}).get("domain")
        listed = [domains] if isinstance(domains, str) else list(domains or [])
        if "switch" in listed and "input_boolean" not in listed:
            template["requires_context"]["domain"] = [*listed, "input_boolean"]
