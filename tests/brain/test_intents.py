"""Text -> intent -> tool calls over the recorded household, in English and Chinese; every planned call is
checked against the real Home Assistant tools' schemas; unknown devices and other requests get a sentence."""

from __future__ import annotations

import datetime
import functools
from typing import Any

import pytest

from pibuddy.brain import LocalBrain, Outcome
from pibuddy.brain.actions import plan
from pibuddy.brain.errors import BrainUnavailable
from pibuddy.brain.intents import IntentMatch, IntentMatcher, UnknownName, package_language
from pibuddy.brain.responses import Responses
from pibuddy.brain.vocabulary import Vocabulary
from pibuddy.config import HomeAssistantConfig
from pibuddy.drivers.homeassistant import HomeAssistantService, homeassistant_tools
from pibuddy.tools.builtin import builtin_tools
from pibuddy.tools.host import Host
from pibuddy.tools.registry import ToolRegistry
from pibuddy.tools.volume import SystemVolume
from tests.brain.conftest import FixedVocabulary
from tests.peers.ports import free_port

CONTROL, STATE, SCENE, SCRIPT = "ha_control_device", "ha_get_device_state", "ha_run_scene", "ha_run_script"

ENGLISH: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = [
    ("turn on the living room light", [(CONTROL, {"target": "light.living_room_light", "action": "turn_on"})]),
    ("switch on big lamp", [(CONTROL, {"target": "light.living_room_light", "action": "turn_on"})]),  # alias
    ("turn off the lights in the bedroom", [(CONTROL, {"target": "light.bedroom_light", "action": "turn_off"})]),
    ("turn off the lounge lights", [(CONTROL, {"target": "Living Room lights", "action": "turn_off"})]),  # area alias
    ("turn on the lights in the study", [(CONTROL, {"target": "light.desk_lamp", "action": "turn_on"})]),
    ("turn off all the lights", [(CONTROL, {"target": "all lights", "action": "turn_off"})]),
    ("set the floor lamp brightness to 40%", [(CONTROL, {"target": "light.floor_lamp", "action": "set_brightness",
                                                         "brightness": 40})]),
    ("set the floor lamp brightness to forty five percent",
     [(CONTROL, {"target": "light.floor_lamp", "action": "set_brightness", "brightness": 45})]),
    ("set the bedroom light to red", [(CONTROL, {"target": "light.bedroom_light", "action": "set_color",
                                                 "color": "red"})]),
    ("open the bedroom blinds", [(CONTROL, {"target": "cover.bedroom_blinds", "action": "open"})]),
    ("close the bedroom blinds", [(CONTROL, {"target": "cover.bedroom_blinds", "action": "close"})]),
    ("set the bedroom blinds to 30 percent", [(CONTROL, {"target": "cover.bedroom_blinds", "action": "set_position",
                                                         "position": 30})]),
    ("lock the front door", [(CONTROL, {"target": "lock.front_door", "action": "lock"})]),
    ("turn on the kitchen fan", [(CONTROL, {"target": "input_boolean.kitchen_fan", "action": "turn_on"})]),
    ("turn on the ceiling fan", [(CONTROL, {"target": "fan.ceiling_fan", "action": "turn_on"})]),  # device's area
    ("pause the kitchen speaker", [(CONTROL, {"target": "media_player.kitchen_speaker", "action": "pause"})]),
    ("activate movie time", [(SCENE, {"name": "scene.movie_time"})]),
    ("run good night", [(SCRIPT, {"name": "script.good_night"})]),
    ("is the floor lamp on", [(STATE, {"target": "light.floor_lamp"})]),
    ("is the kitchen fan on", [(STATE, {"target": "input_boolean.kitchen_fan"})]),  # a helper, asked as a switch
    ("is guest mode on", [(STATE, {"target": "input_boolean.guest_mode"})]),
    ("what is the temperature in the living room", [(STATE, {"target": "Living Room temperature"})]),
]

