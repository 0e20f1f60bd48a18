"""The conversation state machine, DEVICE wired to SERVER in memory (§5, §7.3, §4.3, timers of §5.3)."""

from __future__ import annotations

import json

import pytest

from pibuddy.xiaozhi import (
    TRANSITIONS,
    AbortReceived,
    AudioFrame,
    AudioTransport,
    BadJson,
    ChannelTimedOut,
    ErrorReceived,
    Goodbye,
    GoodbyeIgnored,
    GoodbyeReceived,
    Hello,
    HelloReceived,
    HelloTimedOut,
    Input,
    InvalidMessage,
    ListenMode,
    ListenReceived,
    LlmEmotion,
    LocalProtocolError,
    MalformedPacket,
    Mcp,
    McpReceived,
    Role,
    SentenceStarted,
    ServerHelloReceived,
    Session,
    SessionEvent,
    SessionStateChanged,
    State,
    Stt,
    SttReceived,
    Tts,
    TtsStarted,
    TtsState,
    TtsStopped,
    UnexpectedMessage,
    UnknownMessage,
    UnknownReceived,
    WsProtocolVersion,
    parse_message,
)
from pibuddy.xiaozhi.messages import Llm
from pibuddy.xiaozhi.session_events import event_for
from tests.test_xiaozhi_messages import FIRMWARE_FORMS
from tests.xiaozhi_helpers import SSRC, UDP, SessionPair

DEVICE, SERVER = Role.DEVICE, Role.SERVER
TTS_START, TTS_STOP = Tts(state=TtsState.START), Tts(state=TtsState.STOP)


def states(pair: SessionPair) -> tuple[State, State]:
    return pair.device.state, pair.server.state


def test_table_lets_the_transport_always_drop_the_channel() -> None:
    assert set(TRANSITIONS) == set(State)
    for row in TRANSITIONS.values():
        assert row[Input.CHANNEL_LOST] is State.IDLE
    for state in (State.CONNECTING, State.OPEN, State.LISTENING, State.SPEAKING):
        assert TRANSITIONS[state][Input.GOODBYE] is State.IDLE


@pytest.mark.parametrize("text", FIRMWARE_FORMS, ids=lambda t: t[:40])
def test_every_message_type_becomes_an_event(text: str) -> None:
    message = parse_message(text)
    receiver = DEVICE if SERVER in message.SENDERS else SERVER
    assert isinstance(event_for(message, receiver), SessionEvent)


def test_hello_exchange() -> None:
    pair = SessionPair()
    events = pair.send(DEVICE, lambda s: s.open_channel(0.0), expect=[
        '{"type":"hello","version":3,"transport":"udp","features":{"mcp":true},'
        '"audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60}}'])
    assert [type(e) for e in events] == [HelloReceived, SessionStateChanged]
    assert states(pair) == (State.CONNECTING, State.CONNECTING)
    assert pair.sender_events == [SessionStateChanged(State.IDLE, State.CONNECTING)]

    events = pair.send(SERVER, lambda s: s.accept_hello("S1", udp=UDP, audio_params={"sample_rate": 24000}),
                       expect=None)
    hello_event, changed = events
    assert isinstance(hello_event, ServerHelloReceived)
    assert hello_event.session_id == "S1"
    assert (hello_event.downlink.sample_rate, hello_event.downlink.frame_duration) == (24000, 60)
    assert changed == SessionStateChanged(State.CONNECTING, State.OPEN)
    assert states(pair) == (State.OPEN, State.OPEN)
    assert pair.device.session_id == pair.server.session_id == "S1"
    assert pair.device.udp == UDP
    assert pair.device.udp.ssrc == SSRC


