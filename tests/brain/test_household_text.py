"""The brain's sentences as text (what `pibuddy say` runs) against the real test Home Assistant: each answer is the
device's state there, each action is read back from Home Assistant itself."""

from __future__ import annotations

import pytest

from pibuddy.brain import LocalBrain, Outcome
from pibuddy.config import Config, HomeAssistantConfig, UpstreamConfig
from pibuddy.wiring.brain import local_brain
from pibuddy.wiring.tools import build_toolbox
from tests.peers.homeassistant import HomeAssistantPeer

pytestmark = pytest.mark.peer

_HELPERS = ["input_boolean.kitchen_fan", "input_boolean.guest_mode", "input_boolean.ceiling_fan_power"]


@pytest.fixture
def ha(homeassistant_peer: HomeAssistantPeer) -> HomeAssistantPeer:
    """The shared peer with the kitchen fan, guest mode and the ceiling fan off."""
    homeassistant_peer.start()  # a no-op unless a test left it stopped
    homeassistant_peer.call("input_boolean", "turn_off", {"entity_id": _HELPERS})
    return homeassistant_peer


@pytest.fixture
def brain(ha: HomeAssistantPeer) -> LocalBrain:
    config = Config(upstream=UpstreamConfig(enabled=False),
                    homeassistant=HomeAssistantConfig(enabled=True, url=ha.url, token=ha.token, timeout=10))
    return local_brain(config, build_toolbox(config))


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