CHINESE: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = [
    ("打开客厅的灯", [(CONTROL, {"target": "Living Room lights", "action": "turn_on"})]),  # area alias 客厅
    ("关闭卧室的灯", [(CONTROL, {"target": "light.bedroom_light", "action": "turn_off"})]),
    ("打开书房的灯", [(CONTROL, {"target": "light.desk_lamp", "action": "turn_on"})]),
    ("打开台灯", [(CONTROL, {"target": "light.desk_lamp", "action": "turn_on"})]),  # registry name override
    ("打开书桌灯", [(CONTROL, {"target": "light.desk_lamp", "action": "turn_on"})]),  # alias
    ("把台灯亮度调到40%", [(CONTROL, {"target": "light.desk_lamp", "action": "set_brightness", "brightness": 40})]),
    ("打开窗帘", [(CONTROL, {"target": "cover.bedroom_blinds", "action": "open"})]),
    ("锁上大门", [(CONTROL, {"target": "lock.front_door", "action": "lock"})]),
    ("打开大门", [(CONTROL, {"target": "lock.front_door", "action": "unlock"})]),  # zh templates: open a lock
    ("关掉所有的灯", [(CONTROL, {"target": "all lights", "action": "turn_off"})]),
    ("客厅温度是多少", [(STATE, {"target": "Living Room temperature"})]),
]


@pytest.fixture(scope="module")
def schemas() -> ToolRegistry:
    """The real tools (never called here): planned arguments must pass their schemas."""
    registry = ToolRegistry()
    service = HomeAssistantService(HomeAssistantConfig(enabled=True))
    for tool in [*builtin_tools(SystemVolume(), Host()), *homeassistant_tools(service)]:
        registry.register(tool)
    return registry


_matcher = functools.cache(IntentMatcher)  # compiling the templates is the slow part: once per language


def _planned(language: str, text: str, household: Vocabulary) -> list[tuple[str, dict[str, Any]]]:
    match = _matcher(language).match(text, household)
    assert isinstance(match, IntentMatch), f"{text!r} was not understood: {match}"
    planned = plan(match, household)
    assert planned is not None, f"{text!r} ({match.intent}) has no plan"
    return [(call.tool, dict(call.arguments)) for call in planned.calls]


@pytest.mark.parametrize(("text", "calls"), ENGLISH, ids=[t for t, _ in ENGLISH])
def test_english_commands_become_tool_calls(text: str, calls: list[Any], household: Vocabulary,
                                            schemas: ToolRegistry) -> None:
    planned = _planned("en", text, household)
    assert planned == calls
    for tool, arguments in planned:
        checked = schemas.get(tool)
        assert checked is not None
        checked.check(arguments)  # raises InvalidArguments if the tool would refuse them


@pytest.mark.parametrize(("text", "calls"), CHINESE, ids=[t for t, _ in CHINESE])
def test_chinese_commands_become_tool_calls(text: str, calls: list[Any], household: Vocabulary,
                                            schemas: ToolRegistry) -> None:
    planned = _planned("zh-CN", text, household)
    assert planned == calls
    for tool, arguments in planned:
        schemas.get(tool).check(arguments)  # type: ignore[union-attr]


@pytest.mark.parametrize(("language", "text", "name"), [
    ("en", "turn on the toaster", "toaster"),
    ("en", "switch off the big toaster in the kitchen", "big toaster"),
    ("zh-CN", "打开烤面包机", "烤面包机")])
def test_unknown_devices_are_named_back(language: str, text: str, name: str, household: Vocabulary) -> None:
    match = _matcher(language).match(text, household)
    assert isinstance(match, UnknownName)
    assert match.name == name


@pytest.mark.parametrize("text", ["is the front door on", "is the bedroom blinds on",
                                  "is the living room thermostat on", "is the kitchen fan open"])
def test_only_switch_like_things_are_asked_whether_they_are_on(text: str, household: Vocabulary) -> None:
    assert not isinstance(_matcher("en").match(text, household), IntentMatch)