def test_auto_conversation() -> None:
    pair = SessionPair()
    pair.open()
    events = pair.send(DEVICE, lambda s: s.wake_word_detected("你好小智"), expect=[
        '{"session_id":"S1","type":"listen","state":"detect","text":"你好小智"}',
        '{"session_id":"S1","type":"listen","state":"start","mode":"auto"}'])
    assert [type(e) for e in events] == [ListenReceived, ListenReceived, SessionStateChanged]
    assert states(pair) == (State.LISTENING, State.LISTENING)
    assert pair.device.should_send_audio

    events = pair.send(SERVER, [Stt(text="几点了"), TTS_START, Llm(emotion="happy", text="😊"),
                                Tts(state=TtsState.SENTENCE_START, text="三点")])
    assert [type(e) for e in events] == [SttReceived, TtsStarted, SessionStateChanged, LlmEmotion, SentenceStarted]
    assert events[0].text == "几点了"
    assert events[3].emotion == "happy"
    assert events[4].text == "三点"
    assert states(pair) == (State.SPEAKING, State.SPEAKING)
    assert not pair.device.should_send_audio
    assert pair.audio(SERVER, b"tts opus", timestamp=99) == AudioFrame(99, b"tts opus")

    events = pair.send(SERVER, TTS_STOP)
    assert [type(e) for e in events] == [TtsStopped, SessionStateChanged]
    assert pair.device.state is State.LISTENING
    # Auto mode: the device announces its next turn; the server hears a listen start.
    pair.send(DEVICE, lambda s: None, expect=['{"session_id":"S1","type":"listen","state":"start","mode":"auto"}'])
    assert states(pair) == (State.LISTENING, State.LISTENING)


def test_manual_push_to_talk() -> None:
    pair = SessionPair()
    pair.open()
    pair.send(DEVICE, lambda s: s.start_listening(ListenMode.MANUAL),
              expect=['{"session_id":"S1","type":"listen","state":"start","mode":"manual"}'])
    pair.send(DEVICE, lambda s: s.stop_listening(), expect=['{"session_id":"S1","type":"listen","state":"stop"}'])
    assert states(pair) == (State.OPEN, State.OPEN)
    pair.send(SERVER, [TTS_START])
    assert states(pair) == (State.SPEAKING, State.SPEAKING)
    pair.send(SERVER, [TTS_STOP])
    assert states(pair) == (State.OPEN, State.OPEN)  # idle, but the channel stays open
    assert pair.device.messages_to_send() == []
    assert pair.device.udp is not None


def test_realtime_keeps_streaming_and_sends_no_new_listen_start() -> None:
    pair = SessionPair(listen_mode=ListenMode.REALTIME)
    pair.open()
    pair.send(DEVICE, lambda s: s.wake_word_detected("hi"), expect=None)
    pair.send(SERVER, [TTS_START])
    assert pair.device.state is State.SPEAKING
    assert pair.device.should_send_audio
    assert pair.audio(DEVICE, b"mic while speaking") == AudioFrame(0, b"mic while speaking")
    pair.send(SERVER, [TTS_STOP])
    assert states(pair) == (State.LISTENING, State.LISTENING)
    assert pair.device.messages_to_send() == []


def test_abort_while_speaking() -> None:
    pair = SessionPair()
    pair.open()
    pair.send(DEVICE, lambda s: s.start_listening(), expect=None)
    pair.send(SERVER, [TTS_START])
    events = pair.send(DEVICE, lambda s: s.abort(), expect=['{"session_id":"S1","type":"abort"}'])
    assert [type(e) for e in events] == [AbortReceived]
    assert pair.device.state is State.SPEAKING  # until the server confirms with tts stop
    pair.send(SERVER, [TTS_STOP])
    assert pair.device.state is State.LISTENING


def test_wake_word_while_speaking_aborts_and_listens() -> None:
    pair = SessionPair()
    pair.open()
    pair.send(DEVICE, lambda s: s.start_listening(), expect=None)
    pair.send(SERVER, [TTS_START])
    pair.send(DEVICE, lambda s: s.wake_word_detected("你好小智"), expect=[
        '{"session_id":"S1","type":"abort","reason":"wake_word_detected"}',
        '{"session_id":"S1","type":"listen","state":"start","mode":"auto"}'])
    assert states(pair) == (State.LISTENING, State.LISTENING)
    # The server's tts stop for the aborted reply arrives late: ignored, as the firmware does.
    events = pair.send(SERVER, [TTS_STOP])
    assert [type(e) for e in events] == [TtsStopped]
    assert pair.device.state is State.LISTENING
    assert pair.device.messages_to_send() == []


