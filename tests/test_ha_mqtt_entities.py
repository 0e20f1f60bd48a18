"""The Home Assistant entities' pure parts: discovery configs, states from a snapshot, and strict command parsing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pibuddy.control import AssistantState, Snapshot, TimerStatus
from pibuddy.ha_mqtt.commands import MAX_PAYLOAD_BYTES, Announce, BadCommand, SetMuted, SetVolume, parse_command
from pibuddy.ha_mqtt.entities import DeviceInfo, Topics, discovery_messages, state_messages

TOPICS = Topics("pibuddy/aabbcc000001")


@pytest.mark.parametrize(("key", "payload", "expected"), [
    ("volume", b"42", SetVolume(42)),
    ("volume", b"42.0", SetVolume(42)),  # what Home Assistant's number may send
    ("volume", b"150", SetVolume(150)),  # in range or not is the control layer's rule, as for the CLI
    ("mute", b"ON", SetMuted(True)),
    ("mute", b"off", SetMuted(False)),
    ("announce", "Le dîner est prêt".encode(), Announce("Le dîner est prêt")),
])
def test_commands_home_assistant_sends(key: str, payload: bytes, expected: object) -> None:
    assert parse_command(key, payload) == expected


@pytest.mark.parametrize(("key", "payload", "reason"), [
    ("volume", b"42.5", "'42.5' is not a whole number"),
    ("volume", b"inf", "'inf' is not a whole number"),
    ("volume", b"nan", "'nan' is not a whole number"),
    ("volume", b"", "'' is not a number"),
    ("mute", b"MAYBE", "'MAYBE' is not ON or OFF"),
    ("announce", b"\xff", "the payload is not UTF-8 text"),
    ("announce", b"x" * (MAX_PAYLOAD_BYTES + 1), f"{MAX_PAYLOAD_BYTES + 1} bytes is too long"),
    ("state", b"idle", "'state' takes no commands"),
])
def test_bad_commands_say_why(key: str, payload: bytes, reason: str) -> None:
    with pytest.raises(BadCommand, match=reason):
        parse_command(key, payload)


def test_only_pibuddys_own_command_topics_are_commands() -> None:
    assert TOPICS.command_key("pibuddy/aabbcc000001/volume/set") == "volume"
    assert TOPICS.command_key("pibuddy/aabbcc000001/state/set") is None, "a state takes no commands"
    assert TOPICS.command_key("pibuddy/other/volume/set") is None
    assert TOPICS.command_key("pibuddy/aabbcc000001/volume") is None


def test_the_birth_message_is_heard_on_the_prefix_and_on_home_assistants_default() -> None:
    assert TOPICS.ha_status == ("homeassistant/status",)
    assert Topics("pibuddy/x", "ha").ha_status == ("ha/status", "homeassistant/status")


def test_discovery_names_one_device_and_gives_each_entity_its_topics() -> None:
    device = DeviceInfo.for_buddy("AA:BB:CC:00:00:01", "Kitchen", "1.2.3", configuration_url="http://192.0.2.5:8007/")
    messages = {topic: json.loads(payload) for topic, payload in discovery_messages(device, TOPICS).items()}
    assert len(messages) == 11
    volume = messages["homeassistant/number/pibuddy_aabbcc000001/volume/config"]
    assert (volume["min"], volume["max"], volume["command_topic"], volume["state_topic"]) == (
        0, 100, "pibuddy/aabbcc000001/volume/set", "pibuddy/aabbcc000001/volume")
    assert volume["device"] == {"identifiers": ["pibuddy_aabbcc000001"], "name": "PiBuddy Kitchen",
                                "manufacturer": "PiBuddy", "model": "PiBuddy voice buddy", "sw_version": "1.2.3",
                                "configuration_url": "http://192.0.2.5:8007/"}
    assert len({m["unique_id"] for m in messages.values()}) == 11
    assert all(m["availability"][0] == {"topic": "pibuddy/aabbcc000001/availability"} for m in messages.values())
    timer = messages["homeassistant/sensor/pibuddy_aabbcc000001/timer/config"]
    assert timer["availability"][1]["topic"] == "pibuddy/aabbcc000001/timer/present"
    assert timer["availability_mode"] == "all", "offline PiBuddy or no timer: unavailable"
    announce = messages["homeassistant/text/pibuddy_aabbcc000001/announce/config"]
    assert "state_topic" not in announce
    assert announce["max"] == 255
    plain = DeviceInfo.for_buddy("aa:bb:cc:00:00:01", "PiBuddy", "1.2.3")
    assert "configuration_url" not in plain.to_json()
    assert plain.name == "PiBuddy", "not 'PiBuddy PiBuddy'"


_IDLE = Snapshot(state=AssistantState.IDLE, device_state="idle", brain="upstream", upstream=None, muted=False,
                 volume=None, last_heard="", last_reply="", gateway_devices=(), timers=(), services=())


def test_states_are_what_home_assistant_accepts() -> None:
    states = state_messages(dataclasses.replace(_IDLE, last_reply="word " * 100, timers=(
        TimerStatus("a", "tea", 60, 0, 1000.0, True),  # ringing: over, not "running"
        TimerStatus("b", "pasta", 600, 500, 2_000_000_000.0, False),
        TimerStatus("c", "eggs", 300, 100, 1_900_000_000.0, False))), TOPICS)
    assert states["pibuddy/aabbcc000001/timer"] == b"2030-03-17T17:46:40+00:00", "the soonest running timer"
    assert states["pibuddy/aabbcc000001/timer/present"] == b"ON"
    assert list(states).index("pibuddy/aabbcc000001/timer") < list(states).index("pibuddy/aabbcc000001/timer/present")
    idle = state_messages(_IDLE, TOPICS)
    assert idle["pibuddy/aabbcc000001/timer/present"] == b"OFF"
    assert "pibuddy/aabbcc000001/timer" not in idle, "Home Assistant 2024.3 warns about any non-time payload"
    reply = states["pibuddy/aabbcc000001/last_reply"].decode()
    assert len(reply) == 255
    assert reply.endswith("…")
    assert states["pibuddy/aabbcc000001/volume"] == b"None", "unknown until the mixer was read"
    assert states["pibuddy/aabbcc000001/upstream"] == b"OFF"
    assert json.loads(states["pibuddy/aabbcc000001/upstream/attributes"]) == {"transport": "",
                                                                              "detail": "not tried yet"}
