"""The brain's sentences as text (what `pibuddy say` runs) against the real test Home Assistant: each answer is the
device's state there, each action is read back from Home Assistant itself."""

from __future__ import annotations

import re

import pytest

from pibuddy.brain import LocalBrain, Outcome
from pibuddy.config import BrainConfig, Config, HomeAssistantConfig, UpstreamConfig
from pibuddy.wiring.brain import local_brain
from pibuddy.wiring.tools import build_toolbox
from tests.brain.household import COMMANDS, KFAN, NON_COMMANDS, SPEAKER
from tests.peers.homeassistant import HomeAssistantPeer

pytestmark = pytest.mark.peer

_HELPERS = ["input_boolean.kitchen_fan", "input_boolean.guest_mode", "input_boolean.ceiling_fan_power"]


@pytest.fixture
def ha(homeassistant_peer: HomeAssistantPeer) -> HomeAssistantPeer:
    """The shared peer with the kitchen fan, guest mode and the ceiling fan off."""
    homeassistant_peer.start()  # a no-op unless a test left it stopped
    homeassistant_peer.call("input_boolean", "turn_off", {"entity_id": _HELPERS})
    return homeassistant_peer


def _brain(ha: HomeAssistantPeer, language: str = "en") -> LocalBrain:
    config = Config(upstream=UpstreamConfig(enabled=False), brain=BrainConfig(language=language),
                    homeassistant=HomeAssistantConfig(enabled=True, url=ha.url, token=ha.token, timeout=10))
    return local_brain(config, build_toolbox(config))


@pytest.fixture
def brain(ha: HomeAssistantPeer) -> LocalBrain:
    return _brain(ha)


@pytest.mark.parametrize(("question", "entity", "name"), [
    ("is the kitchen fan on", "input_boolean.kitchen_fan", "Kitchen Fan"),  # matched no intent at all
    ("is guest mode on", "input_boolean.guest_mode", "Guest Mode"),  # read as a device called "is guest mode"
])
async def test_a_switch_like_helper_is_asked_whether_it_is_on(brain: LocalBrain, ha: HomeAssistantPeer,
                                                               question: str, entity: str, name: str) -> None:
    for state in ("on", "off"):
        ha.call("input_boolean", f"turn_{state}", {"entity_id": entity})
        reply = await brain.handle(question)
        assert (reply.outcome, reply.text) == (Outcome.ANSWERED, f"{name} is {state}.")
        assert [(r.call.tool, dict(r.call.arguments)) for r in reply.calls] == [
            ("ha_get_device_state", {"target": entity})]
        assert ha.state(entity)["state"] == state, "a question changes nothing"


async def test_the_ceiling_fan_is_switched_by_its_name_and_is_the_one_fan(brain: LocalBrain,
                                                                          ha: HomeAssistantPeer) -> None:
    for command, state in [("turn on the ceiling fan", "on"), ("turn off the ceiling fan", "off"),
                           ("turn the ceiling fan on", "on"), ("turn off the fan", "off"), ("turn on the fan", "on")]:
        reply = await brain.handle(command)
        assert reply.outcome is Outcome.DONE, (command, reply)
        assert [(r.call.tool, dict(r.call.arguments)) for r in reply.calls] == [
            ("ha_control_device", {"target": "fan.ceiling_fan", "action": f"turn_{state}"})], command
        assert ha.state("fan.ceiling_fan")["state"] == state, command
    assert ha.state("input_boolean.kitchen_fan")["state"] == "off", "the kitchen fan is a fan only by its name"


@pytest.mark.parametrize(("language", "command", "state", "said"), [
    ("en", "turn off everything in the kitchen", "off", "Turned off everything in the kitchen"),  # "Turned off None"
    ("en", "turn on everything in the kitchen", "on", "Turned on everything in the kitchen"),
    ("zh-CN", "关闭厨房的所有设备", "off", "厨房的所有设备已关闭"),
])
async def test_everything_in_a_room_is_switched_and_said_so(ha: HomeAssistantPeer, language: str, command: str,
                                                             state: str, said: str) -> None:
    before = "off" if state == "on" else "on"
    ha.call("input_boolean", f"turn_{before}", {"entity_id": KFAN})
    ha.call("media_player", f"turn_{before}", {"entity_id": SPEAKER})
    reply = await _brain(ha, language).handle(command)
    assert (reply.outcome, reply.text) == (Outcome.DONE, said)
    assert sorted(((r.call.tool, dict(r.call.arguments)) for r in reply.calls), key=lambda c: c[1]["target"]) == [
        ("ha_control_device", {"target": KFAN, "action": f"turn_{state}"}),
        ("ha_control_device", {"target": SPEAKER, "action": f"turn_{state}"})]
    assert ha.state(KFAN)["state"] == state
    assert (ha.state(SPEAKER)["state"] == "off") == (state == "off")


# A reply that says a value the brain did not have: "None", an empty "the ." or an unfilled "{area}" / "{{ x }}".
_UNFILLED = re.compile(r"\bNone\b|[{}]|\bthe\s*[.?!]?$")


_SENTENCES = {
    "en": [c.text for c in COMMANDS] + NON_COMMANDS + ["turn on everything in the kitchen", "open the curtains"],
    "zh-CN": ["打开客厅的灯", "关闭卧室的灯", "打开台灯", "打开窗帘", "关闭卧室的窗帘", "锁上大门", "打开大门",
              "关掉所有的灯", "客厅温度是多少", "现在几点", "今天几号", "关闭厨房的所有设备", "把厨房的所有电器打开",
              "打开烤面包机", "讲个笑话"],
}


@pytest.mark.parametrize("language", list(_SENTENCES))
async def test_no_reply_says_a_missing_value(ha: HomeAssistantPeer, language: str) -> None:
    """Every reply the brain gives to the bench's sentences (and the Chinese ones of tests/brain/test_intents.py) as
    text, acting on the real Home Assistant: the template responses of every intent it handles, its own phrases
    and the tools' text."""
    brain = _brain(ha, language)
    replies = {text: (await brain.handle(text)).text for text in _SENTENCES[language]}
    assert [(text, said) for text, said in replies.items() if _UNFILLED.search(said) or not said.strip()] == []