def test_start_listening_while_speaking_interrupts_first() -> None:
    pair = SessionPair()
    pair.open()
    pair.send(SERVER, [TTS_START])
    pair.send(DEVICE, lambda s: s.start_listening(ListenMode.MANUAL), expect=[
        '{"session_id":"S1","type":"abort"}', '{"session_id":"S1","type":"listen","state":"start","mode":"manual"}'])
    assert states(pair) == (State.LISTENING, State.LISTENING)


@pytest.mark.parametrize(
    ("goodbye", "acted_on"),
    [('{"type":"goodbye","session_id":"S1"}', True),
     ('{"type":"goodbye","session_id":"OTHER"}', False),
     ('{"type":"goodbye"}', False),
     ('{"type":"goodbye","session_id":null}', False)],
    ids=["matching", "other session", "missing", "null"],
)
def test_goodbye_from_server_during_a_conversation(goodbye: str, acted_on: bool) -> None:
    pair = SessionPair()
    pair.open()
    pair.send(DEVICE, lambda s: s.start_listening(), expect=None)
    pair.device.receive_json(goodbye, 1.0)
    events = pair.device.events_received()
    if acted_on:
        assert [type(e) for e in events] == [GoodbyeReceived, SessionStateChanged]
        assert pair.device.state is State.IDLE
        assert pair.device.udp is None
    else:
        assert [type(e) for e in events] == [GoodbyeIgnored]
        assert pair.device.state is State.LISTENING
    assert pair.device.messages_to_send() == []  # never answered


def test_goodbye_without_session_id_rejects_a_pending_hello() -> None:
    pair = SessionPair()
    pair.send(DEVICE, lambda s: s.open_channel(0.0), expect=None)
    pair.device.receive_json('{"type":"goodbye","session_id":null}', 1.0)
    assert pair.device.state is State.IDLE


def test_late_goodbye_for_the_previous_session_does_not_end_a_new_hello() -> None:
    pair = SessionPair()
    pair.open()
    pair.send(DEVICE, lambda s: s.close(), expect=['{"session_id":"S1","type":"goodbye"}'])
    assert states(pair) == (State.IDLE, State.IDLE)
    pair.send(DEVICE, lambda s: s.open_channel(5.0), expect=None)
    pair.device.receive_json('{"type":"goodbye","session_id":"S1"}', 5.1)  # the gateway's echo
    assert [type(e) for e in pair.device.events_received()] == [GoodbyeIgnored]
    assert pair.device.state is State.CONNECTING


def test_echoed_goodbye_after_close_is_harmless() -> None:
    pair = SessionPair()
    pair.open()
    pair.send(DEVICE, lambda s: s.close(), expect=None)
    events = pair.send(SERVER, Goodbye())
    assert [type(e) for e in events] == [GoodbyeReceived]
    assert pair.device.state is State.IDLE


def test_websocket_close_sends_no_goodbye() -> None:
    pair = SessionPair(transport=AudioTransport.WEBSOCKET)
    pair.open()
    pair.device.close()
    assert pair.device.messages_to_send() == []
    assert pair.device.state is State.IDLE


def test_channel_lost() -> None:
    pair = SessionPair()
    pair.open()
    pair.server.channel_lost()
    assert pair.server.events_received() == [SessionStateChanged(State.OPEN, State.IDLE)]
    assert pair.server.udp is None


def test_hello_timeout() -> None:
    device = Session(DEVICE)
    device.open_channel(100.0)
    assert device.deadline == 110.0
    device.tick(109.99)
    assert device.state is State.CONNECTING
    device.events_received()
    device.tick(110.0)
    assert device.events_received() == [HelloTimedOut(), SessionStateChanged(State.CONNECTING, State.IDLE)]
    assert device.deadline is None


