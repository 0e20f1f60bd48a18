"""The device client end to end, over real sockets on 127.0.0.1, against the test xiaozhi server:
WebSocket directly, and MQTT+UDP through a real mosquitto broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pibuddy.events import EventBus, UpstreamLink
from pibuddy.tools.catalog import build_registry
from pibuddy.upstream.service import UpstreamService
from pibuddy.xiaozhi import State
from tests.peers.mosquitto import MosquittoBroker, mosquitto_fixture  # noqa: F401
from tests.peers.xiaozhi_server import MqttBrokerInfo, XiaozhiTestServer
from tests.upstream_helpers import ScriptedAudio, device_config

WAKE_WORD = "你好小智"
_STEP = 5.0  # every milestone must come within this many seconds


@pytest.fixture(params=["websocket", "udp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server(transport: str, mosquitto: MosquittoBroker) -> AsyncIterator[XiaozhiTestServer]:
    """The test server, offering MQTT+UDP (through a real broker) or only WebSocket."""
    mqtt = MqttBrokerInfo(mosquitto.host, mosquitto.port) if transport == "udp" else None
    async with XiaozhiTestServer(mqtt=mqtt, tts_frames=6, tts_frame_interval=0.01, utterance_frames=5) as srv:
        if mqtt is not None:
            await asyncio.wait_for(srv.mqtt_ready.wait(), _STEP)
        yield srv


async def _service(tmp_path: Path, server: XiaozhiTestServer, audio: ScriptedAudio,
                   bus: EventBus | None = None, **upstream: object) -> UpstreamService:
    config = device_config(tmp_path, server.ota_url, **upstream)
    service = UpstreamService(config, bus=bus or EventBus(), registry=build_registry(config), audio=audio)
    await service.start()
    return service


async def _wait(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), _STEP)


async def test_full_conversation_audio_both_ways_and_mcp(
    server: XiaozhiTestServer, transport: str, tmp_path: Path
) -> None:
    audio = ScriptedAudio()
    bus = EventBus()
    links = bus.subscribe()
    service = await _service(tmp_path, server, audio, bus)
    client = service.client
    assert client is not None
    try:
        assert await client.wake(WAKE_WORD)
        for milestone in (server.hello_received, server.listen_detect, server.listen_start, server.tts_done):
            await _wait(milestone)
        # The server's MCP client ran initialize and tools/list against PiBuddy's registry.
        await _wait(server.tools_listed)
        assert "self.get_device_status" in [t["name"] for t in server.mcp_tools]
        result = await asyncio.wait_for(server.call_tool("self.get_device_status", {}), _STEP)
        assert result["content"][0]["type"] == "text"
        assert '"audio_speaker"' in result["content"][0]["text"]
        # After the greeting the mic streams; the server hears decodable 16 kHz audio, in order.
        server.reset_milestones()
        await _wait(server.tts_done)  # the reply to the utterance
        frames = server.uplink_frames
        assert len(frames) >= 5
        assert all(f.samples == 960 for f in frames), "60 ms frames at 16 kHz"
        assert any(max(f.pcm) > 0 for f in frames), "the tone came through, not silence"
        assert client.session.state in (State.LISTENING, State.SPEAKING)  # auto mode: the turns go on
        assert audio.sentences[-1] == server.settings.reply_text
        session_id = server.session_id
        await client.close_conversation()
        assert client.session.state is State.IDLE
        # Downlink: every TTS frame the server sent was played, decodable at the hello's rate.
        await asyncio.sleep(0.1)
        assert len(audio.played) >= 12
        assert len(audio.played) == server.downlink_frames_sent
        assert all(len(pcm) == 2 * 1440 for pcm in audio.decoded_playback(24000))
        listens = [m for m in server.device_messages if m.get("type") == "listen"]
        assert [m["state"] for m in listens[:3]] == ["detect", "start", "start"]
        assert all(m["session_id"] == session_id for m in listens)
    finally:
        await service.stop()
    transports = [e.transport for e in _drain(links) if isinstance(e, UpstreamLink) and e.connected]
    assert transports == [transport]


def _drain(subscription: object) -> list[object]:
    queue = subscription.queue  # type: ignore[attr-defined]
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
