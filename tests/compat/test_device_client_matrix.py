"""PiBuddy's device client against each server dialect, over WebSocket and over MQTT+UDP (through a real
mosquitto broker): every cell a whole conversation over real sockets on 127.0.0.1 — hello both ways, JSON
both ways, audio both ways, goodbye."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pibuddy.device_client.service import DeviceClientService
from pibuddy.events import EventBus
from pibuddy.wiring.tools import build_registry
from pibuddy.xiaozhi import State
from tests.compat.dialects import SERVER_DIALECTS, Ending, ServerDialect
from tests.device_client_helpers import ScriptedAudio, device_config
from tests.peers.mosquitto import MosquittoBroker
from tests.peers.xiaozhi_server import MqttBrokerInfo, XiaozhiTestServer
from tests.polling import eventually

_STEP = 5.0
_TTS_FRAMES = 6


@pytest.fixture(params=["websocket", "udp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=SERVER_DIALECTS, ids=lambda d: d.name)
def dialect(request: pytest.FixtureRequest) -> ServerDialect:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def server(transport: str, dialect: ServerDialect, mosquitto: MosquittoBroker
                 ) -> AsyncIterator[XiaozhiTestServer]:
    mqtt = MqttBrokerInfo(mosquitto.host, mosquitto.port) if transport == "udp" else None
    # One reply per cell, the greeting to the wake word; afterwards the server only listens (no listen stop
    # comes in auto mode), so what the device plays and shows is exactly that reply.
    async with XiaozhiTestServer(mqtt=mqtt, tts_frames=_TTS_FRAMES, tts_frame_interval=0.01, utterance_frames=None,
                                 **dialect.settings) as srv:
        if mqtt is not None:
            await asyncio.wait_for(srv.mqtt_ready.wait(), _STEP)
        yield srv


async def _wait(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), _STEP)


async def test_server_dialect_with_the_device_client(
    server: XiaozhiTestServer, dialect: ServerDialect, transport: str, tmp_path: Path
) -> None:
    audio = ScriptedAudio()
    config = device_config(tmp_path, server.ota_url)
    service = DeviceClientService(config, bus=EventBus(), registry=build_registry(config), audio=audio)
    await service.start()
    client = service.client
    assert client is not None
    try:
        # Hello both ways: the device's reaches the server; the server's, in its dialect, opens the channel
        # (it was "dropped ... (hello: missing version)" and then timed out).
        assert await client.wake("你好小智")
        await _wait(server.hello_received)
        server_hello = server.sent_messages[0]
        assert server_hello["type"] == "hello"
        assert ("version" in server_hello) is server.settings.hello_version
        assert ("session_id" in server_hello) is server.settings.hello_session_id
        session_id = server_hello.get("session_id", "")
        assert client.session.session_id == session_id

        # JSON and audio up: listen detect and start (with the session id the device knows), then 16 kHz
        # audio the server decodes; MCP initialize and tools/list answered by PiBuddy's tool registry.
        await _wait(server.listen_start)
        listens = server.messages_of_type("listen")
        assert [m["state"] for m in listens[:2]] == ["detect", "start"]
        assert all(m["session_id"] == session_id for m in listens)
        await eventually(lambda: len(server.uplink_frames) >= 8)  # the wake word's 3 frames, then the mic
        assert all(f.samples == 960 and max(f.pcm) > 0 for f in server.uplink_frames)
        await _wait(server.tools_listed)
        assert "self.get_device_status" in [t["name"] for t in server.mcp_tools]

        # JSON and audio down: every sentence shown, every frame played and decodable; tts stop ends the turn
        # without a sentence_end.
        greeting = server.settings.greeting_text
        expected = [greeting] + [f"{greeting} ({n})" for n in range(2, server.settings.sentences + 1)]
        await eventually(lambda: [s for s in audio.sentences if s] == expected and audio.sentences[-1] is None)
        await eventually(lambda: len(audio.played) == server.downlink_frames_sent == _TTS_FRAMES * len(expected))
        assert all(len(pcm) == 2 * 1440 for pcm in audio.decoded_playback(24000))
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.LISTENING)  # auto mode: the next turn

        # Goodbye, whoever says it.
        await _end(dialect.ending, server, client.close_conversation, session_id)
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.IDLE)
        assert audio.cues.count("error") == 0
    finally:
        await service.stop()
    # When the server ends it, mic audio already on its way may arrive after the session: dropped there.
    in_flight = dialect.ending is not Ending.DEVICE and transport == "udp"
    assert [b for b in server.bad_input if not (in_flight and b.startswith("udp datagram"))] == []


async def _end(ending: Ending, server: XiaozhiTestServer, close: object, session_id: str) -> None:
    server.disconnected.clear()
    if ending is Ending.DEVICE:
        await close()  # type: ignore[operator]
        if server.mqtt_info is None:  # WebSocket: the socket closes, there is no goodbye message
            await _wait(server.disconnected)
        else:
            await _wait(server.goodbye_received)
            assert server.messages_of_type("goodbye")[-1] == {"session_id": session_id, "type": "goodbye"}
        return
    if ending is Ending.SERVER_GOODBYE:
        await server.send_goodbye()  # no session id in the dialects that gave none
    await server.close_connection()  # MQTT: the gateway half says goodbye; WebSocket: the socket closes
