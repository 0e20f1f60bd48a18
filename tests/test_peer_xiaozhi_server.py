"""Tests of the xiaozhi test peer itself, driven by tiny scripted clients (not PiBuddy)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import aiomqtt
import opuslib_next
import pytest

from tests.peers import xiaozhi_wire as wire
from tests.peers.mosquitto import MosquittoBroker, mosquitto_fixture  # noqa: F401
from tests.peers.opus_audio import OpusFrameDecoder, encode_tone
from tests.peers.xiaozhi_server import McpCallError, MqttBrokerInfo, XiaozhiTestServer

MAC = "11:22:33:44:55:66"
CLIENT_ID = "36c98363-3656-43cb-a00f-8bced2391a90"
HEADERS = {"Device-Id": MAC, "Client-Id": CLIENT_ID, "User-Agent": "pibuddy/0.1", "Accept-Language": "zh-CN"}
OTA_BODY = {"version": 2, "application": {"name": "xiaozhi", "version": "2.4.4"}, "board": {"type": "pibuddy"}}
AUDIO_PARAMS = {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}
WS_HELLO = {
    "type": "hello",
    "version": 1,
    "features": {"mcp": True},
    "transport": "websocket",
    "audio_params": AUDIO_PARAMS,
}
FAST = {"tts_frame_interval": 0.01, "ws_heartbeat": None}
WAIT = 2.0


# --- the peer's own codec against the reference vectors (§12.3) ----------------------------------


def test_udp_packet_vector_and_gateway_receive_rules() -> None:
    key = bytes(range(16))
    datagram = wire.seal_udp(key, ssrc=0x12345678, timestamp=0, sequence=1, opus=bytes(range(0xA0, 0xB4)))
    assert datagram.hex() == "01000014123456780000000000000001" + "df23ab7fd5b7d8b0c34dfaa86f7566749b5a3fc8"
    header, opus = wire.open_udp_gateway(key, datagram + b"tail", ssrc=0x12345678)  # trailing bytes tolerated
    assert (header.sequence, opus) == (1, bytes(range(0xA0, 0xB4)))
    assert wire.udp_nonce_hex(0x12345678) == "01000000123456780000000000000000"
    for bad in (datagram[:15], b"\x02" + datagram[1:], datagram[:-1]):
        with pytest.raises(wire.WireError):
            wire.open_udp_gateway(key, bad, ssrc=0x12345678)
    with pytest.raises(wire.WireError, match="unknown"):
        wire.open_udp_gateway(key, datagram, ssrc=0x1)


def test_credential_and_token_vectors() -> None:
    client_id = wire.mqtt_client_id("GID_test", MAC, CLIENT_ID)
    assert client_id == "GID_test@@@11_22_33_44_55_66@@@36c98363-3656-43cb-a00f-8bced2391a90"
    username = wire.mqtt_username({"ip": "222.222.222.222"})
    assert username == "eyJpcCI6IjIyMi4yMjIuMjIyLjIyMiJ9"
    assert wire.mqtt_password("Abcdefgh9", client_id, username) == "fXr+daEDNo112brdkesDYSOP/bbVilnyYdmtyZbq594="
    assert wire.reply_topic(client_id) == "devices/p2p/11_22_33_44_55_66"
    token = wire.ws_auth_token("Te1st12134", CLIENT_ID, MAC, 1757567894)
    assert token == "_LrvrIqo8upwkl5hHeJgh2toDihX5EDpvtkz_b8XFAg.1757567894"
    check = {"client_id": CLIENT_ID, "device_id": MAC, "max_age": 60}
    assert wire.verify_ws_auth_token("Te1st12134", token, now=1757567900, **check)
    assert not wire.verify_ws_auth_token("Te1st12134", token, now=1757567894 + 61, **check)
    assert not wire.verify_ws_auth_token("other", token, now=1757567900, **check)


def test_ws_binary_framing_layouts() -> None:
    opus = b"\x01\x02\x03"
    v2 = wire.frame_downlink(wire.Framing.V2, opus, timestamp=7, sequence=1)
    assert v2 == struct.pack(">HHIII", 2, 0, 0, 7, 3) + opus
    assert wire.parse_uplink(wire.Framing.V2, v2) == (7, opus)
    v3 = wire.frame_downlink(wire.Framing.V3, opus, timestamp=7, sequence=1)
    assert v3 == b"\x00\x00\x00\x03" + opus
    assert wire.parse_uplink(wire.Framing.V3, v3) == (0, opus)
    down = wire.frame_downlink(wire.Framing.GATEWAY, opus, timestamp=(1 << 32) + 9, sequence=4)
    assert down == struct.pack(">BBHIII", 1, 0, 3, 4, 9, 3) + opus
    up = wire.frame_gateway_uplink(opus, timestamp=99)
    assert up[:8] == bytes(8)
    assert wire.parse_uplink(wire.Framing.GATEWAY, up) == (99, opus)
    for framing, bad in ((wire.Framing.V2, v2 + b"x"), (wire.Framing.V3, v3[:-1]), (wire.Framing.GATEWAY, up[:15])):
        with pytest.raises(wire.WireError):
            wire.parse_uplink(framing, bad)


def test_tts_tone_decodes_as_a_440_hz_tone() -> None:
    frames = encode_tone(6)
    decoder = OpusFrameDecoder(rate=24000)
    pcm = [decoder.decode(frame) for frame in frames]
    assert all(len(p) == 1440 * 2 for p in pcm)
    samples = struct.unpack(f"<{1440}h", pcm[-1])
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    assert 2 * 440 * 0.06 - 6 <= crossings <= 2 * 440 * 0.06 + 6  # ~53 zero crossings in 60 ms
    assert max(abs(s) for s in samples) > 4000
    with pytest.raises(opuslib_next.OpusError):
        OpusFrameDecoder().decode(b"\xff\xff\xff")


# --- OTA and activation ------------------------------------------------------------------------


async def post(url: str, body: Any, headers: dict[str, str] = HEADERS) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if resp.content_type == "application/json" else text


async def test_ota_answer_without_activation() -> None:
    async with XiaozhiTestServer(websocket_token="tok", **FAST) as server:
        status, answer = await post(server.ota_url, OTA_BODY)
    assert status == 200
    assert set(answer) == {"server_time", "firmware", "websocket"}
    assert abs(answer["server_time"]["timestamp"] - time.time() * 1000) < 5000
    assert answer["server_time"]["timezone_offset"] == 480
    assert answer["firmware"] == {"version": "2.4.4", "url": ""}
    assert answer["websocket"] == {"url": server.ws_url, "token": "tok"}
    recorded = server.ota_requests[0]
    assert (recorded.method, recorded.path, recorded.json) == ("POST", "/xiaozhi/ota/", OTA_BODY)
    assert recorded.headers["Device-Id"] == MAC


async def test_activation_polls_202_then_200_and_checks_the_hmac() -> None:
    key = b"k" * 32
    async with XiaozhiTestServer(activation=True, activation_polls=3, activation_hmac_key=key, **FAST) as server:
        _, answer = await post(server.ota_url, OTA_BODY)
        activation = answer["activation"]
        assert activation["code"].isdigit()
        assert len(activation["code"]) == 6
        assert activation["code"] in activation["message"]
        assert activation["timeout_ms"] > 0
        challenge = activation["challenge"]
        digest = hmac.new(key, challenge.encode(), hashlib.sha256).hexdigest()
        body = {"algorithm": "hmac-sha256", "serial_number": "SN-1", "challenge": challenge, "hmac": digest}
        url = server.ota_url + "activate"
        assert [(await post(url, body))[0] for _ in range(3)] == [202, 202, 200]
        assert [r.hmac_valid for r in server.activate_requests] == [True, True, True]
        assert server.activate_requests[0].json == body
        _, again = await post(server.ota_url, OTA_BODY)
        assert "activation" not in again
        other = {**HEADERS, "Device-Id": "aa:bb:cc:dd:ee:ff"}
        _, answer = await post(server.ota_url, OTA_BODY, other)
        wrong = {"Payload": {**body, "challenge": answer["activation"]["challenge"]}}  # right challenge, wrong hmac
        assert (await post(url, wrong, other))[0] == 401
        assert server.activate_requests[-1].hmac_valid is False


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Client-Id": CLIENT_ID}, OTA_BODY, 200),
        ({"Device-Id": "not-a-mac", "Client-Id": CLIENT_ID}, OTA_BODY, 200),
        ({"Device-Id": MAC}, OTA_BODY, 200),
        (HEADERS, {"board": {"type": "x"}}, 500),
    ],
)
async def test_ota_rejects_bad_requests(headers: dict[str, str], body: Any, status: int) -> None:
    async with XiaozhiTestServer(**FAST) as server:
        got_status, answer = await post(server.ota_url, body, headers)
    assert got_status == status
    if status == 200:
        assert answer == {"success": False, "message": "request error."}
    assert len(server.ota_requests) == 1


# --- WebSocket ---------------------------------------------------------------------------------


class ScriptedWsDevice:
    """Just enough firmware behaviour to drive the peer: JSON out, JSON and audio in."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.audio: list[bytes] = []
        self.audio_times: list[float] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def next_json(self) -> dict[str, Any]:
        """The next text message; binary messages on the way are collected into ``audio``."""
        async with asyncio.timeout(WAIT):
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.BINARY:
                    self.audio.append(msg.data)
                    self.audio_times.append(time.monotonic())
                    continue
                assert msg.type is aiohttp.WSMsgType.TEXT, f"connection ended: {msg.type} {msg.data}"
                return json.loads(msg.data)

    async def until(self, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        received = [await self.next_json()]
        while not done(received[-1]):
            received.append(await self.next_json())
        return received

    async def hello(self, hello: dict[str, Any] = WS_HELLO) -> str:
        await self.send(hello)
        reply = await self.next_json()
        assert reply["type"] == "hello"
        return reply["session_id"]


@asynccontextmanager
async def ws_device(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[ScriptedWsDevice]:
    sent = {**HEADERS, "Protocol-Version": "1"} if headers is None else headers
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=sent) as ws:
        yield ScriptedWsDevice(ws)


def is_tts_stop(message: dict[str, Any]) -> bool:
    return message.get("type") == "tts" and message.get("state") == "stop"


def uplink_frames(count: int) -> list[bytes]:
    return encode_tone(count, rate=16000, freq=300.0)


async def test_ws_hello_mcp_discovery_and_tool_call() -> None:
    async with XiaozhiTestServer(**FAST) as server, ws_device(server.ws_url) as dev:
        await dev.send(WS_HELLO)
        hello = await dev.next_json()
        sid = hello["session_id"]
        assert hello == {
            "type": "hello", "version": 1, "transport": "websocket", "audio_params": AUDIO_PARAMS, "session_id": sid,
        }  # fmt: skip
        assert uuid.UUID(sid).version == 4
        assert server.session_id == sid
        init = (await dev.next_json())["payload"]
        assert (init["id"], init["method"], init["params"]["protocolVersion"]) == (1, "initialize", "2024-11-05")
        assert init["params"]["capabilities"]["vision"]["url"] == f"{server.http_url}/mcp/vision/explain"
        await dev.send({"session_id": sid, "type": "mcp", "payload": {"jsonrpc": "2.0", "id": 1, "result": {}}})
        pages = [{"tools": [{"name": "self.a"}], "nextCursor": "self.b"}, {"tools": [{"name": "self.b"}]}]
        for expected_params, page in zip([None, {"cursor": "self.b"}], pages, strict=True):
            request = (await dev.next_json())["payload"]
            assert (request["id"], request["method"], request.get("params")) == (2, "tools/list", expected_params)
            await dev.send({"session_id": sid, "type": "mcp", "payload": {"jsonrpc": "2.0", "id": 2, "result": page}})
        await asyncio.wait_for(server.tools_listed.wait(), WAIT)
        assert [t["name"] for t in server.mcp_tools] == ["self.a", "self.b"]

        for call_id, reply in ((1, {"result": {"content": [], "isError": False}}), (2, {"error": {"message": "no"}})):
            call = asyncio.create_task(server.call_tool("self.a", {"volume": 5}))
            request = (await dev.next_json())["payload"]
            assert request == {
                "jsonrpc": "2.0", "id": call_id, "method": "tools/call",
                "params": {"name": "self.a", "arguments": {"volume": 5}},
            }  # fmt: skip
            await dev.send({"session_id": sid, "type": "mcp", "payload": {"jsonrpc": "2.0", "id": call_id, **reply}})
            if "error" in reply:
                with pytest.raises(McpCallError, match="no"):
                    await call
            else:
                assert await call == reply["result"]
    assert server.bad_input == []


async def test_ws_auto_conversation_is_paced_like_xiaozhi_server() -> None:
    interval = 0.04
    server = XiaozhiTestServer(tts_frames=8, tts_frame_interval=interval, utterance_frames=3, mcp=False)
    async with server, ws_device(server.ws_url) as dev:
        sid = await dev.hello()
        await dev.send({"session_id": sid, "type": "listen", "state": "start", "mode": "auto"})
        asked = time.monotonic()  # before the server can start the reply (it answers the 3rd frame)
        for frame in uplink_frames(3):
            await dev.ws.send_bytes(frame)
        replies = await dev.until(is_tts_stop)
        stop_time = time.monotonic()
    assert [(m["type"], m.get("state")) for m in replies] == [
        ("stt", None), ("tts", "start"), ("llm", None), ("tts", "sentence_start"), ("tts", "stop"),
    ]  # fmt: skip
    assert all(m["session_id"] == sid for m in replies)
    assert replies[3]["text"] == server.settings.reply_text
    assert replies[2]["emotion"] == "happy"
    assert len(dev.audio) == 8
    decoder = OpusFrameDecoder(rate=24000)
    assert all(len(decoder.decode(frame)) == 1440 * 2 for frame in dev.audio)
    times = dev.audio_times
    assert times[4] - times[0] < interval  # the first five frames go out at once
    # Lower bounds from a moment before the reply began: a late read of the first frames on a loaded machine
    # cannot shorten them, as it could a difference of two arrival times.
    assert times[7] - asked >= 3 * interval * 0.9  # then one per interval
    assert stop_time - asked >= (3 + 7) * interval * 0.9  # tts stop waits for the device buffer
    assert [f.samples for f in server.uplink_frames] == [960, 960, 960]
    assert server.listen_start.is_set()
    assert server.tts_done.is_set()


async def test_ws_abort_stops_tts_at_once() -> None:
    server = XiaozhiTestServer(tts_frames=100, tts_frame_interval=0.02, utterance_frames=1, mcp=False)
    async with server, ws_device(server.ws_url) as dev:
        sid = await dev.hello()
        await dev.send({"session_id": sid, "type": "listen", "state": "start", "mode": "auto"})
        await dev.ws.send_bytes(uplink_frames(1)[0])
        await dev.until(lambda m: m.get("state") == "sentence_start")
        await dev.send({"session_id": sid, "type": "abort", "reason": "wake_word_detected"})
        started = time.monotonic()
        assert is_tts_stop(await dev.next_json())
        assert time.monotonic() - started < 0.5
    assert len(dev.audio) < 100
    assert server.abort_received.is_set()


async def test_ws_manual_mode_waits_for_listen_stop_and_detect_greets() -> None:
    server = XiaozhiTestServer(utterance_frames=1, mcp=False, **FAST)
    async with server, ws_device(server.ws_url) as dev:
        sid = await dev.hello()
        await dev.send({"session_id": sid, "type": "listen", "state": "start", "mode": "manual"})
        for frame in uplink_frames(2):
            await dev.ws.send_bytes(frame)
        with pytest.raises(TimeoutError):  # manual mode ignores utterance_frames
            await asyncio.wait_for(server.tts_started.wait(), 0.2)
        await dev.send({"session_id": sid, "type": "listen", "state": "stop"})
        first = await dev.until(is_tts_stop)
        await dev.send({"session_id": sid, "type": "listen", "state": "detect", "text": "你好小智"})
        second = await dev.until(is_tts_stop)
    assert first[0] == {"type": "stt", "text": server.settings.stt_text, "session_id": sid}
    assert second[0]["text"] == "你好小智"
    assert second[3] == {
        "type": "tts",
        "state": "sentence_start",
        "text": server.settings.greeting_text,
        "session_id": sid,
    }


@pytest.mark.parametrize(
    ("headers", "notice"),
    [
        ({"Client-Id": CLIENT_ID, "Protocol-Version": "1"}, "端口正常"),
        ({"Device-Id": MAC, "Protocol-Version": "1"}, "端口正常"),
        ({**HEADERS, "Protocol-Version": "9"}, "端口正常"),
        ({**HEADERS, "Protocol-Version": "1", "Authorization": "Bearer wrong"}, "认证失败"),
        ({**HEADERS, "Protocol-Version": "1"}, "认证失败"),
    ],
)
async def test_ws_handshake_refusals(headers: dict[str, str], notice: str) -> None:
    async with XiaozhiTestServer(websocket_token="secret", **FAST) as server, ws_device(server.ws_url, headers) as dev:
        text = await dev.ws.receive_str(timeout=WAIT)
        closing = await dev.ws.receive(timeout=WAIT)
    assert text.startswith(notice)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert server.bad_input
    assert not server.hello_received.is_set()


async def test_ws_accepts_the_hmac_token_issued_by_ota() -> None:
    async with XiaozhiTestServer(auth_key="Te1st12134", mcp=False, **FAST) as server:
        _, answer = await post(server.ota_url, OTA_BODY)
        token = answer["websocket"]["token"]
        good = {**HEADERS, "Protocol-Version": "1", "Authorization": f"Bearer {token}"}
        async with ws_device(server.ws_url, good) as dev:
            assert await dev.hello()
        tampered = {**good, "Client-Id": str(uuid.uuid4())}
        async with ws_device(server.ws_url, tampered) as dev:
            assert await dev.ws.receive_str(timeout=WAIT) == "认证失败"


async def test_ws_bad_input_is_dropped_and_server_knobs_reach_the_device() -> None:
    async with XiaozhiTestServer(mcp=False, **FAST) as server, ws_device(server.ws_url) as dev:
        await dev.ws.send_str("{not json")
        await dev.ws.send_bytes(b"audio before hello")
        sid = await dev.hello()
        await dev.ws.send_bytes(b"\xff\xff\xff")  # not opus
        await dev.send({"session_id": sid, "type": "mcp", "payload": {"jsonrpc": "2.0", "id": "x", "result": {}}})
        await server.send_raw_text("{garbage")
        assert await dev.ws.receive_str(timeout=WAIT) == "{garbage"
        await server.send_goodbye("wrong-session")
        assert await dev.next_json() == {"type": "goodbye", "session_id": "wrong-session"}
        await server.close_connection()
        closing = await dev.ws.receive(timeout=WAIT)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert len(server.bad_input) == 4, server.bad_input
    assert server.uplink_frames == []


async def test_ws_idle_goodbye_and_close_mid_sentence() -> None:
    async with XiaozhiTestServer(idle_goodbye_seconds=0.2, mcp=False, **FAST) as server:
        async with ws_device(server.ws_url) as dev:
            await dev.hello()
            started = time.monotonic()
            closing = await dev.ws.receive(timeout=WAIT)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert time.monotonic() - started >= 0.15
        server.settings.idle_goodbye_seconds = None
        server.settings.close_after_tts_frames = 3
        server.settings.utterance_frames = 1
        server.reset_milestones()
        assert not server.hello_received.is_set()
        async with ws_device(server.ws_url) as dev:
            sid = await dev.hello()
            assert server.hello_received.is_set()
            await dev.send({"session_id": sid, "type": "listen", "state": "start", "mode": "auto"})
            await dev.ws.send_bytes(uplink_frames(1)[0])
            await dev.until(lambda m: m.get("state") == "sentence_start")
            with pytest.raises(AssertionError, match="connection ended"):
                await dev.next_json()
        assert len(dev.audio) == 3
        assert not server.tts_done.is_set()


@pytest.mark.parametrize("version", ["2", "3"])
async def test_ws_protocol_versions_frame_audio(version: str) -> None:
    header = {"2": 16, "3": 4}[version]

    def frame_up(opus: bytes, ts: int) -> bytes:
        if version == "2":
            return struct.pack(">HHIII", 2, 0, 0, ts, len(opus)) + opus
        return struct.pack(">BBH", 0, 0, len(opus)) + opus

    server = XiaozhiTestServer(tts_frames=2, utterance_frames=2, mcp=False, **FAST)
    async with server, ws_device(server.ws_url, {**HEADERS, "Protocol-Version": version}) as dev:
        sid = await dev.hello()
        await dev.send({"session_id": sid, "type": "listen", "state": "start", "mode": "auto"})
        await dev.ws.send_bytes(frame_up(b"\xff", 1)[:-2])  # truncated: dropped
        for ts, frame in enumerate(uplink_frames(2), start=5):
            await dev.ws.send_bytes(frame_up(frame, ts))
        await dev.until(is_tts_stop)
    assert len(server.bad_input) == 1
    assert [f.timestamp for f in server.uplink_frames] == ([5, 6] if version == "2" else [0, 0])
    for data in dev.audio:
        size = struct.unpack(">I", data[12:16])[0] if version == "2" else struct.unpack(">H", data[2:4])[0]
        assert size == len(data) - header
        OpusFrameDecoder(rate=24000).decode(data[header:])


async def test_gateway_leg_uses_the_mqtt_gateway_framing() -> None:
    gateway_headers = {"device-id": MAC, "protocol-version": "2", "authorization": "Bearer test-token"}
    server = XiaozhiTestServer(tts_frames=3, utterance_frames=2, **FAST)
    async with server, ws_device(server.ws_url + "?from=mqtt_gateway", gateway_headers) as dev:
        hello = {"type": "hello", "version": 2, "transport": "websocket", "audio_params": AUDIO_PARAMS, "features": {}}
        sid = await dev.hello(hello)
        await dev.send({"session_id": sid, "type": "listen", "state": "start", "mode": "auto"})
        for ts, frame in enumerate(uplink_frames(2), start=1000):
            await dev.ws.send_bytes(wire.frame_gateway_uplink(frame, timestamp=ts))
        await dev.until(is_tts_stop)
    assert [f.timestamp for f in server.uplink_frames] == [1000, 1001]
    now_ms = int(time.time() * 1000) % (1 << 32)
    for seq, data in enumerate(dev.audio, start=1):
        kind, flags, len16, got_seq, ts, len32 = struct.unpack(">BBHIII", data[:16])
        assert (kind, flags, got_seq) == (1, 0, seq)
        assert len16 == len32 == len(data) - 16
        assert abs(now_ms - ts) < 5000
    assert server.ws_requests[0].path == "/xiaozhi/v1/?from=mqtt_gateway"


# --- MQTT + UDP through a real mosquitto ---------------------------------------------------------


class UdpDevice(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)


async def next_mqtt_json(client: aiomqtt.Client) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        message = await anext(aiter(client.messages))
    assert isinstance(message.payload, bytes)
    return json.loads(message.payload)


@pytest.mark.peer
async def test_mqtt_hello_and_one_udp_packet_each_way(mosquitto: MosquittoBroker) -> None:
    info = MqttBrokerInfo(host=mosquitto.host, port=mosquitto.port, signature_key="Abcdefgh9", keepalive=60)
    server = XiaozhiTestServer(mqtt=info, utterance_frames=1, tts_frames=3, mcp=False, **FAST)
    async with server:
        _, answer = await post(server.ota_url, OTA_BODY)
        creds = answer["mqtt"]
        assert creds["endpoint"] == f"{mosquitto.host}:{mosquitto.port}"
        assert creds["keepalive"] == 60
        assert creds["client_id"] == f"GID_test@@@11_22_33_44_55_66@@@{CLIENT_ID}"
        assert json.loads(base64.b64decode(creds["username"])) == {"ip": "127.0.0.1"}
        signed = hmac.new(b"Abcdefgh9", f"{creds['client_id']}|{creds['username']}".encode(), hashlib.sha256)
        assert creds["password"] == base64.b64encode(signed.digest()).decode()
        assert (creds["publish_topic"], creds["subscribe_topic"]) == ("device-server", "devices/p2p/11_22_33_44_55_66")

        async with aiomqtt.Client(
            mosquitto.host, mosquitto.port, identifier=creds["client_id"],
            username=creds["username"], password=creds["password"],
        ) as client:  # fmt: skip
            await client.subscribe(creds["subscribe_topic"])
            stale = {"session_id": "stale", "type": "listen", "state": "start", "mode": "auto"}
            await client.publish("device-server", json.dumps(stale))
            assert await next_mqtt_json(client) == {"type": "goodbye", "session_id": "stale"}

            hello = {"type": "hello", "version": 3, "transport": "udp", "features": {"mcp": True},
                     "audio_params": AUDIO_PARAMS}  # fmt: skip
            await client.publish("device-server", json.dumps(hello))
            reply = await next_mqtt_json(client)
            sid, udp = reply["session_id"], reply["udp"]
            assert (reply["type"], reply["version"], reply["transport"]) == ("hello", 3, "udp")
            assert reply["audio_params"] == AUDIO_PARAMS
            assert (udp["server"], udp["port"], udp["encryption"]) == ("127.0.0.1", server.udp_port, "aes-128-ctr")
            key, nonce = bytes.fromhex(udp["key"]), bytes.fromhex(udp["nonce"])
            assert len(key) == 16
            assert nonce[:4] + nonce[8:] == b"\x01\x00\x00\x00" + bytes(8)
            ssrc = int.from_bytes(nonce[4:8], "big")
            assert ssrc == server.udp_connection_id

            transport, udp_dev = await asyncio.get_running_loop().create_datagram_endpoint(
                UdpDevice, remote_addr=(udp["server"], udp["port"])
            )
            try:
                await client.publish("device-server", json.dumps({**stale, "session_id": sid}))
                await asyncio.wait_for(server.listen_start.wait(), WAIT)
                opus = uplink_frames(1)[0]
                header = struct.pack(">BBHIII", 1, 0, len(opus), ssrc, 0, 1)
                transport.sendto(header + wire.aes_ctr(key, header, opus))
                datagram = await asyncio.wait_for(udp_dev.received.get(), WAIT)
            finally:
                transport.close()
            assert [f.opus for f in server.uplink_frames] == [opus]

            kind, _flags, length, got_ssrc, _ts, seq = struct.unpack(">BBHIII", datagram[:16])
            assert (kind, got_ssrc, seq, len(datagram)) == (1, ssrc, 1, 16 + length)
            OpusFrameDecoder(rate=24000).decode(wire.aes_ctr(key, datagram[:16], datagram[16:]))
            messages = [await next_mqtt_json(client) for _ in range(5)]
            assert [(m["type"], m.get("state")) for m in messages] == [
                ("stt", None), ("tts", "start"), ("llm", None), ("tts", "sentence_start"), ("tts", "stop"),
            ]  # fmt: skip

            await client.publish("device-server", json.dumps({"session_id": sid, "type": "goodbye"}))
            assert await next_mqtt_json(client) == {"type": "goodbye", "session_id": sid}
    assert server.goodbye_received.is_set()
    assert server.bad_input == []


@pytest.mark.peer
async def test_mqtt_side_resubscribes_after_broker_restart_and_says_goodbye_when_idle(
    mosquitto: MosquittoBroker,
) -> None:
    info = MqttBrokerInfo(host=mosquitto.host, port=mosquitto.port)
    server = XiaozhiTestServer(mqtt=info, idle_goodbye_seconds=0.2, mcp=False, **FAST)
    async with server:
        await post(server.ota_url, OTA_BODY)
        assert not server.mqtt_lost.is_set()
        await mosquitto.stop()
        await asyncio.wait_for(server.mqtt_lost.wait(), WAIT)
        assert not server.mqtt_ready.is_set()
        await mosquitto.start()
        await asyncio.wait_for(server.mqtt_ready.wait(), WAIT)
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
            await client.subscribe("devices/p2p/11_22_33_44_55_66")
            hello = {"type": "hello", "version": 3, "transport": "udp", "audio_params": AUDIO_PARAMS}
            await client.publish("device-server", json.dumps(hello))
            sid = (await next_mqtt_json(client))["session_id"]
            assert await next_mqtt_json(client) == {"type": "goodbye", "session_id": sid}
    assert server.goodbye_sent.is_set()
    assert server.session_id is None
