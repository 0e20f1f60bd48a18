"""Bad input, each case with the gateway still serving a healthy device afterwards."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from pibuddy.gateway.service import GatewayService
from tests.gateway.conftest import SIGNATURE_KEY, DeviceFactory
from tests.peers.firmware_device import (
    PINGREQ,
    FirmwareDevice,
    connect_packet,
    mqtt_packet,
    publish_packet,
)
from tests.peers.opus_audio import encode_tone
from tests.peers.xiaozhi_server import XiaozhiTestServer
from tests.peers.xiaozhi_wire import mqtt_password, mqtt_username
from tests.polling import eventually

FRAME = encode_tone(1, rate=16000)[0]


async def uplink_arrives(upstream: XiaozhiTestServer, before: int) -> None:
    await eventually(lambda: len(upstream.uplink_frames) > before)


async def still_serving(device: FirmwareDevice, upstream: XiaozhiTestServer) -> None:
    """A full hello and one relayed audio packet for a healthy device."""
    await device.hello()
    before = len(upstream.uplink_frames)
    device.send_audio(FRAME)
    await uplink_arrives(upstream, before)


@pytest.fixture
async def healthy(device_factory: DeviceFactory) -> FirmwareDevice:
    return await device_factory(9)


async def raw_device(gateway: GatewayService, client_id: str, username: str | None = None,
                     password: str | None = None) -> FirmwareDevice:
    assert gateway.mqtt is not None
    return FirmwareDevice("127.0.0.1", gateway.mqtt.port, client_id=client_id, username=username,
                          password=password)


@pytest.mark.parametrize(
    ("client_id", "sign_with", "code"),
    [
        ("GID_x@@@aa_bb_cc_dd_ee_10@@@u-10", "Wrong-Key9", 4),  # wrong signature
        ("GID_x@@@aa_bb_cc_dd_ee_10@@@u-10@@@extra", SIGNATURE_KEY, 2),  # unknown client-id shape
        ("no-separators-at-all", SIGNATURE_KEY, 2),
        ("GID_x@@@aa_bb_cc_dd_ee_10", None, 5),  # legacy 2-part id, not allowed by config
    ],
)
async def test_bad_credentials_get_their_connack_code_and_a_close(
    gateway: GatewayService, healthy: FirmwareDevice, upstream: XiaozhiTestServer,
    client_id: str, sign_with: str | None, code: int,
) -> None:
    username = mqtt_username({"ip": "1.1.1.1"}) if sign_with else None
    password = mqtt_password(sign_with, client_id, username) if sign_with and username else None
    intruder = await raw_device(gateway, client_id, username, password)
    assert await intruder.connect() == code
    await asyncio.wait_for(intruder.closed.wait(), 2)
    assert client_id not in gateway.sessions
    await intruder.close()
    await still_serving(healthy, upstream)


@pytest.mark.parametrize(
    ("packet", "what"),
    [
        (publish_packet("device-server", b'{"type":"listen"}', qos=1), "QoS 1 publish"),
        (publish_packet("device-server", b"x" * 8200), "packet over 8192 bytes"),
        (mqtt_packet(0x30, b"\x00\x40device-server{}"), "truncated field inside a packet"),
        (connect_packet("again", None, None), "second CONNECT"),
        (mqtt_packet(0x62, b"\x00\x01"), "PUBREL"),
    ],
)
async def test_mqtt_protocol_violations_close_only_that_connection(
    device_factory: DeviceFactory, gateway: GatewayService, healthy: FirmwareDevice, upstream: XiaozhiTestServer,
    packet: bytes, what: str,
) -> None:
    offender = await device_factory(1)
    offender.send_raw(packet)
    await asyncio.wait_for(offender.closed.wait(), 2)
    assert offender.client_id not in gateway.sessions, what
    await still_serving(healthy, upstream)


async def test_connection_ending_mid_packet_is_logged_as_truncated(
    device_factory: DeviceFactory, gateway: GatewayService, healthy: FirmwareDevice, upstream: XiaozhiTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    offender = await device_factory(1)
    await eventually(lambda: gateway.sessions[offender.client_id].mcp.discovered)  # its MCP replies are out
    with caplog.at_level(logging.WARNING, logger="pibuddy.gateway.mqtt_server"):
        offender.send_raw(publish_packet("device-server", b'{"type":"hello"}')[:9])
        await asyncio.sleep(0.05)
        await offender.close()
        await eventually(lambda: offender.client_id not in gateway.sessions)
    assert any("truncated" in r.getMessage() for r in caplog.records)
    await still_serving(healthy, upstream)


async def test_first_packet_must_be_connect(gateway: GatewayService, healthy: FirmwareDevice,
                                            upstream: XiaozhiTestServer) -> None:
    assert gateway.mqtt is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.mqtt.port)
    writer.write(PINGREQ)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed without an answer
    writer.close()
    await still_serving(healthy, upstream)


async def test_non_json_and_bad_hellos_are_dropped_and_the_connection_stays(
    device_factory: DeviceFactory, upstream: XiaozhiTestServer, healthy: FirmwareDevice
) -> None:
    device = await device_factory(1)
    device.send_raw(publish_packet("device-server", b"\xff not json {"))
    device.send_raw(publish_packet("device-server", b'["a list"]'))
    device.publish({"type": 7})
    requests_before = len(upstream.ws_requests)
    device.publish({"type": "hello", "version": 1, "transport": "udp"})
    assert (await device.next_message(of_type="error"))["message"] == "hello version must be 3"
    assert len(upstream.ws_requests) == requests_before  # no chat-server session was opened
    device.publish({"session_id": "old", "type": "listen", "state": "start"})
    assert await device.next_message() == {"type": "goodbye", "session_id": "old"}  # no session: goodbye
    assert not device.closed.is_set()
    await still_serving(device, upstream)
    await still_serving(healthy, upstream)


async def test_bad_udp_packets_are_dropped_and_counted(
    device_factory: DeviceFactory, gateway: GatewayService, upstream: XiaozhiTestServer
) -> None:
    device = await device_factory(1)
    await device.hello()
    assert gateway.relay is not None
    drops = gateway.relay.drops
    first = device.send_audio(FRAME)
    await uplink_arrives(upstream, 0)

    second = device.seal(FRAME)
    bad = {
        "shorter than 16 bytes": second[:15],
        "wrong type 0x02": b"\x02" + second[1:],
        "unknown connection id": second[:4] + b"\xde\xad\xbe\xef" + second[8:],
        "header says": second[:-1],  # payload shorter than payload_len
        "replayed or old sequence number": first,
    }
    for datagram in bad.values():
        device.send_datagram(datagram)
    stray = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a second source address, valid packet
    stray.sendto(second, ("127.0.0.1", gateway.relay.port))
    await asyncio.sleep(0.2)
    assert len(upstream.uplink_frames) == 1
    for reason in bad:
        assert any(reason in key for key in drops), (reason, drops)
    assert drops["from a second source address"] == 1
    stray.close()

    device.send_datagram(second + b"trailing")  # trailing bytes are tolerated, as in the reference
    older = device.seal(FRAME, sequence=1)
    device.send_datagram(older)
    await uplink_arrives(upstream, 1)
    await asyncio.sleep(0.1)
    assert len(upstream.uplink_frames) == 2
    assert drops["replayed or old sequence number"] == 2


async def test_garbage_from_the_chat_server_is_dropped(
    device_factory: DeviceFactory, gateway: GatewayService, upstream: XiaozhiTestServer
) -> None:
    device = await device_factory(1)
    await device.hello()
    device.send_audio(FRAME)  # pins the address so downlink can flow
    await uplink_arrives(upstream, 0)
    await upstream.send_raw_text("{not json")
    await upstream.send_raw_text('{"type":"alert","status":1}')
    await upstream.send_raw_binary(b"\x01\x00\x00\x05")  # shorter than the 16-byte header
    await upstream.send_raw_binary(bytes(12) + (50).to_bytes(4, "big") + b"short")  # declares more than it has
    await upstream.send_json({"type": "tts", "state": "start", "session_id": device.session_id})
    # An alert PiBuddy would not take is still relayed as it came, as the reference does: the device judges.
    assert (await device.next_message()) == {"type": "alert", "status": 1}
    assert (await device.next_message())["type"] == "tts"  # the next good message, nothing in between
    assert gateway.relay is not None
    assert sum(n for reason, n in gateway.relay.drops.items() if reason.startswith("server frame")) == 2
    with pytest.raises(TimeoutError):
        await device.next_audio(0.2)