def test_channel_timeout_refreshed_by_json_and_audio() -> None:
    pair = SessionPair()
    pair.now = 1.0
    pair.open()
    assert pair.device.deadline == 121.0
    pair.send(DEVICE, lambda s: s.start_listening(), expect=None)
    pair.now = 50.0
    pair.send(SERVER, [Stt(text="hi")])
    assert pair.device.deadline == 170.0
    pair.send(SERVER, [TTS_START])
    pair.now = 100.0
    pair.audio(SERVER, b"x")
    assert pair.device.deadline == 220.0
    pair.device.events_received()
    pair.device.tick(219.9)
    assert pair.device.events_received() == []
    pair.device.tick(220.0)
    assert pair.device.events_received() == [ChannelTimedOut(), SessionStateChanged(State.SPEAKING, State.IDLE)]
    assert pair.device.messages_to_send() == []  # abandoned silently, no goodbye
    assert pair.server.deadline is None  # the server side keeps no timers


def test_error_while_connecting_is_a_rejected_hello() -> None:
    pair = SessionPair()
    pair.send(DEVICE, lambda s: s.open_channel(0.0), expect=None)
    events = pair.send(SERVER, lambda s: s.reject_hello(), expect=['{"type":"error","message":"处理 hello 消息失败"}'])
    assert [type(e) for e in events] == [ErrorReceived, SessionStateChanged]
    assert states(pair) == (State.IDLE, State.IDLE)


def test_server_hello_is_validated_like_the_firmware() -> None:
    device = Session(DEVICE)
    device.open_channel(0.0)
    device.events_received()
    for bad in ('{"type":"hello","version":3,"session_id":"S","transport":"websocket"}',
                '{"type":"hello","version":3,"session_id":"S","transport":"udp"}'):
        with pytest.raises(InvalidMessage):
            device.receive_json(bad, 1.0)
    assert device.state is State.CONNECTING
    assert device.events_received() == []
    device.tick(10.0)  # ignored hellos end in the hello timeout, as on the firmware
    assert device.state is State.IDLE


@pytest.mark.parametrize(
    "hello",
    ['{"type":"hello","transport":"websocket","audio_params":{"format":"opus","sample_rate":16000,'
     '"channels":1,"frame_duration":60}}',  # Qiniu Xrobot: no version, no session id
     '{"type":"hello","version":1,"transport":"websocket"}',
     '{"type":"hello","session_id":"S9","transport":"websocket"}'],
    ids=["platform", "no session id", "no version"],
)
def test_websocket_server_hello_needs_only_its_transport(hello: str) -> None:
    """Seen: 'dropped a bad message from the server (hello: missing version)', then the hello timeout."""
    device = Session(DEVICE, transport=AudioTransport.WEBSOCKET)
    device.open_channel(0.0)
    device.receive_json(hello, 1.0)
    assert device.state is State.OPEN
    assert device.session_id == json.loads(hello).get("session_id", "")
    device.start_listening()
    assert json.loads(device.messages_to_send()[-1])["session_id"] == device.session_id


@pytest.mark.parametrize(("goodbye", "acted_on"),
                         [('{"type":"goodbye"}', True), ('{"type":"goodbye","session_id":""}', True),
                          ('{"type":"goodbye","session_id":"S1"}', False)])
def test_a_session_without_id_ends_on_a_goodbye_without_one(goodbye: str, acted_on: bool) -> None:
    """The reference gateway ends a session whose server gave no id with a goodbye that has none."""
    pair = SessionPair()
    pair.open(session_id=None)
    assert pair.device.state is State.OPEN
    assert pair.device.session_id == ""
    pair.device.receive_json(goodbye, 1.0)
    assert (pair.device.state is State.IDLE) is acted_on


