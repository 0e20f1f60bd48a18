"""A gateway device's turn in the history: its MAC as the microphone, what its chat server heard and said,
and the latency of each stage, from a whole conversation through the gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pibuddy.control import History, TurnRecord
from pibuddy.control.recorder import TurnRecorder
from pibuddy.events import EventBus, TurnProgress
from pibuddy.gateway.service import GatewayService
from pibuddy.statedir import StateDir
from tests.gateway.conftest import connect_device, gateway_config, gateway_url
from tests.gateway.test_conversation import speak
from tests.peers.xiaozhi_server import XiaozhiTestServer


async def test_a_gateway_devices_turn_is_recorded_with_its_mac_and_stage_latencies(
        upstream: XiaozhiTestServer, tmp_path: Path) -> None:
    bus = EventBus()
    gateway = GatewayService(gateway_config([gateway_url(upstream)]), state_dir=StateDir(tmp_path / "state"),
                             bus=bus)
    history = History(None)
    recorder = TurnRecorder(history)
    with bus.subscribe() as events:
        await gateway.start()
        device = await connect_device(gateway, 7)
        try:
            await device.hello()
            await speak(device)
            async with asyncio.timeout(10):
                while not history.recent():
                    event = await events.get()
                    if isinstance(event, TurnProgress):
                        recorder.progress(event)
        finally:
            await device.close()
            await gateway.stop()
    (turn,) = history.recent()
    assert isinstance(turn, TurnRecord)
    assert (turn.microphone, turn.brain) == ("aa:bb:cc:dd:ee:07", "xiaozhi")
    assert (turn.heard, turn.reply) == (upstream.settings.stt_text, upstream.settings.reply_text)
    assert list(turn.latency_ms) == ["wake", "hello", "listen_start", "heard", "first_audio", "end"]
    assert list(turn.latency_ms.values()) == sorted(turn.latency_ms.values())
