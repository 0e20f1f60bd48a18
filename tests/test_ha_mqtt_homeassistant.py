"""PiBuddy as a Home Assistant device, end to end: a real mosquitto, the real Home Assistant 2024.3.3 with its
MQTT integration set up through the config-flow REST API, and PiBuddy's real control layer, bus and MQTT
service (`tests.ha_mqtt_helpers`), or `pibuddy run` itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import aiomqtt
import pytest

from pibuddy import __version__
from pibuddy.control import ActionRecord, GatewayDevice
from pibuddy.events import (
    EventBus,
    Muted,
    Say,
    TurnProgress,
    TurnStage,
    UpstreamLink,
    WakeDetected,
)
from pibuddy.gateway.service import GatewayService
from pibuddy.statedir import StateDir
from tests.gateway.conftest import connect_device, gateway_config
from tests.ha_mqtt_helpers import Buddy, DeviceList, running_buddy
from tests.peers.homeassistant import HomeAssistantPeer, homeassistant_peer  # noqa: F401 (fixture)
from tests.peers.mosquitto import SKIP_REASON, MosquittoBroker, mosquitto_binary
from tests.polling import eventually

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason=SKIP_REASON)

_HA_SECONDS: Final = 30.0  # Home Assistant on a loaded 2-core machine: discovery and states within this
_PROMPT_SECONDS: Final = 1.0  # an event to the broker: milliseconds; the 2 s comparison it replaced, up to 2 s


@contextlib.asynccontextmanager
async def _home_assistant_on(peer: HomeAssistantPeer, broker: MosquittoBroker) -> AsyncIterator[None]:
    entry = await asyncio.to_thread(peer.add_mqtt, broker.host, broker.port)
    try:
        yield
    finally:
        await asyncio.to_thread(peer.remove_config_entry, entry)


async def _entities(peer: HomeAssistantPeer, node_id: str) -> dict[str, str]:
    """Wait until Home Assistant registered all 11 entities of the PiBuddy `node_id`; entity key -> entity id."""
    prefix = node_id + "_"
    deadline = time.monotonic() + _HA_SECONDS
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        found = {unique[len(prefix):]: entity for unique, entity in
                 (await asyncio.to_thread(peer.entity_ids_by_unique_id, "mqtt")).items() if unique.startswith(prefix)}
        if len(found) == 11:
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(f"Home Assistant registered only {sorted(found)}:\n{peer.log_tail()}")


def _registered(peer: HomeAssistantPeer, node_id: str) -> set[str]:
    prefix = node_id + "_"
    return {unique[len(prefix):] for unique in peer.entity_ids_by_unique_id("mqtt") if unique.startswith(prefix)}


async def _ha_state(peer: HomeAssistantPeer, entities: dict[str, str], key: str,
                    wanted: Callable[[dict[str, Any]], bool], within: float = _HA_SECONDS) -> dict[str, Any]:
    """The entity's state in Home Assistant's state machine once `wanted` holds for it."""
    entity_id = entities[key]
    deadline = time.monotonic() + within
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = await asyncio.to_thread(peer.state, entity_id)
        if wanted(state):
            return state
        await asyncio.sleep(0.2)
    raise AssertionError(f"{entity_id} never got there; last seen {state}")


def _known(state: dict[str, Any]) -> bool:
    return state["state"] not in ("unknown", "unavailable")


def _is(value: str) -> Callable[[dict[str, Any]], bool]:
    return lambda state: state["state"] == value


async def _call(peer: HomeAssistantPeer, domain: str, service: str, data: dict[str, Any]) -> None:
    await asyncio.to_thread(peer.call, domain, service, data)


async def test_entities_appear_with_the_buddys_states_and_follow_its_changes(
        homeassistant_peer: HomeAssistantPeer, tmp_path: Path) -> None:  # noqa: F811
    peer = homeassistant_peer
    async with MosquittoBroker(tmp_path) as broker, running_buddy(broker, "aa:bb:cc:00:00:01", "Kitchen") as buddy:
        await asyncio.sleep(0.5)  # PiBuddy first: Home Assistant finds the retained discovery when it connects
        async with _home_assistant_on(peer, broker):
            entities = buddy.entities = await _entities(peer, buddy.service.device.node_id)
            assert entities["volume"] == "number.pibuddy_kitchen_volume"
            assert entities["announce"] == "text.pibuddy_kitchen_announce"
            [devices] = await asyncio.to_thread(peer.ws, [{"type": "config/device_registry/list"}])
            [device] = [d for d in devices if ["mqtt", "pibuddy_aabbcc000001"] in d["identifiers"]]
            assert (device["name"], device["manufacturer"], device["sw_version"]) == (
                "PiBuddy Kitchen", "PiBuddy", __version__)

            assert float((await _ha_state(peer, buddy.entities, "volume", _known))["state"]) == 40
            await _ha_state(peer, buddy.entities, "state", _is("idle"))
            await _ha_state(peer, buddy.entities, "mute", _is("off"))
            await _ha_state(peer, buddy.entities, "brain", _is("upstream"))
            link = await _ha_state(peer, buddy.entities, "upstream", _is("on"))
            assert link["attributes"]["transport"] == "mqtt"
            await _ha_state(peer, buddy.entities, "gateway_devices", _is("0"))
            await _ha_state(peer, buddy.entities, "timer", _is("unavailable"))  # no timer runs

            # PiBuddy's side changes: a turn, the microphone muted by its button, the server gone, a timer,
            # an ESP32 on the gateway, the wake word
            bus = buddy.bus
            bus.publish(TurnProgress(TurnStage.WAKE, "xiaozhi"))
            bus.publish(TurnProgress(TurnStage.HEARD, "xiaozhi", "what time is it"))
            bus.publish(TurnProgress(TurnStage.REPLY, "xiaozhi", "It is " + "very " * 80 + "late."))
            bus.publish(TurnProgress(TurnStage.END, "xiaozhi"))
            await _ha_state(peer, buddy.entities, "last_heard", _is("what time is it"))
            reply = await _ha_state(peer, buddy.entities, "last_reply", lambda s: s["state"].startswith("It is very"))
            assert len(reply["state"]) == 255, "cut to what Home Assistant holds"
            assert reply["state"].endswith("…")
            bus.publish(Muted(True))
            await _ha_state(peer, buddy.entities, "mute", _is("on"))
            await _ha_state(peer, buddy.entities, "state", _is("muted"))
            bus.publish(Muted(False))
            bus.publish(UpstreamLink(False, "mqtt", "server unreachable"))
            await _ha_state(peer, buddy.entities, "state", _is("offline"))
            await _ha_state(peer, buddy.entities, "upstream", _is("off"))
            ends = int(buddy.timers.start_timer(300, "pasta").ends_at)
            assert isinstance(buddy.gateway, DeviceList)
            buddy.gateway.connect(GatewayDevice("GID_test@@@aa_bb_cc_dd_ee_02@@@u", "aa:bb:cc:dd:ee:02", "127.0.0.2",
                                                False))
            timer = await _ha_state(peer, buddy.entities, "timer", _known)
            assert datetime.fromisoformat(timer["state"]).timestamp() == ends
            assert timer["attributes"]["timers"][0]["name"] == "pasta"
            listed = await _ha_state(peer, buddy.entities, "gateway_devices", _is("1"))
            assert listed["attributes"]["devices"][0]["mac"] == "aa:bb:cc:dd:ee:02"
            bus.publish(WakeDetected("hey buddy", score=0.87))
            wake = await _ha_state(peer, entities, "wake", lambda s: s["attributes"].get("event_type") == "wake_word")
            assert (wake["attributes"]["wake_word"], wake["attributes"]["score"]) == ("hey buddy", 0.87)

            buddy.timers.cancel_timer(every=True)
            await _ha_state(peer, entities, "timer", _is("unavailable"))

            # PiBuddy stops: its entities go unavailable in Home Assistant
            buddy.supervisor.request_stop()
            await _ha_state(peer, entities, "volume", _is("unavailable"))
        complaints = [line for line in peer.log_tail(2000).splitlines() if "pibuddy/aabbcc000001" in line]
        assert not complaints, "Home Assistant took every payload PiBuddy sent"


async def test_a_device_joining_the_gateway_shows_in_home_assistant_at_once_without_a_poll(
        homeassistant_peer: HomeAssistantPeer, tmp_path: Path) -> None:  # noqa: F811
    """The real gateway publishes its device list's changes; PiBuddy's state goes out on the event, not on a
    periodic comparison (tests/test_control_layer.py shows no snapshot comes without an event)."""
    peer = homeassistant_peer
    bus = EventBus()
    gateway = GatewayService(gateway_config([]), state_dir=StateDir(tmp_path / "gateway"), bus=bus)
    topic = "pibuddy/aabbcc000005/gateway_devices"
    async with MosquittoBroker(tmp_path) as broker, _home_assistant_on(peer, broker), \
            aiomqtt.Client(broker.host, broker.port) as watcher, \
            running_buddy(broker, "aa:bb:cc:00:00:05", "Hall", bus=bus, gateway=gateway) as buddy:
        await watcher.subscribe(topic)
        states = aiter(watcher.messages)
        entities = await _entities(peer, buddy.service.device.node_id)
        await _ha_state(peer, entities, "gateway_devices", _is("0"))
        await eventually(lambda: gateway.ota is not None, 10)
        async with asyncio.timeout(10):
            while (await anext(states)).payload != b"0":
                pass

        device = await connect_device(gateway, 7)
        connected = time.monotonic()
        async with asyncio.timeout(_PROMPT_SECONDS):
            assert (await anext(states)).payload == b"1"
        joined_after = time.monotonic() - connected
        listed = await _ha_state(peer, entities, "gateway_devices", _is("1"))
        assert [d["mac"] for d in listed["attributes"]["devices"]] == ["aa:bb:cc:dd:ee:07"]

        await device.close()
        closed = time.monotonic()
        async with asyncio.timeout(_PROMPT_SECONDS):
            assert (await anext(states)).payload == b"0"
        left_after = time.monotonic() - closed
        await _ha_state(peer, entities, "gateway_devices", _is("0"))
    logging.getLogger(__name__).info("gateway devices on the wire %.0f ms after joining, %.0f ms after leaving",
                                     joined_after * 1000, left_after * 1000)


async def test_home_assistant_service_calls_act_on_the_buddy_as_the_cli_does(
        homeassistant_peer: HomeAssistantPeer, tmp_path: Path) -> None:  # noqa: F811
    peer = homeassistant_peer
    async with MosquittoBroker(tmp_path) as broker, _home_assistant_on(peer, broker), \
            running_buddy(broker, "aa:bb:cc:00:00:02", "Study") as buddy:
        # Home Assistant first: PiBuddy's discovery arrives live
        buddy.entities = await _entities(peer, buddy.service.device.node_id)
        await _ha_state(peer, buddy.entities, "volume", _known)
        with buddy.bus.subscribe() as events:
            await _call(peer, "number", "set_value", {"entity_id": buddy.entities["volume"], "value": 25})
            await _ha_state(peer, buddy.entities, "volume", lambda s: _known(s) and float(s["state"]) == 25)
            assert buddy.mixer.percent == 25
            await _call(peer, "switch", "turn_on", {"entity_id": buddy.entities["mute"]})
            await _ha_state(peer, buddy.entities, "mute", _is("on"))
            await _call(peer, "switch", "turn_off", {"entity_id": buddy.entities["mute"]})
            await _ha_state(peer, buddy.entities, "mute", _is("off"))
            await _call(peer, "text", "set_value", {"entity_id": buddy.entities["announce"],
                                                    "value": "Dinner is ready"})
            async with asyncio.timeout(10):
                while not isinstance(event := await events.get(), Say):
                    pass
            assert event == Say("Dinner is ready", chime=True)
        actions = [(a.source, a.name) for a in buddy.control.history() if isinstance(a, ActionRecord)]
        assert actions == [("homeassistant", "set_volume"), ("homeassistant", "mute"),
                           ("homeassistant", "unmute"), ("homeassistant", "announce")]


async def test_bad_commands_are_one_log_line_and_the_buddy_survives_broker_and_ha_restarts(
        homeassistant_peer: HomeAssistantPeer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    peer = homeassistant_peer
    caplog.set_level(logging.INFO)
    async with MosquittoBroker(tmp_path) as broker, _home_assistant_on(peer, broker), \
            running_buddy(broker, "aa:bb:cc:00:00:03", "Hall") as buddy:
        buddy.entities = await _entities(peer, buddy.service.device.node_id)
        await _ha_state(peer, buddy.entities, "volume", _known)
        base = buddy.service.topics.base
        async with aiomqtt.Client(broker.host, broker.port) as raw:
            for topic, payload in [("volume/set", b"150"), ("volume/set", b"loud"), ("mute/set", b"MAYBE"),
                                   ("announce/set", b"x" * 100_000), ("announce/set", b"\xff\xfe")]:
                await raw.publish(f"{base}/{topic}", payload)
        expected = ["volume, refused: volume must be 0 to 100, not 150", "volume, refused: 'loud' is not a number",
                    "mute, refused: 'MAYBE' is not ON or OFF", "announce, refused: 100000 bytes is too long",
                    "announce, refused: the payload is not UTF-8 text"]
        await eventually(lambda: all(f"Home Assistant asked for {line}" in caplog.text for line in expected), 10)
        assert buddy.mixer.percent == 40

        # the broker goes away (and with it every retained message) and comes back: PiBuddy reconnects and
        # publishes itself again; Home Assistant's birth message asks for it too
        await broker.restart(downtime=1.0)
        await _call_until_accepted(peer, buddy, 55)
        await _ha_state(peer, buddy.entities, "state", _is("idle"))

        # the retained discovery of an entity is gone (a broker without persistence, a cleanup): Home Assistant
        # drops the entity, and its birth message ("online" on homeassistant/status) brings it back
        topics, node = buddy.service.topics, buddy.service.device.node_id
        async with aiomqtt.Client(broker.host, broker.port) as raw:
            await raw.publish(topics.discovery("number", node, "volume"), b"", qos=1, retain=True)
            await eventually(lambda: "volume" not in _registered(peer, node), _HA_SECONDS)
            await raw.publish("homeassistant/status", b"online", qos=1)
        buddy.entities = await _entities(peer, node)
        await _ha_state(peer, buddy.entities, "volume", lambda s: _known(s) and float(s["state"]) == 55)

        # Home Assistant restarts: its birth message brings PiBuddy's discovery and states back
        await asyncio.to_thread(peer.stop)
        buddy.mixer.percent = 61  # changed behind Home Assistant's back
        await buddy.control.volume()
        peer.start()  # from the main thread: Home Assistant dies with the thread that started it (PDEATHSIG)
        await _ha_state(peer, buddy.entities, "volume", lambda s: _known(s) and float(s["state"]) == 61)
        await _call(peer, "switch", "turn_on", {"entity_id": buddy.entities["mute"]})
        await _ha_state(peer, buddy.entities, "mute", _is("on"))
    assert "Traceback" not in caplog.text


async def _call_until_accepted(peer: HomeAssistantPeer, buddy: Buddy, percent: int) -> None:
    """number.set_value until PiBuddy's mixer has it: both sides reconnect on their own schedules."""
    deadline = time.monotonic() + _HA_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # HA answers 400 while the entity is unavailable
            await _call(peer, "number", "set_value", {"entity_id": buddy.entities["volume"], "value": percent})
        await asyncio.sleep(0.5)
        if buddy.mixer.percent == percent:
            await _ha_state(peer, buddy.entities, "volume", lambda s: _known(s) and float(s["state"]) == percent)
            return
    raise AssertionError(f"PiBuddy never got the volume after the broker came back:\n{peer.log_tail()}")


