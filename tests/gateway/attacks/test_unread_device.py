"""Chat server -> device: a device that never reads its MQTT socket (relay policy in `bridge.py`).

A device that stops reading makes the gateway's output to it pile up; past `MAX_UNSENT` the gateway
disconnects it, and the socket and the memory must be freed at once (a close that waits to flush to a
peer that reads nothing would hold both for as long as the peer likes). Other devices never notice.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
from collections.abc import AsyncIterator

import pytest

from pibuddy.gateway.mqtt_server import MAX_UNSENT, DeviceConnection
from pibuddy.gateway.service import GatewayService
from tests.gateway.attacks.helpers import ATTACKER, bounded_log, signed
from tests.gateway.conftest import GatewayFactory, connect_device, gateway_url
from tests.gateway.test_bad_input import FRAME, uplink_arrives
from tests.peers.firmware_device import PUBLISH_TOPIC, connect_packet, hello_message, publish_packet
from tests.peers.xiaozhi_server import XiaozhiTestServer
from tests.polling import eventually

MESSAGE = json.dumps({"type": "tts", "state": "sentence_start", "text": "x" * 4000})
MAX_MESSAGES = 4000  # 16 MB: far over the cap and the kernel's socket buffers, bounded in time
MAC = "02:00:00:00:03:01"


@pytest.fixture
async def second_upstream() -> AsyncIterator[XiaozhiTestServer]:
    async with XiaozhiTestServer(tts_frames=4, tts_frame_interval=0.01, mcp_list_delay=0.0) as server:
        yield server


async def _device_that_never_reads(gateway: GatewayService, *, keepalive: int = 240) -> socket.socket:
    """CONNECT and hello from `ATTACKER`, then not one more byte read (a small receive buffer: the
    kernel absorbs little of what the gateway sends)."""
    assert gateway.mqtt is not None
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((ATTACKER, 0))
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", gateway.mqtt.port))
    mqtt = signed(MAC)
    await loop.sock_sendall(sock, connect_packet(mqtt["client_id"], mqtt["username"], mqtt["password"],
                                                     keepalive=keepalive))
    connack = b""
    async with asyncio.timeout(2):
        while len(connack) < 4:
            connack += await loop.sock_recv(sock, 4 - len(connack))
    assert connack[3] == 0
    await loop.sock_sendall(sock, publish_packet(PUBLISH_TOPIC, json.dumps(hello_message()).encode()))
    return sock


async def _ends_within(sock: socket.socket, seconds: float) -> bool:
    """True if the gateway's side of `sock` is gone (EOF or reset) within `seconds`; reads what is left."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(seconds):
            while await loop.sock_recv(sock, 1 << 20):
                pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


async def test_a_device_that_never_reads_is_disconnected_at_the_unread_cap(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer, second_upstream: XiaozhiTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = await start_gateway([gateway_url(upstream), gateway_url(second_upstream)])
    assert gateway.mqtt is not None
    sock = await _device_that_never_reads(gateway)
    try:
        client_id = signed(MAC)["client_id"]
        await eventually(lambda: upstream.conversation is not None, 5)  # its session is on the first server
        connection = gateway.mqtt.connections[client_id]
        other = await connect_device(gateway, 2)
        await other.hello()  # the first server has a session: the other device's goes to the second
        assert second_upstream.conversation is not None
        most_unsent = sent = 0
        with bounded_log(caplog):
            while sent < MAX_MESSAGES and not connection.closed:
                await upstream.send_raw_text(MESSAGE)
                sent += 1
                most_unsent = max(most_unsent, connection.unsent)
                if sent % 100 == 0:  # the other device, meanwhile: its messages and audio both ways
                    await second_upstream.send_json({"type": "tts", "state": "sentence_start", "text": f"{sent}"})
                    assert (await other.next_message(2, of_type="tts"))["text"] == f"{sent}"
                    before = len(second_upstream.uplink_frames)
                    other.send_audio(FRAME)
                    await uplink_arrives(second_upstream, before)
            assert connection.closed, f"still connected after {sent} messages ({sent * len(MESSAGE)} bytes)"
            # Its descriptor and buffer are freed now, not once the device reads (it never will).
            await eventually(lambda: gateway.mqtt is not None and gateway.mqtt.open_sockets == 1, 3)
            assert await _ends_within(sock, 2.0)
            await eventually(lambda: upstream.conversation is None, 5)  # its chat-server session ended too
        unread = connection.messages_out * len(MESSAGE)
        assert unread > MAX_UNSENT  # not cut off before the documented limit
        assert most_unsent <= MAX_UNSENT + len(MESSAGE) + 64
        assert client_id not in gateway.sessions
        loud = [r.getMessage() for r in caplog.records if "not reading its MQTT messages" in r.getMessage()]
        assert len(loud) == 1
        # The other device carries on.
        await second_upstream.send_json({"type": "tts", "state": "sentence_start", "text": "after"})
        assert (await other.next_message(2, of_type="tts"))["text"] == "after"
        await other.close()
    finally:
        sock.close()


def _caught_up(connection: DeviceConnection, messages: int) -> bool:
    """The gateway has written `messages` to the device, or has some left in its buffer."""
    return connection.messages_out >= messages or connection.unsent > 0


async def test_a_device_replaced_with_output_unread_frees_its_old_socket(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer,
) -> None:
    gateway = await start_gateway([gateway_url(upstream)])
    assert gateway.mqtt is not None
    old = await _device_that_never_reads(gateway)
    try:
        await eventually(lambda: upstream.conversation is not None, 5)
        connection = gateway.mqtt.connections[signed(MAC)["client_id"]]
        sent, before = 0, connection.messages_out
        while connection.unsent == 0 and sent < MAX_MESSAGES:  # until the kernel's buffers are full
            for _ in range(10):
                await upstream.send_raw_text(MESSAGE)
            sent += 10
            await eventually(functools.partial(_caught_up, connection, before + sent))
        assert 0 < connection.unsent <= MAX_UNSENT  # under the cap: the device is not disconnected for it
        # The same device reconnects from its address: the old connection is closed, and what it never read
        # does not hold its socket open (asyncio's close waits for a flush that would never come).
        new = await _device_that_never_reads(gateway)
        try:
            assert connection.closed
            await eventually(lambda: gateway.mqtt is not None and gateway.mqtt.open_sockets == 1, 3)
        finally:
            new.close()
    finally:
        old.close()
