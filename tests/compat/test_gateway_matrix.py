"""The gateway against each server dialect (with a firmware-like device) and each device dialect (with
xiaozhi-esp32-server's): every cell a whole conversation over real sockets on 127.0.0.1 — hello both ways,
JSON both ways, audio both ways, goodbye."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from pibuddy.gateway.service import GatewayService
from tests.compat.dialects import DEVICE_DIALECTS, SERVER_DIALECTS, DeviceDialect, Ending, ServerDialect
from tests.gateway.conftest import SIGNATURE_KEY, ota_credentials
from tests.peers.firmware_device import FirmwareDevice
from tests.peers.opus_audio import OpusFrameDecoder, encode_tone
from tests.peers.xiaozhi_server import XiaozhiTestServer
from tests.peers.xiaozhi_wire import mqtt_client_id, mqtt_password, mqtt_username
from tests.polling import eventually

_STEP = 5.0
_UTTERANCE = 10  # the test server answers after this many uplink frames
_device_numbers = itertools.count(0x10)


async def _device(gateway: GatewayService, dialect: DeviceDialect) -> FirmwareDevice:
    number = next(_device_numbers)
    mac = f"aa:bb:cc:dd:ee:{number:02x}"
    assert gateway.mqtt is not None
    if dialect.upper_case_mac:  # issued by some other OTA, signed with the gateway's key
        client_id = mqtt_client_id("GID_test", mac.upper(), f"uuid-{number}")
        username = mqtt_username({"ip": "127.0.0.1"})
        password = mqtt_password(SIGNATURE_KEY, client_id, username)
    else:
        mqtt = (await ota_credentials(gateway, mac))["mqtt"]
        client_id, username, password = mqtt["client_id"], mqtt["username"], mqtt["password"]
    device = FirmwareDevice("127.0.0.1", gateway.mqtt.port, client_id=client_id, username=username,
                            password=password, **dialect.settings)
    assert await device.connect() == 0
    return device


async def _converse(device: FirmwareDevice, server: XiaozhiTestServer, gateway: GatewayService,
                    ending: Ending) -> None:
    # Hello both ways: the device's reaches the server, the server's (in its dialect) comes back as a UDP
    # hello the device validates like the firmware's ParseServerHello.
    hello = await device.hello()
    to_server = server.device_messages[0]
    assert to_server["type"] == "hello"
    assert to_server["audio_params"]["frame_duration"] == device.frame_duration
    assert ("session_id" in hello) is server.settings.hello_session_id
    session_id = hello.get("session_id", "")
    assert device.session_id == session_id

    # JSON and audio up: listen start, then an utterance the server must decode frame by frame.
    device.publish({"session_id": session_id, "type": "listen", "state": "start", "mode": "auto"})
    await asyncio.wait_for(server.listen_start.wait(), _STEP)
    uplink = encode_tone(_UTTERANCE, rate=16000, frame_ms=device.frame_duration, freq=300.0)
    for frame in uplink:
        device.send_audio(frame)
        await asyncio.sleep(0.005)
    await eventually(lambda: len(server.uplink_frames) == _UTTERANCE)
    assert [f.opus for f in server.uplink_frames] == uplink
    assert all(f.samples == 16 * device.frame_duration for f in server.uplink_frames)

    # JSON and audio down: the reply's messages in order, every frame decodable with this session's key.
    replies = [await device.next_message(_STEP)]
    while replies[-1] != {"type": "tts", "state": "stop", **_stamp(server, session_id)}:
        replies.append(await device.next_message(_STEP))
    kinds = [(m["type"], m.get("state")) for m in replies if m["type"] != "mcp"]
    sentences = server.settings.sentences
    assert kinds == [("stt", None), ("tts", "start"), ("llm", None)] + [("tts", "sentence_start")] * sentences + [
        ("tts", "stop")]
    assert all(m.get("session_id") == (session_id or None) for m in replies if m["type"] != "mcp")
    frames = server.settings.tts_frames * sentences
    decoder = OpusFrameDecoder(rate=24000)
    audio = [await device.next_audio(_STEP) for _ in range(frames)]
    assert [a.sequence for a in audio] == list(range(1, frames + 1))
    assert all(len(decoder.decode(a.opus)) == 2 * 1440 for a in audio)
    if device.answer_mcp:  # the server's MCP client listed the device's tools through the gateway
        await asyncio.wait_for(server.tools_listed.wait(), _STEP)
        assert [t["name"] for t in server.mcp_tools] == ["self.get_device_status"]

    # Goodbye: whoever ends it, the device hears a goodbye it acts on (its own session id, "" if none).
    server.disconnected.clear()
    if ending is Ending.DEVICE:
        device.publish({"session_id": session_id, "type": "goodbye"})
        await asyncio.wait_for(server.disconnected.wait(), _STEP)
    else:
        if ending is Ending.SERVER_GOODBYE:
            await server.send_goodbye()
        await server.close_connection()
    async with asyncio.timeout(_STEP):
        while (await device.next_message(_STEP, of_type="goodbye")).get("session_id") != session_id:
            pass
    await eventually(lambda: gateway.pool.servers[0].active == 0)


def _stamp(server: XiaozhiTestServer, session_id: str) -> dict[str, str]:
    return {"session_id": session_id} if server.settings.hello_session_id else {}


@pytest.mark.parametrize("dialect", SERVER_DIALECTS, ids=lambda d: d.name)
async def test_server_dialect_through_the_gateway(
    gateway: GatewayService, upstream: XiaozhiTestServer, dialect: ServerDialect
) -> None:
    for name, value in dialect.settings.items():
        setattr(upstream.settings, name, value)
    device = await _device(gateway, DEVICE_DIALECTS[0])
    try:
        await _converse(device, upstream, gateway, dialect.ending)
        assert device.udp is not None
        assert device.udp.rejected == []
        assert upstream.bad_input == []
    finally:
        await device.close()


@pytest.mark.parametrize("dialect", DEVICE_DIALECTS, ids=lambda d: d.name)
async def test_device_dialect_through_the_gateway(
    gateway: GatewayService, upstream: XiaozhiTestServer, dialect: DeviceDialect
) -> None:
    device = await _device(gateway, dialect)
    try:
        if dialect.settings.get("subscribe_qos"):  # granted QoS 0: the gateway publishes with QoS 0 only
            await eventually(lambda: (9, bytes([0, 1, 0])) in device.acks)
        await _converse(device, upstream, gateway, Ending.DEVICE)
        assert device.udp is not None
        assert device.udp.rejected == []
        session = gateway.sessions.get(device.client_id)
        if dialect.settings.get("disconnect_on_goodbye"):
            await asyncio.wait_for(device.closed.wait(), _STEP)
            await eventually(lambda: device.client_id not in gateway.sessions)
        else:
            assert session is not None
            assert session.connection.identity.mac == device.client_id.split("@@@")[1].lower().replace("_", ":")
            headers = {k.lower(): v for k, v in upstream.ws_requests[-1].headers.items()}
            assert headers["device-id"] == session.connection.identity.mac  # lower case, colons
    finally:
        await device.close()