def _brain(language: str, household: Vocabulary, registry: ToolRegistry | None = None) -> LocalBrain:
    return LocalBrain(registry or ToolRegistry(), [FixedVocabulary(household)], language=language,
                      clock=lambda: datetime.datetime(2026, 11, 22, 14, 5))


@pytest.mark.parametrize(("language", "text", "outcome", "said"), [
    ("en", "turn on the toaster", Outcome.UNKNOWN_DEVICE, "Sorry, I am not aware of any device called toaster"),
    ("en", "tell me a joke", Outcome.CANNOT, "Sorry, I can't do that offline."),
    ("en", "what is the meaning of life", Outcome.CANNOT, "Sorry, I can't do that offline."),
    ("en", "what's the weather like", Outcome.CANNOT, "Sorry, I can't do that offline."),  # an intent, no tool
    ("en", "add milk to the shopping list", Outcome.CANNOT, "Sorry, I can't do that offline."),
    ("en", "", Outcome.NOT_HEARD, "Sorry, I didn't catch that."),
    ("en", "what time is it", Outcome.ANSWERED, "2:05 PM"),  # from the package's response template
    ("en", "never mind", Outcome.NOTHING, ""),
    ("zh-CN", "讲个笑话", Outcome.CANNOT, "抱歉，离线时我做不到这个。"),
    ("zh-CN", "打开烤面包机", Outcome.UNKNOWN_DEVICE, "抱歉，找不到名为 烤面包机 的设备"),
    ("zh-CN", "现在几点", Outcome.ANSWERED, "下午2点05分"),
    ("zh-CN", "打开客厅的灯", Outcome.ASKED, "抱歉，客厅的哪个灯？"),  # was "抱歉，哪个灯 in the 客厅？"
])
async def test_what_the_brain_says_without_calling_a_tool(language: str, text: str, outcome: Outcome, said: str,
                                                          household: Vocabulary) -> None:
    reply = await _brain(language, household).handle(text)
    assert (reply.outcome, reply.text, reply.calls) == (outcome, said, ())


@pytest.mark.parametrize(("intent", "key", "slots", "domain", "said"), [
    ("HassTurnOff", "default", {}, "light", "Turned off the light"),
    ("HassTurnOff", "default", {}, "cover", None),  # the package's template: "Turned off None"
    ("HassTurnOff", "default", {}, None, None),
    ("HassTurnOn", "cover_device_class", {"device_class": "curtain"}, "cover", "Opening the curtain"),
    ("HassTurnOn", "cover_device_class", {}, "cover", None),  # "Opening the "
])
def test_a_response_that_would_say_a_missing_value_is_not_said(intent: str, key: str, slots: dict[str, Any],
                                                                domain: str | None, said: str | None) -> None:
    """The caller then speaks the tool's own text."""
    assert Responses(_matcher("en").responses).intent(intent, key, slots, domain=domain) == said


async def test_a_failing_tool_says_why_in_one_short_sentence(household: Vocabulary) -> None:
    """Home Assistant is down (nothing listens on the port): that, not the tool's text for the LLM."""
    registry = ToolRegistry()
    dead = HomeAssistantService(HomeAssistantConfig(enabled=True, url=f"http://127.0.0.1:{free_port()}",
                                                    token="t", timeout=2))
    for tool in homeassistant_tools(dead):
        registry.register(tool)
    reply = await _brain("en", household, registry).handle("turn on the living room light")
    assert reply.outcome is Outcome.FAILED
    assert [r.call.tool for r in reply.calls] == [CONTROL]
    assert reply.text == "Sorry, I can't reach Home Assistant right now."


def test_languages_map_to_the_package_and_unknown_ones_are_refused() -> None:
    assert [package_language(x) for x in ("en-US", "en", "zh", "zh-cn", "zh_CN", "zh-Hans")] == \
        ["en", "en", "zh-CN", "zh-CN", "zh-CN", "zh-CN"]
    with pytest.raises(BrainUnavailable, match="no sentences for language 'tlh'"):
        package_language("tlh")
