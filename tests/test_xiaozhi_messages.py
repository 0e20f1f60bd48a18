"""JSON control messages (§7): exact firmware forms, every type, pass-through, garbage and limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pibuddy.xiaozhi.const import MAX_JSON_MESSAGE_SIZE
from pibuddy.xiaozhi.errors import (
    BadJson,
    InvalidMessage,
    LocalProtocolError,
    MessageTooLarge,
    ProtocolError,
    RemoteProtocolError,
)
from pibuddy.xiaozhi.messages import (
    Abort,
    Alert,
    AudioParams,
    Custom,
    Error,
    Goodbye,
    Hello,
    Iot,
    Listen,
    ListenMode,
    ListenState,
    Llm,
    Mcp,
    Ping,
    Pong,
    Stt,
    System,
    Tts,
    TtsState,
    UdpTimeout,
    UnknownMessage,
    parse_message,
)

# Device -> server messages exactly as the firmware prints them (§7.1), and server forms (§3.4, §7.2).
FIRMWARE_FORMS = [
    '{"session_id":"S","type":"listen","state":"start","mode":"auto"}',
    '{"session_id":"S","type":"listen","state":"start","mode":"manual"}',
    '{"session_id":"S","type":"listen","state":"start","mode":"realtime"}',
    '{"session_id":"S","type":"listen","state":"stop"}',
    '{"session_id":"S","type":"listen","state":"detect","text":"你好小智"}',
    '{"session_id":"S","type":"abort"}',
    '{"session_id":"S","type":"abort","reason":"wake_word_detected"}',
    '{"session_id":"S","type":"mcp","payload":{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}}',
    '{"session_id":"S","type":"goodbye"}',
    '{"session_id":"S","type":"iot","update":true,"states":[{"name":"Speaker","state":{"volume":50}}]}',
    '{"type":"hello","version":3,"transport":"udp","features":{"mcp":true},'
    '"audio_params":{"format":"opus","sample_rate":16000,"channels":1,"frame_duration":60}}',
    '{"type":"hello","version":3,"session_id":"839f3bb9-7486-4917-a0d3-8f45d21750ca","transport":"udp",'
    '"udp":{"server":"198.51.100.2","port":8884,"encryption":"aes-128-ctr",'
    '"key":"00112233445566778899aabbccddeeff","nonce":"01000000deadbeef0000000000000000"},'
    '"audio_params":{"format":"opus","sample_rate":24000,"channels":1,"frame_duration":60}}',
    '{"type":"stt","text":"今天天气怎么样"}',
    '{"type":"llm","emotion":"happy","text":"😊"}',
    '{"type":"tts","state":"start"}',
    '{"type":"tts","state":"sentence_start","text":"你好"}',
    '{"type":"tts","state":"sentence_end","text":"你好"}',
    '{"type":"tts","state":"stop"}',
    '{"type":"system","command":"reboot"}',
    '{"type":"alert","status":"Warning","message":"Low battery","emotion":"sad"}',
    '{"type":"custom","payload":{"anything":[1,2,3]}}',
    '{"type":"error","message":"处理 hello 消息失败"}',
    '{"type":"udp_timeout"}',
    '{"type":"ping"}',
    '{"type":"pong","timestamp":"2026-01-01 12:00:00"}',
    '{"type":"call_accepted","from":"aa:bb:cc:dd:ee:ff"}',
]

EXPECTED_CLASSES = [Listen] * 5 + [Abort] * 2 + [Mcp, Goodbye, Iot, Hello, Hello, Stt, Llm] + [Tts] * 4 + [
    System, Alert, Custom, Error, UdpTimeout, Ping, Pong, UnknownMessage]


@pytest.mark.parametrize(("text", "cls"), list(zip(FIRMWARE_FORMS, EXPECTED_CLASSES, strict=True)),
                         ids=lambda v: str(v)[:40])
def test_firmware_forms_round_trip_byte_for_byte(text: str, cls: type) -> None:
    message = parse_message(text)
    assert type(message) is cls
    assert message.to_json() == text
    assert parse_message(text.encode()).to_json() == text


def test_built_device_messages_match_firmware_bytes() -> None:
    assert Listen(session_id="S", state="start", mode="auto").to_json() == FIRMWARE_FORMS[0]
    assert Listen(session_id="S", state=ListenState.DETECT, text="你好小智").to_json() == FIRMWARE_FORMS[4]
    assert Abort(session_id="S", reason="wake_word_detected").to_json() == FIRMWARE_FORMS[6]
    assert Goodbye(session_id="S").to_json() == FIRMWARE_FORMS[8]
    hello = Hello(version=3, transport="udp", features={"mcp": True},
                  audio_params=AudioParams(16000, 60).to_dict())
    assert hello.to_json() == FIRMWARE_FORMS[10]


def test_parsed_fields() -> None:
    listen = parse_message(FIRMWARE_FORMS[0])
    assert isinstance(listen, Listen)
    assert (listen.session_id, listen.state, listen.mode) == ("S", ListenState.START, ListenMode.AUTO)
    hello = parse_message(FIRMWARE_FORMS[11])
    assert isinstance(hello, Hello)
    assert hello.udp is not None
    assert hello.udp.ssrc == 0xDEADBEEF
    assert hello.udp.port == 8884
    assert hello.session_id == "839f3bb9-7486-4917-a0d3-8f45d21750ca"
    alert = parse_message(FIRMWARE_FORMS[19])
    assert isinstance(alert, Alert)
    assert (alert.status, alert.message, alert.emotion) == (
        "Warning", "Low battery", "sad")
    tts = parse_message(FIRMWARE_FORMS[15])
    assert isinstance(tts, Tts)
    assert tts.state is TtsState.SENTENCE_START
    assert tts.text == "你好"
    unknown = parse_message(FIRMWARE_FORMS[-1])
    assert isinstance(unknown, UnknownMessage)
    assert unknown.type == "call_accepted"


def test_unknown_fields_pass_through() -> None:
    glyphs = {"v": 1, "bundle": "noto-v1", "size": 20, "bpp": 4, "glyphs": [
        {"codepoint": 20320, "adv_w": 20, "box_w": 18, "box_h": 19, "ofs_x": 1, "ofs_y": -2, "bitmap": "AAEC"}]}
    stt = parse_message(json.dumps({"type": "stt", "text": "你", "glyph_push": glyphs, "session_id": "S"}))
    assert isinstance(stt, Stt)
    assert stt.extra == {"glyph_push": glyphs}
    assert json.loads(stt.to_json()) == {"type": "stt", "text": "你", "glyph_push": glyphs, "session_id": "S"}
    hello = parse_message('{"type":"hello","version":3,"transport":"udp","text_font":{"size":20},'
                          '"features":{"mcp":true,"glyph_push":true}}')
    assert isinstance(hello, Hello)
    assert json.loads(hello.to_json())["text_font"] == {"size": 20}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(
    extra=st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in {"type", "session_id", "state", "text"}),
        json_values, max_size=5,
    ),
    text=st.text(max_size=50),
)
def test_any_extra_fields_survive_a_round_trip(extra: dict[str, Any], text: str) -> None:
    message = Tts(session_id="S", state=TtsState.SENTENCE_START, text=text, extra=extra)
    again = parse_message(message.to_json())
    assert again == message


@pytest.mark.parametrize(
    "data",
    ["", "not json", "{", '{"type":"tts",}', b"\xff\xfe\xfd", "[1,2]", '"hello"', "42", "null",
     '{"type":"tts","state":"start","x":NaN}', "[" * 50_000],
    ids=["empty", "text", "open brace", "trailing comma", "bad utf-8", "array", "string", "number", "null",
         "NaN", "deep nesting"],
)
def test_garbage_is_bad_json(data: str | bytes) -> None:
    with pytest.raises(BadJson):
        parse_message(data)


def test_size_cap_is_checked_before_parsing() -> None:
    at_cap = json.dumps({"type": "custom", "payload": {"pad": ""}})
    at_cap = at_cap.replace('""', '"' + "x" * (MAX_JSON_MESSAGE_SIZE - len(at_cap)) + '"')
    assert len(at_cap) == MAX_JSON_MESSAGE_SIZE
    assert isinstance(parse_message(at_cap), Custom)
    with pytest.raises(MessageTooLarge) as info:
        parse_message("{" * (MAX_JSON_MESSAGE_SIZE + 1))  # garbage too: the cap wins
    assert info.value.hint == 1009
    with pytest.raises(MessageTooLarge):
        parse_message(b'{"type":"ping"}', max_size=10)


@pytest.mark.parametrize(
    "obj",
    [
        {}, {"type": 1}, {"type": None}, {"type": ["listen"]},
        {"type": "listen"}, {"type": "listen", "state": 1}, {"type": "listen", "state": "detect", "text": 5},
        {"type": "tts"}, {"type": "tts", "state": "start", "text": []},
        {"type": "stt", "text": 5}, {"type": "llm", "emotion": 3}, {"type": "system", "command": 1},
        {"type": "alert", "status": "a", "message": "b"},
        {"type": "alert", "status": 1, "message": "b", "emotion": "c"},
        {"type": "mcp"}, {"type": "mcp", "payload": []}, {"type": "custom", "payload": "x"},
        {"type": "error", "message": {}}, {"type": "abort", "reason": 7},
        {"type": "goodbye", "session_id": 12},
        {"type": "hello", "version": True, "transport": "udp"}, {"type": "hello", "version": "3", "transport": "udp"},
        {"type": "hello", "transport": 3}, {"type": "hello", "version": 3, "transport": "udp", "features": []},
        {"type": "hello", "version": 3, "transport": "udp", "udp": "x"},
        {"type": "hello", "version": 3, "transport": "udp",
         "udp": {"server": "h", "port": 1, "key": "00", "nonce": "00"}},
    ],
    ids=json.dumps,
)
def test_bad_fields_are_invalid_messages(obj: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message(json.dumps(obj))
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.message_type == (obj.get("type") if isinstance(obj.get("type"), str) else None)


# What the firmware accepts (docs/compat.md): each parses, and the missing fields are None.
@pytest.mark.parametrize(
    ("text", "cls", "missing"),
    [
        # Qiniu's Xrobot platform: no version, no session id.
        ('{"type":"hello","transport":"websocket","audio_params":{"format":"opus","sample_rate":16000,'
         '"channels":1,"frame_duration":60}}', Hello, ("version", "session_id")),
        ('{"type":"hello","version":1,"transport":"websocket"}', Hello, ("session_id", "audio_params")),
        ('{"type":"hello","transport":"udp","udp":{"server":"198.51.100.2","port":8884,'
         '"key":"00112233445566778899aabbccddeeff","nonce":"01000000deadbeef0000000000000000"}}', Hello,
         ("version", "session_id", "audio_params")),
        ('{"type":"hello","version":3,"features":{"mcp":true}}', Hello, ("transport",)),
        ('{"type":"stt"}', Stt, ("text",)),
        ('{"type":"stt","text":null}', Stt, ("text",)),
        ('{"type":"system"}', System, ("command",)),
        ('{"type":"llm"}', Llm, ("emotion", "text")),
    ],
)
def test_what_the_firmware_accepts_parses(text: str, cls: type, missing: tuple[str, ...]) -> None:
    message = parse_message(text)
    assert type(message) is cls
    assert all(getattr(message, name) is None for name in missing)
    assert json.loads(message.to_json()) == {k: v for k, v in json.loads(text).items() if v is not None}


@pytest.mark.parametrize(
    "obj",
    [{"type": "tts", "state": "pause"}, {"type": "listen", "state": "go"},
     {"type": "listen", "state": "start", "mode": "x"}, {"session_id": "S", "type": "tts", "state": "end", "n": 1}],
    ids=json.dumps,
)
def test_a_choice_we_do_not_know_is_an_unknown_message(obj: dict[str, Any]) -> None:
    """The firmware ignores a tts state it does not know; a relay passes the message on unchanged."""
    message = parse_message(json.dumps(obj))
    assert isinstance(message, UnknownMessage)
    assert message.type == obj["type"]
    assert message.to_dict() == obj


def test_null_session_id_is_accepted() -> None:
    goodbye = parse_message('{"type":"goodbye","session_id":null}')
    assert isinstance(goodbye, Goodbye)
    assert goodbye.session_id is None


def test_building_a_bad_message_is_our_error() -> None:
    with pytest.raises(LocalProtocolError):
        Listen(state="bogus")
    with pytest.raises(LocalProtocolError, match="repeats"):
        Stt(text="x", extra={"text": "y"})
    with pytest.raises(LocalProtocolError, match="repeats"):
        Goodbye(extra={"type": "stt"})
    with pytest.raises(LocalProtocolError, match="serialisable"):
        Mcp(payload={"x": float("nan")}).to_json()
    with pytest.raises(LocalProtocolError, match="serialisable"):
        Custom(payload={"x": object()}).to_json()


def test_enum_fields_accept_their_strings() -> None:
    assert Listen(state="start", mode="realtime").mode is ListenMode.REALTIME


def test_downlink_audio_params() -> None:
    assert AudioParams.downlink({"sample_rate": 16000, "frame_duration": 20}) == AudioParams(16000, 20)
    assert AudioParams.downlink(None) == AudioParams(24000, 60)
    assert AudioParams.downlink({"sample_rate": "16000", "frame_duration": True}) == AudioParams(24000, 60)


def test_protocol_error_base_is_abstract_and_hints() -> None:
    with pytest.raises(TypeError):
        ProtocolError("x")
    assert LocalProtocolError("x").hint == 1011
    assert BadJson("x").hint == 1007
    assert InvalidMessage("x", hint=4000).hint == 4000
