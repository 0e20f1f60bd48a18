"""The device client end to end, over real sockets on 127.0.0.1, against the test xiaozhi server:
WebSocket directly, and MQTT+UDP through a real mosquitto broker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pibuddy.device_client.service import DeviceClientService
from pibuddy.events import (
    ActiveBrain,
    Command,
    ErrorOccurred,
    Event,
    EventBus,
    Muted,
    Say,
    Subscription,
    UpstreamLink,
    WakeHandedOver,
)
from pibuddy.tools.registry import Tool, ToolResult
from pibuddy.wiring.tools import build_registry
from pibuddy.xiaozhi import ListenMode, State
from tests.device_client_helpers import ScriptedAudio, device_config
from tests.peers.mosquitto import MosquittoBroker, mosquitto_fixture  # noqa: F401
from tests.peers.xiaozhi_server import McpCallError, MqttBrokerInfo, XiaozhiTestServer
from tests.polling import eventually

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
                   bus: EventBus | None = None, *, microphone: bool = False, **upstream: object
                   ) -> DeviceClientService:
    config = device_config(tmp_path, server.ota_url, microphone=microphone, **upstream)
    service = DeviceClientService(config, bus=bus or EventBus(), registry=build_registry(config), audio=audio)
    await service.start()
    return service


async def _wait(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), _STEP)


def _pending(events: Subscription) -> list[Event]:
    """What the bus has delivered to `events` so far."""
    delivered = []
    while not events.queue.empty():
        delivered.append(events.queue.get_nowait())
    return delivered


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
        assert server.settings.reply_text in audio.sentences
        # the server sent tts stop; the client acts on it once the message has crossed the broker
        await eventually(lambda: audio.sentences[-1] is None)  # the wake-word guard stands down
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


async def _open_conversation(client: object, server: XiaozhiTestServer) -> None:
    assert await client.wake(WAKE_WORD)  # type: ignore[attr-defined]
    await _wait(server.listen_start)


async def test_wake_word_while_speaking_aborts_and_stops_playback(
    server: XiaozhiTestServer, tmp_path: Path
) -> None:
    server.settings.tts_frames = 60
    server.settings.tts_frame_interval = 0.05  # a long reply, so it is still speaking when we interrupt
    audio = ScriptedAudio()
    service = await _service(tmp_path, server, audio)
    client = service.client
    assert client is not None
    try:
        await _open_conversation(client, server)
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.SPEAKING)
        assert await client.wake(WAKE_WORD)
        await _wait(server.abort_received)
        aborts = server.messages_of_type("abort")
        assert aborts[-1]["reason"] == "wake_word_detected"
        assert audio.stopped_at, "playback stopped at once on barge-in"
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.LISTENING)  # the server's tts stop ends the reply
    finally:
        await service.stop()


async def test_goodbye_acts_only_on_the_current_session(server: XiaozhiTestServer, tmp_path: Path) -> None:
    server.settings.utterance_frames = None  # stay listening until told otherwise
    service = await _service(tmp_path, server, ScriptedAudio())
    client = service.client
    assert client is not None
    try:
        await _open_conversation(client, server)
        await server.send_goodbye(session_id="not-this-session")
        await asyncio.sleep(0.2)
        assert client.session.state is not State.IDLE, "a stray goodbye must not end the conversation"
        await server.send_goodbye()
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.IDLE)
        assert not [m for m in server.device_messages[-1:] if m.get("type") == "goodbye"], \
            "the device does not answer the server's goodbye with its own"
    finally:
        await service.stop()


async def test_channel_timeout_closes_a_silent_conversation_and_the_next_wake_says_hello_again(
    server: XiaozhiTestServer, tmp_path: Path
) -> None:
    server.settings.utterance_frames = None
    server.settings.mcp = False  # no MCP chatter: the server falls completely silent
    service = await _service(tmp_path, server, ScriptedAudio(), channel_timeout=0.5)
    client = service.client
    assert client is not None
    try:
        await _open_conversation(client, server)
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.IDLE)
        hellos_before = len(server.messages_of_type("hello"))
        server.reset_milestones()
        await _open_conversation(client, server)
        assert len(server.messages_of_type("hello")) == hellos_before + 1
    finally:
        await service.stop()


async def test_bad_messages_from_the_server_are_dropped_and_the_conversation_goes_on(
    server: XiaozhiTestServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pibuddy.device_client")
    server.settings.utterance_frames = None
    service = await _service(tmp_path, server, ScriptedAudio())
    client = service.client
    assert client is not None
    try:
        await _open_conversation(client, server)
        for bad in ("{not json", "[1, 2]", '{"type": 5}', '{"type": "tts", "state": "dance"}',
                    '{"type": "stt", "text": "' + "x" * 200_000 + '"}', '{"type": "brand-new", "x": 1}'):
            await server.send_raw_text(bad)
        await server.send_raw_binary(b"\x01\x00\x00")  # a truncated audio packet
        await asyncio.sleep(0.3)
        assert client.session.state is State.LISTENING
        assert caplog.text.count("dropped a bad message from the server") == 4
        assert "unknown type 'brand-new'" in caplog.text
        assert "unknown tts state 'dance'" in caplog.text  # ignored, as the firmware ignores it
        # Still a working conversation: an MCP call round-trips.
        result = await asyncio.wait_for(server.call_tool("self.get_device_status", {}), _STEP)
        assert result["isError"] is False
    finally:
        await service.stop()


async def test_mcp_tools_list_pages_over_8000_bytes_and_errors_reach_the_server(
    server: XiaozhiTestServer, tmp_path: Path
) -> None:
    config = device_config(tmp_path, server.ota_url)
    registry = build_registry(config)

    async def echo(arguments: dict[str, object]) -> ToolResult:
        return ToolResult(f"echo {arguments['n']}")

    for i in range(40):
        registry.register(Tool(f"self.test.tool_{i:02d}", "描述 " * 80,
                               {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0,
                                                                       "maximum": 9}}, "required": ["n"]},
                               echo))
    service = DeviceClientService(config, bus=EventBus(), registry=registry, audio=ScriptedAudio())
    await service.start()
    try:
        assert service.client is not None
        await _open_conversation(service.client, server)
        await _wait(server.tools_listed)
        names = [t["name"] for t in server.mcp_tools]
        assert len(names) == len(registry.list()) == len(set(names)), "every tool once, across pages"
        assert (await server.call_tool("self.test.tool_07", {"n": 3}))["content"][0]["text"] == "echo 3"
        with pytest.raises(McpCallError, match="Value exceeds maximum allowed: 9"):
            await server.call_tool("self.test.tool_07", {"n": 12})
        with pytest.raises(McpCallError, match="Unknown tool: nope"):
            await server.call_tool("nope", {})
    finally:
        await service.stop()


async def test_push_to_talk_from_bus_commands(server: XiaozhiTestServer, tmp_path: Path) -> None:
    bus = EventBus()
    service = await _service(tmp_path, server, ScriptedAudio(), bus)
    client = service.client
    assert client is not None
    try:
        bus.publish(Command("listen_start"))
        await _wait(server.listen_start)
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.LISTENING)
        await asyncio.sleep(0.1)  # some speech
        bus.publish(Command("listen_stop"))
        await _wait(server.listen_stop)
        await _wait(server.tts_done)
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.OPEN)  # manual: tts stop ends the turn, the channel stays open
        starts = server.messages_of_type("listen")
        assert [(m["state"], m.get("mode")) for m in starts[:2]] == [("start", "manual"), ("stop", None)]
        assert bus.state.value == "idle"
    finally:
        await service.stop()


@pytest.mark.parametrize("held_back_by", [ActiveBrain("local"), Muted(True)], ids=["local-brain", "muted"])
async def test_a_button_press_opens_no_conversation_when_the_server_is_not_the_brain_or_the_mic_is_muted(
    server: XiaozhiTestServer, tmp_path: Path, held_back_by: ActiveBrain | Muted
) -> None:
    bus = EventBus()
    service = await _service(tmp_path, server, ScriptedAudio(), bus)
    client = service.client
    assert client is not None
    try:
        bus.publish(held_back_by)
        bus.publish(Command("listen_start"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(server.hello_received.wait(), 0.5)
        assert client.session.state is State.IDLE
    finally:
        await service.stop()


async def test_server_closing_mid_sentence_returns_to_idle_and_the_next_turn_works(
    server: XiaozhiTestServer, tmp_path: Path
) -> None:
    server.settings.close_after_tts_frames = 2
    service = await _service(tmp_path, server, ScriptedAudio())
    client = service.client
    assert client is not None
    try:
        await _open_conversation(client, server)
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.IDLE)
        server.settings.close_after_tts_frames = None
        server.reset_milestones()
        await _open_conversation(client, server)
        await _wait(server.tts_done)
    finally:
        await service.stop()


async def test_a_server_deaf_to_hello_counts_as_down_until_it_answers_again(
    server: XiaozhiTestServer, tmp_path: Path
) -> None:
    bus = EventBus()
    service = await _service(tmp_path, server, ScriptedAudio(), bus, hello_timeout=0.3)
    client = service.client
    assert client is not None
    try:
        assert bus.latest(UpstreamLink) == UpstreamLink(True, client.channel.transport.value,
                                                        client.channel.describe())
        await client.channel.begin()  # open the link, then make the server ignore what we send
        client.session.open_channel(0.0)  # a hello whose answer we pretend never came: drop it unsent
        client.session.messages_to_send()
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.IDLE)
        link = bus.latest(UpstreamLink)
        assert isinstance(link, UpstreamLink)
        assert link.connected is False
        assert await client.wake(WAKE_WORD)  # the next hello is answered: up again
        assert bus.latest(UpstreamLink).connected is True  # type: ignore[union-attr]
    finally:
        await service.stop()


async def test_the_mic_streams_at_once_after_a_wake_even_when_the_server_stays_silent(
    server: XiaozhiTestServer, tmp_path: Path
) -> None:
    server.settings.greeting_text = None
    server.settings.mcp = False  # nothing at all comes from the server after its hello
    server.settings.utterance_frames = None
    audio = ScriptedAudio(wake_frames=3)
    service = await _service(tmp_path, server, audio)
    client = service.client
    assert client is not None
    try:
        started = time.monotonic()
        assert await client.wake(WAKE_WORD)
        assert client.session.state is State.LISTENING
        assert [on for _, on in audio.uplink_changes] == [True]
        assert audio.uplink_changes[0][0] - started < 0.1, "the mic opened with `listen start`"
        await eventually(lambda: len(server.uplink_frames) >= 3 + 3, within=0.1)  # live frames after the wake's
        assert audio.cues == ["chime"], "the answered wake chimed once"
    finally:
        await service.stop()


async def test_a_manual_turn_ends_with_listen_stop_when_the_user_falls_silent(
    server: XiaozhiTestServer, tmp_path: Path
) -> None:
    audio = ScriptedAudio(utterance_frames=5)
    service = await _service(tmp_path, server, audio)
    client = service.client
    assert client is not None
    try:
        assert await client.start_listening(ListenMode.MANUAL)
        assert audio.end_on_silence
        await _wait(server.listen_stop)  # nobody released a button: the end of utterance did it
        await _wait(server.tts_done)
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.OPEN)
        assert len(server.uplink_frames) == 5
        listens = [(m["state"], m.get("mode")) for m in server.messages_of_type("listen")]
        assert listens[:2] == [("start", "manual"), ("stop", None)]
        assert audio.cues == [], "push-to-talk is not a wake: no chime"
    finally:
        await service.stop()


async def test_an_auto_turn_keeps_streaming_after_the_user_falls_silent(
    server: XiaozhiTestServer, tmp_path: Path
) -> None:
    server.settings.utterance_frames = None  # the server never ends this turn
    audio = ScriptedAudio(utterance_frames=2)
    service = await _service(tmp_path, server, audio)
    client = service.client
    assert client is not None
    try:
        await _open_conversation(client, server)
        assert not audio.end_on_silence, "auto mode: the server's VAD ends the turn"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(server.listen_stop.wait(), 0.3)
        assert client.session.state in (State.LISTENING, State.SPEAKING)
    finally:
        await service.stop()


async def test_a_wake_that_cannot_open_a_conversation_plays_the_error_tone(
    server: XiaozhiTestServer, tmp_path: Path
) -> None:
    audio = ScriptedAudio()
    bus = EventBus()
    service = await _service(tmp_path, server, audio, bus, hello_timeout=0.3)
    client = service.client
    assert client is not None
    try:
        await server.stop()  # WebSocket: the connection is refused; MQTT: nobody answers the hello
        with bus.subscribe() as events:
            assert not await client.wake(WAKE_WORD)
            told = [e for e in _pending(events) if isinstance(e, ErrorOccurred | Say)]
        assert audio.cues == ["error"]
        assert told == [ErrorOccurred("upstream", "could not start a conversation with the server"),  # lights
                        Say("Sorry, I can't reach the server right now.")]  # and one short spoken line
        assert not audio.uplink_changes
    finally:
        await service.stop()


@pytest.mark.parametrize("microphone", [False, True], ids=["no local brain", "auto mode with a microphone"])
async def test_a_server_that_never_answers_hello_gets_the_wake_answered_without_it_within_2_seconds(
    server: XiaozhiTestServer, tmp_path: Path, microphone: bool
) -> None:
    """Up but stuck: waiting out the 10 s hello timeout kept the user in silence. After 2 s the wake is answered
    without the server: the error tone and the spoken line, or, where a local brain listens (`brain.mode:
    auto` and a microphone), handed to it (no tone: the microphone is about to be heard)."""
    server.settings.answer_hello = False
    audio = ScriptedAudio()
    bus = EventBus()
    service = await _service(tmp_path, server, audio, bus, microphone=microphone)
    client = service.client
    assert client is not None
    try:
        with bus.subscribe() as events:
            woke = time.monotonic()
            assert not await client.wake(WAKE_WORD)
            waited = time.monotonic() - woke
            told = [e for e in _pending(events) if isinstance(e, ErrorOccurred | Say | WakeHandedOver)]
        assert server.hello_received.is_set(), "the server heard the hello"
        assert 2.0 <= waited < 3.0, "answered 2 s after the wake, not at the 10 s hello timeout"
        error = ErrorOccurred("upstream", "could not start a conversation with the server")
        if microphone:
            assert told == [error, WakeHandedOver(WAKE_WORD)]
            assert audio.cues == []
        else:
            assert told == [error, Say("Sorry, I can't reach the server right now.")]
            assert audio.cues == ["error"]
        assert client.session.state is State.CONNECTING, "the link's own hello timeout still runs"
        assert not audio.uplink_changes, "the server got no audio: whoever answers takes it from the pipeline"
    finally:
        await service.stop()
