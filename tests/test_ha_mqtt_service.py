"""The Home Assistant MQTT service against a real mosquitto, without Home Assistant: what goes on the wire
(retained discovery, states once and only on change), a broker that is down at start, a refused login."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from pathlib import Path

import aiomqtt
import pytest

from pibuddy.events import Muted
from tests.ha_mqtt_helpers import running_buddy
from tests.peers.mosquitto import SKIP_REASON, MosquittoBroker, mosquitto_binary
from tests.polling import eventually

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason=SKIP_REASON)
_BASE = "pibuddy/aabbcc000009"


async def _collect(client: aiomqtt.Client, into: list[aiomqtt.Message]) -> None:
    async for message in client.messages:
        into.append(message)


async def test_discovery_is_retained_and_states_go_out_once_then_only_on_change(tmp_path: Path) -> None:
    async with MosquittoBroker(tmp_path) as broker, aiomqtt.Client(broker.host, broker.port) as watcher:
        seen: list[aiomqtt.Message] = []
        await watcher.subscribe(f"{_BASE}/#")
        collecting = asyncio.create_task(_collect(watcher, seen))
        try:
            async with running_buddy(broker, "aa:bb:cc:00:00:09", "Den") as buddy:
                await eventually(lambda: any(m.topic.value == f"{_BASE}/volume" for m in seen), 10)
                await asyncio.sleep(5)  # a while with nothing changing: nothing is sent again
                buddy.bus.publish(Muted(True))
                await eventually(lambda: any(m.topic.value == f"{_BASE}/mute" and m.payload == b"ON" for m in seen))
                await asyncio.sleep(0.5)
                async with aiomqtt.Client(broker.host, broker.port) as late:  # a Home Assistant that starts now
                    await late.subscribe("homeassistant/#")
                    retained: list[aiomqtt.Message] = []
                    await asyncio.wait_for(_collect_n(late, retained, 11), 5)
        finally:
            collecting.cancel()
        assert all(m.retain for m in retained)
        assert {json.loads(bytes(m.payload))["device"]["name"] for m in retained} == {"PiBuddy Den"}
        counts = Counter(m.topic.value for m in seen)
        assert counts[f"{_BASE}/volume"] == 1, "an unchanged state is not sent again"
        assert counts[f"{_BASE}/upstream/attributes"] == 1
        assert counts[f"{_BASE}/mute"] == 2, "once, then once for the change"
        assert counts[f"{_BASE}/state"] == 2, "idle, then muted"
        assert [m.payload for m in seen if m.topic.value == f"{_BASE}/availability"] == [b"online", b"offline"]


async def _collect_n(client: aiomqtt.Client, into: list[aiomqtt.Message], count: int) -> None:
    async for message in client.messages:
        into.append(message)
        if len(into) == count:
            return


async def test_a_broker_down_at_start_is_retried_and_a_refused_login_is_one_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    broker = MosquittoBroker(tmp_path, users={"buddy": "right"})
    async with running_buddy(broker, "aa:bb:cc:00:00:0a", "Loft", username="buddy", password="wrong") as buddy:
        await eventually(lambda: "cannot connect to the MQTT broker" in caplog.text, 5)  # not started yet
        await broker.start()
        try:
            await eventually(lambda: "refused PiBuddy's login" in caplog.text, 10)
            await eventually(lambda: buddy.supervisor.health()["homeassistant-mqtt"].ok is False, 1)
            refusals = [r for r in caplog.records if "refused PiBuddy's login" in r.getMessage()]
            assert refusals[0].levelno == logging.ERROR, "the user must fix the password"
            assert "wrong" not in caplog.text
        finally:
            await broker.stop()
    assert "Traceback" not in caplog.text
