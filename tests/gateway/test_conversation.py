"""Whole conversations through the gateway: firmware-like devices <-> gateway <-> xiaozhi test server."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from pibuddy.gateway.service import GatewayService
from pibuddy.xiaozhi.session import HELLO_REJECTED_TEXT
from pibuddy.xiaozhi.states import State
from tests.gateway.conftest import DeviceFactory, GatewayFactory, connect_device, gateway_url
from tests.peers.firmware_device import FirmwareDevice
from tests.peers.opus_audio import OpusFrameDecoder, encode_tone
from tests.peers.ports import free_port
from tests.peers.xiaozhi_server import XiaozhiTestServer
from tests.polling import eventually

UPLINK = encode_tone(12, rate=16000, freq=300.0)


async def speak(device: FirmwareDevice, *, first_timestamp: int = 0) -> None:
    """listen start, then one utterance of uplink frames (the test server answers after 10)."""
    device.publish({"session_id": device.session_id, "type": "listen", "state": "start", "mode": "auto"})
    await asyncio.sleep(0.05)  # MQTT and UDP are different sockets: let listen arrive first
    for index, frame in enumerate(UPLINK):
        device.send_audio(frame, timestamp=first_timestamp + index)
        await asyncio.sleep(0.005)


async def reply_audio(device: FirmwareDevice, frames: int) -> list[bytes]:
    """The reply's downlink frames; each must decode as Opus with this device's key."""
    decoder = OpusFrameDecoder(rate=24000)
    audio = [await device.next_audio() for _ in range(frames)]
    assert [a.sequence for a in audio] == list(range(1, frames + 1))
    assert all(abs(a.timestamp - int(time.time() * 1000) % 2**32) < 60_000 for a in audio)  # server wall clock
    return [decoder.decode(a.opus) for a in audio]


async def test_full_conversation(device_factory: DeviceFactory, upstream: XiaozhiTestServer,
                                 gateway: GatewayService) -> None:
    device = await device_factory(1)
    hello = await device.hello(text_font={"bundle": "noto-v1", "size": 20})
    assert hello["version"] == 3
    assert hello["udp"]["server"] == "127.0.0.1"
    assert gateway.relay is not None
    assert hello["udp"]["port"] == gateway.relay.port
    assert hello["udp"]["encryption"] == "aes-128-ctr"
    connection_id = gateway.sessions[device.client_id].connection.connection_id
    assert hello["udp"]["nonce"] == f"01000000{connection_id:08x}0000000000000000"
    assert hello["audio_params"]["sample_rate"] == 16000  # copied from the server's hello

    handshake = upstream.ws_requests[-1]
    assert handshake.path.endswith("/xiaozhi/v1/?from=mqtt_gateway")
    headers = {k.lower(): v for k, v in handshake.headers.items()}
    assert headers["device-id"] == "aa:bb:cc:dd:ee:01"
    assert headers["client-id"] == "uuid-01"
    assert headers["protocol-version"] == "2"
    assert headers["authorization"] == "Bearer test-token"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    server_hello = upstream.device_messages[0]
    assert server_hello["version"] == 2
    assert server_hello["features"] == {"mcp": True}
    assert server_hello["text_font"] == {"bundle": "noto-v1", "size": 20}  # the server needs it to push glyphs

    await speak(device, first_timestamp=5000)
    assert (await device.next_message(of_type="stt"))["session_id"] == device.session_id
    assert (await device.next_message(of_type="tts"))["state"] == "start"
    pcm = await reply_audio(device, 4)
    assert all(len(frame) == 2 * 24000 * 60 // 1000 for frame in pcm)
    assert (await device.next_message(of_type="tts")) == {"type": "tts", "state": "sentence_start",
                                                          "text": "今天是晴天。", "session_id": device.session_id}
    assert (await device.next_message(of_type="tts"))["state"] == "stop"
    frames = upstream.uplink_frames
    assert [f.timestamp for f in frames] == list(range(5000, 5000 + len(frames)))  # device timestamps kept
    assert [f.opus for f in frames] == UPLINK[: len(frames)]
    assert upstream.bad_input == []

    glyphs = {"v": 1, "bundle": "noto-v1", "size": 20, "bpp": 4,
              "glyphs": [{"codepoint": 26228, "adv_w": 20, "bitmap": "AAEC"}]}
    await upstream.send_json({"type": "stt", "text": "晴", "glyph_push": glyphs, "session_id": device.session_id})
    assert (await device.next_message(of_type="stt"))["glyph_push"] == glyphs  # passed through untouched

    device.publish({"session_id": device.session_id, "type": "goodbye"})
    await asyncio.wait_for(upstream.disconnected.wait(), 2)
    assert (await device.next_message(of_type="goodbye"))["session_id"] == device.session_id


async def test_device_tools_reach_the_server_and_calls_round_trip(
    device_factory: DeviceFactory, upstream: XiaozhiTestServer
) -> None:
    device = await device_factory(1)
    await device.hello()
    await asyncio.wait_for(upstream.tools_listed.wait(), 3)
    assert [t["name"] for t in upstream.mcp_tools] == ["self.get_device_status"]
    result = await upstream.call_tool("self.get_device_status")
    assert result["content"][0]["text"] == '{"audio_speaker":{"volume":70}}'


async def test_several_devices_audio_goes_to_the_right_device_only(device_factory: DeviceFactory) -> None:
    devices = [await device_factory(i) for i in (1, 2, 3)]
    for device in devices:
        await device.hello()
    await speak(devices[0])
    await devices[0].next_message(of_type="tts")
    await reply_audio(devices[0], 4)
    for other in devices[1:]:  # their sessions heard nothing, so nothing may arrive
        with pytest.raises(TimeoutError):
            await other.next_audio(0.3)
        assert other.messages.empty()

    await asyncio.gather(*(speak(d) for d in devices[1:]))
    for device in devices[1:]:
        await reply_audio(device, 4)  # decodes only with this device's own key and sequence
    for device in devices:
        assert device.udp is not None
        assert device.udp.rejected == []


async def test_chat_server_closing_mid_session_says_goodbye_and_serves_on(
    device_factory: DeviceFactory, upstream: XiaozhiTestServer
) -> None:
    upstream.settings.close_after_tts_frames = 2
    device, bystander = await device_factory(1), await device_factory(2)
    await bystander.hello()
    await device.hello()
    session = device.session_id
    await speak(device)
    assert (await device.next_message(of_type="goodbye"))["session_id"] == session
    upstream.settings.close_after_tts_frames = None
    await device.hello()  # the same MQTT connection opens a new session
    assert device.session_id != session
    await speak(bystander)
    await reply_audio(bystander, 4)


@pytest.mark.parametrize(("version", "session_id"), [(False, False), (True, False), (False, True)],
                         ids=["platform (neither)", "no session_id", "no version"])
async def test_server_hello_without_version_or_session_id_is_bridged(
    device_factory: DeviceFactory, upstream: XiaozhiTestServer, version: bool, session_id: bool
) -> None:
    """Seen: 'hello: missing version', then 'no hello in time'; 'server hello without a session_id'."""
    upstream.settings.hello_version, upstream.settings.hello_session_id = version, session_id
    device = await device_factory(1)
    hello = await device.hello()
    assert ("session_id" in hello) is session_id  # as the reference: no id from the server, none to the device
    assert hello["version"] == 3
    await speak(device)
    assert (await device.next_message(of_type="tts"))["state"] == "start"
    await reply_audio(device, 4)
    assert len(upstream.uplink_frames) >= 10
    await upstream.close_connection()
    assert (await device.next_message(of_type="goodbye")) == {"type": "goodbye", "session_id": device.session_id}


async def test_chat_server_down_at_hello_gives_error_then_failover(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer
) -> None:
    dead = f"ws://127.0.0.1:{free_port()}/xiaozhi/v1/?from=mqtt_gateway"
    only_dead = await start_gateway([dead])
    device = await connect_device(only_dead, 1)
    device.publish({"type": "hello", "version": 3, "transport": "udp", "audio_params": {"format": "opus"}})
    assert (await device.next_message(of_type="error"))["message"] == HELLO_REJECTED_TEXT
    assert only_dead.pool.servers[0].failures == 1
    await device.close()

    gateway = await start_gateway([dead, gateway_url(upstream)])
    device = await connect_device(gateway, 2)
    await device.hello()  # the dead server fails, the live one answers within the same hello
    await device.hello()  # now the dead one cools down and is not tried first
    dead_stats, live_stats = gateway.pool.servers
    assert (dead_stats.failures, live_stats.sessions_total) == (1, 2)
    await device.close()


_HELLO = {"type": "hello", "version": 3, "transport": "udp", "audio_params": {"format": "opus"}}
_LOOP_PASSES = 40
"""How many event-loop passes after the chat server's refusal the device's next message is swept over."""


@pytest.mark.parametrize("then", ["goodbye", "hello"])
async def test_a_refused_hello_the_device_ends_or_repeats_meanwhile_gets_one_answer_and_no_traceback(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture, then: str
) -> None:
    """Seen: 'LocalProtocolError: no hello to reject while idle' (a traceback, and no answer to the device)
    when a chat server refused a hello just as the device said goodbye or hello again: asyncio.wait_for on
    3.11 swallowed the cancel that raced with the refusal, and the stale hello was rejected anyway."""
    caplog.set_level(logging.INFO)
    async with XiaozhiTestServer(auth_key="Srv-Secret9") as server:  # refuses our token: says why, closes
        gateway = await start_gateway([gateway_url(server)], server_secret="Wrong-Secret9")
        device = await connect_device(gateway, 1)
        session = gateway.sessions[device.client_id]
        for passes in range(_LOOP_PASSES):
            server.bad_input_seen.clear()
            device.publish(_HELLO)
            await asyncio.wait_for(server.bad_input_seen.wait(), 5)
            for _ in range(passes):
                await asyncio.sleep(0)
            if then == "goodbye":
                device.publish({"type": "goodbye", "session_id": ""})
                await eventually(lambda: session.state is State.IDLE)
            else:  # the repeated hello is refused too: whatever happened to the first, this one is answered
                device.publish(_HELLO)
                assert (await device.next_message(of_type="error"))["message"] == HELLO_REJECTED_TEXT
                await eventually(lambda: session.state is State.IDLE)
        device.publish(_HELLO)  # still served after all that
        assert (await device.next_message(of_type="error"))["message"] == HELLO_REJECTED_TEXT
        await asyncio.sleep(0.3)  # a stale hello's task would fail by now
        await device.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    refusals = [r.getMessage() for r in caplog.records if r.name == "pibuddy.gateway.bridge"]
    assert refusals
    assert all("closed before its hello, saying '认证失败'" in line for line in refusals)


async def test_new_sessions_go_to_the_least_busy_server(start_gateway: GatewayFactory) -> None:
    async with XiaozhiTestServer() as first, XiaozhiTestServer() as second:
        gateway = await start_gateway([gateway_url(first), gateway_url(second)])
        devices = [await connect_device(gateway, i) for i in range(1, 5)]
        for device in devices:
            await device.hello()
        assert [u.active for u in gateway.pool.servers] == [2, 2]
        for device in devices:
            await device.close()


@pytest.mark.parametrize(("secret", "accepted"), [("Srv-Secret9", True), ("Wrong-Secret9", False)])
async def test_server_secret_signs_the_upstream_handshake(start_gateway: GatewayFactory, secret: str,
                                                          accepted: bool) -> None:
    async with XiaozhiTestServer(auth_key="Srv-Secret9") as server:
        gateway = await start_gateway([gateway_url(server)], server_secret=secret)
        device = await connect_device(gateway, 1)
        if accepted:
            await device.hello()
            token = {k.lower(): v for k, v in server.ws_requests[-1].headers.items()}["authorization"]
            assert token.startswith("Bearer ")
            assert token.rsplit(".", 1)[1].isdigit()  # <HMAC>.<unix seconds>, verified by the server
        else:
            device.publish({"type": "hello", "version": 3, "transport": "udp"})
            assert (await device.next_message(of_type="error"))["message"] == HELLO_REJECTED_TEXT
            assert gateway.pool.servers[0].failures == 1
        await device.close()


async def test_udp_timeout_and_a_second_hello_each_end_the_current_session(
    device_factory: DeviceFactory, upstream: XiaozhiTestServer, gateway: GatewayService
) -> None:
    device = await device_factory(1)
    await device.hello()
    first = device.session_id
    await device.hello()  # a new hello replaces the session: the old WebSocket goes, no goodbye for it
    await asyncio.wait_for(upstream.disconnected.wait(), 2)
    assert device.session_id != first
    assert [u.active for u in gateway.pool.servers] == [1]
    assert device.messages.empty()
    upstream.disconnected.clear()
    device.publish({"session_id": device.session_id, "type": "udp_timeout"})
    await asyncio.wait_for(upstream.disconnected.wait(), 2)
    assert (await device.next_message(of_type="goodbye"))["session_id"] == device.session_id
    await eventually(lambda: gateway.pool.servers[0].active == 0)