def test_remote_illegal_transitions_change_nothing() -> None:
    pair = SessionPair()
    with pytest.raises(UnexpectedMessage, match="tts_start"):
        pair.device.receive_json('{"type":"tts","state":"start"}', 0.0)
    pair.open()
    with pytest.raises(UnexpectedMessage, match="server_hello"):
        pair.device.receive_json(Hello(version=3, session_id="X", transport="udp", udp=UDP).to_json(), 1.0)
    with pytest.raises(UnexpectedMessage, match="does not send 'listen'"):
        pair.device.receive_json('{"type":"listen","state":"start"}', 1.0)
    with pytest.raises(UnexpectedMessage, match="listen_stop"):
        pair.server.receive_json('{"session_id":"S1","type":"listen","state":"stop"}', 1.0)
    with pytest.raises(UnexpectedMessage, match="does not send 'stt'"):
        pair.server.receive_json('{"type":"stt","text":"x"}', 1.0)
    with pytest.raises(BadJson):
        pair.device.receive_json("{garbage", 1.0)
    assert states(pair) == (State.OPEN, State.OPEN)
    assert pair.device.events_received() == []
    assert pair.server.events_received() == []


def test_local_illegal_intents_raise_and_send_nothing() -> None:
    pair = SessionPair()
    for intent in (lambda s: s.wake_word_detected("hi"), lambda s: s.start_listening(), Session.stop_listening,
                   lambda s: s.abort(), lambda s: s.send_audio(b"x")):
        with pytest.raises(LocalProtocolError):
            intent(pair.device)
    pair.open()
    with pytest.raises(LocalProtocolError, match="listen_stop"):
        pair.device.stop_listening()
    with pytest.raises(LocalProtocolError, match="does not send 'stt'"):
        pair.device.send(Stt(text="x"))
    with pytest.raises(LocalProtocolError, match="does not send 'abort'"):
        pair.server.send(parse_message('{"type":"abort"}'))
    with pytest.raises(LocalProtocolError, match="server intent"):
        pair.device.accept_hello("S", udp=UDP)
    with pytest.raises(LocalProtocolError, match="device intent"):
        pair.server.open_channel(0.0)
    with pytest.raises(LocalProtocolError, match="no hello to reject"):
        pair.server.reject_hello()
    with pytest.raises(LocalProtocolError, match="hello"):
        pair.device.send(pair.server.peer_hello)
    assert states(pair) == (State.OPEN, State.OPEN)
    assert pair.device.messages_to_send() == []
    assert pair.server.messages_to_send() == []


def test_udp_accept_needs_udp_params() -> None:
    pair = SessionPair()
    pair.send(DEVICE, lambda s: s.open_channel(0.0), expect=None)
    with pytest.raises(LocalProtocolError, match="udp parameters"):
        pair.server.accept_hello("S1")


def test_mcp_works_without_an_audio_channel() -> None:
    pair = SessionPair()
    request = Mcp(payload={"jsonrpc": "2.0", "id": 10000, "method": "tools/list", "params": {}})
    events = pair.send(SERVER, request)
    assert isinstance(events[0], McpReceived)
    assert events[0].payload["method"] == "tools/list"
    pair.send(DEVICE, Mcp(payload={"jsonrpc": "2.0", "id": 10000, "result": {"tools": []}}),
              expect=['{"session_id":"","type":"mcp","payload":{"jsonrpc":"2.0","id":10000,"result":{"tools":[]}}}'])
    assert states(pair) == (State.IDLE, State.IDLE)


def test_relay_keeps_unknown_types_and_fields() -> None:
    pair = SessionPair()
    pair.open()
    glyph_stt = parse_message('{"type":"stt","text":"你","glyph_push":{"v":1,"glyphs":[]},"session_id":"S1"}')
    events = pair.send(SERVER, [glyph_stt, parse_message('{"type":"call_accepted","from":"aa"}')])
    assert isinstance(events[0], SttReceived)
    assert events[0].message.extra == {"glyph_push": {"v": 1, "glyphs": []}}
    assert isinstance(events[1], UnknownReceived)
    assert isinstance(events[1].message, UnknownMessage)
    assert events[1].message.raw["from"] == "aa"


def test_server_restarts_on_a_second_hello() -> None:
    pair = SessionPair()
    pair.open()
    events = pair.send(DEVICE, lambda s: s.open_channel(1.0), expect=None)
    assert [type(e) for e in events] == [HelloReceived, SessionStateChanged]
    assert pair.server.state is State.CONNECTING
    assert pair.server.udp is None


# --- audio ------------------------------------------------------------------------------------


def sequence_of(datagram: bytes) -> int:
    return int.from_bytes(datagram[12:16], "big")