async def test_pibuddy_run_is_a_device_in_home_assistant_and_its_last_will_marks_it_unavailable(
        homeassistant_peer: HomeAssistantPeer, tmp_path: Path, pibuddy_env: dict[str, str], python: str  # noqa: F811
) -> None:
    peer = homeassistant_peer
    config = tmp_path / "config.yaml"
    async with MosquittoBroker(tmp_path) as broker, _home_assistant_on(peer, broker):
        config.write_text(f"""
device: {{name: Porch, device_id: "AA-BB-CC-00-00-04"}}
audio: {{enabled: false}}
upstream: {{enabled: false}}
gateway: {{enabled: false}}
homeassistant:
  mqtt: {{broker: "mqtt://{broker.host}:{broker.port}"}}
""")
        command = [python, "-m", "pibuddy", "run", "--config", str(config)]
        process = await asyncio.create_subprocess_exec(*command, env=pibuddy_env, stderr=asyncio.subprocess.DEVNULL)
        try:
            entities = await _entities(peer, "pibuddy_aabbcc000004")
            assert entities["state"] == "sensor.pibuddy_porch_assistant_state"
            await _ha_state(peer, entities, "upstream", _is("off"))
            await _ha_state(peer, entities, "mute", _known)
            process.kill()  # no goodbye: the broker publishes PiBuddy's last will
            await process.wait()
            await _ha_state(peer, entities, "state", _is("unavailable"))
            await _ha_state(peer, entities, "upstream", _is("unavailable"))
            process = await asyncio.create_subprocess_exec(*command, env=pibuddy_env,
                                                           stderr=asyncio.subprocess.DEVNULL)
            await _ha_state(peer, entities, "upstream", _is("off"))
        finally:
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), 15)
