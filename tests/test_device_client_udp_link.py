"""The device's UDP audio socket on 127.0.0.1: a cancelled receive() must not leave a reader behind."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from pibuddy.device_client.udp_link import UdpLink


async def test_a_cancelled_receive_leaves_no_reader_to_swallow_the_next_datagram() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        link = await UdpLink.open(*server.getsockname())
        try:
            link.send(b"hello")  # so the server learns the link's address
            server.settimeout(2)
            _, device = server.recvfrom(64)
            before = asyncio.all_tasks()
            receiving = asyncio.create_task(link.receive())
            await asyncio.sleep(0.01)
            receiving.cancel()  # e.g. the conversation ended while waiting for audio
            with contextlib.suppress(asyncio.CancelledError):
                await receiving
            await asyncio.sleep(0)
            assert asyncio.all_tasks() <= before, "a queue reader outlived receive()"
            server.sendto(b"frame-1", device)
            async with asyncio.timeout(2):
                assert await link.receive() == b"frame-1"
        finally:
            link.close()