def test_outgoing_sequence_starts_at_one_per_hello() -> None:
    pair = SessionPair()
    pair.open()
    assert [sequence_of(pair.device.send_audio(b"a")) for _ in range(3)] == [1, 2, 3]
    pair.open(session_id="S2")
    datagram = pair.device.send_audio(b"a")
    assert sequence_of(datagram) == 1
    assert datagram[4:8] == SSRC.to_bytes(4, "big")


def test_device_plays_only_while_speaking() -> None:
    pair = SessionPair()
    pair.open()
    assert pair.audio(SERVER, b"open") is None  # channel open, not listening: dropped
    assert pair.device.audio_discarded == 1
    pair.send(DEVICE, lambda s: s.start_listening(), expect=None)
    assert pair.audio(SERVER, b"early") is None  # listening: held, not played
    pair.send(SERVER, [TTS_START])
    assert pair.device.take_early_audio() == [AudioFrame(0, b"early")]  # overtook tts start: play first
    assert pair.device.take_early_audio() == []
    assert pair.audio(SERVER, b"now") == AudioFrame(0, b"now")


def test_early_audio_is_bounded_and_forgotten_on_a_new_turn() -> None:
    pair = SessionPair()
    pair.open()
    pair.send(DEVICE, lambda s: s.start_listening(), expect=None)
    for i in range(12):
        assert pair.audio(SERVER, bytes([i])) is None
    assert pair.device.audio_discarded == 4  # only the newest 8 are kept
    pair.send(DEVICE, lambda s: s.start_listening(), expect=None)  # a new turn forgets them
    pair.send(SERVER, [TTS_START])
    assert pair.device.take_early_audio() == []


def test_incoming_sequence_rules_per_role() -> None:
    pair = SessionPair()
    pair.open()
    pair.send(SERVER, [TTS_START])
    downlink = pair.server.send_audio(b"one")
    assert pair.device.receive_audio(downlink, 1.0) == AudioFrame(0, b"one")
    assert pair.device.receive_audio(downlink, 1.0) is None  # device: duplicate dropped
    uplink = pair.device.send_audio(b"up")
    assert pair.server.receive_audio(uplink, 1.0) == AudioFrame(0, b"up")
    assert pair.server.receive_audio(uplink, 1.0) == AudioFrame(0, b"up")  # gateway: equal accepted
    assert pair.device.audio.receive_window.stale == 1


def test_length_rules_per_role() -> None:
    pair = SessionPair()
    pair.open()
    pair.send(SERVER, [TTS_START])
    with pytest.raises(MalformedPacket):
        pair.device.receive_audio(pair.server.send_audio(b"x") + b"pad", 1.0)
    assert pair.server.receive_audio(pair.device.send_audio(b"y") + b"pad", 1.0) == AudioFrame(0, b"y")


def test_audio_outside_a_channel_is_discarded() -> None:
    pair = SessionPair()
    pair.open()
    datagram = pair.server.send_audio(b"x")
    pair.device.close()
    assert pair.device.receive_audio(datagram, 1.0) is None
    with pytest.raises(LocalProtocolError):
        pair.device.send_audio(b"x")


@pytest.mark.parametrize("ws_version", list(WsProtocolVersion))
def test_websocket_hello_names_the_binary_protocol_version(ws_version: WsProtocolVersion) -> None:
    device = Session(Role.DEVICE, transport=AudioTransport.WEBSOCKET, ws_version=ws_version)
    device.open_channel(0.0)
    assert json.loads(device.messages_to_send()[0])["version"] == int(ws_version)  # as the firmware's hello


def test_websocket_audio_uses_the_framing() -> None:
    pair = SessionPair(transport=AudioTransport.WEBSOCKET, ws_version=WsProtocolVersion.V2)
    pair.open()
    assert pair.device.udp is None
    frame = pair.device.send_audio(b"opus", timestamp=7)
    assert frame == bytes.fromhex("0002 0000 00000000 00000007 00000004") + b"opus"
    assert pair.server.receive_audio(frame, 0.0) == AudioFrame(7, b"opus")
