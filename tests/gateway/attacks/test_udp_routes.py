"""Finding 5: the UDP route could be taken, and one forged sequence number stalled the uplink.

Seen: whoever sent a packet with a session's connection id (in clear in the MQTT hello) before the device
pinned the route to itself and received the downlink; one spoofed packet with sequence 0xFFFFFFF0 from the
device's own address stopped its uplink for the rest of the session.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from pibuddy.gateway.service import GatewayService
from pibuddy.xiaozhi.udp_codec import MAX_SEQUENCE_AHEAD
from tests.gateway.attacks.helpers import ATTACKER, bounded_log
from tests.gateway.conftest import DeviceFactory
from tests.gateway.test_bad_input import FRAME, uplink_arrives
from tests.peers.xiaozhi_server import XiaozhiTestServer


def downlink_frame(opus: bytes, timestamp: int = 7) -> bytes:
    """A chat server's binary frame in the §8.2 downlink form."""
    return bytes(8) + struct.pack(">II", timestamp, len(opus)) + opus


async def test_a_neighbour_cannot_take_the_route_before_the_device(
    gateway: GatewayService, device_factory: DeviceFactory, upstream: XiaozhiTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert gateway.relay is not None
    device = await device_factory(1)
    await device.hello()
    with bounded_log(caplog), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as neighbour:
        neighbour.bind((ATTACKER, 0))
        neighbour.setblocking(False)
        for _ in range(50):  # first, and many: the connection id was read off the MQTT hello
            neighbour.sendto(device.seal(FRAME, sequence=1), ("127.0.0.1", gateway.relay.port))
        await asyncio.sleep(0.1)
        before = len(upstream.uplink_frames)
        device.send_audio(FRAME)
        await uplink_arrives(upstream, before)
        assert len(upstream.uplink_frames) == before + 1  # the neighbour's packets never reached the server
        await upstream.send_raw_binary(downlink_frame(FRAME))
        assert (await device.next_audio()).opus == FRAME
        with pytest.raises(TimeoutError):  # and the downlink never reached the neighbour
            await _recv(neighbour)
    assert gateway.relay.drops["from another IP address than the device's MQTT connection"] == 50


async def _recv(sock: socket.socket) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 2048), 0.3)


async def test_a_forged_far_ahead_sequence_does_not_stall_the_uplink(
    gateway: GatewayService, device_factory: DeviceFactory, upstream: XiaozhiTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert gateway.relay is not None
    device = await device_factory(1)
    await device.hello()
    device.send_audio(FRAME)
    await uplink_arrives(upstream, 0)
    with bounded_log(caplog):
        device.send_datagram(device.seal(FRAME, sequence=0xFFFFFFF0))  # from the device's own address
        device.send_datagram(device.seal(FRAME, sequence=device.local_sequence + MAX_SEQUENCE_AHEAD + 1))
        for _ in range(5):
            before = len(upstream.uplink_frames)
            device.send_audio(FRAME)
            await uplink_arrives(upstream, before)
    assert gateway.relay.drops["sequence number far ahead of the window"] == 2
    # Within the window a gap is only a gap: a device that lost packets goes on.
    device.local_sequence += MAX_SEQUENCE_AHEAD - 1
    before = len(upstream.uplink_frames)
    device.send_audio(FRAME)
    await uplink_arrives(upstream, before)
