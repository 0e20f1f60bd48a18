"""The UDP audio socket of an MQTT+UDP session: bytes out, bytes in, nothing else.

The socket is connected to the server's advertised address, so the kernel already drops datagrams from any
other source (the firmware's rule: replies must come from exactly that address). Incoming datagrams go into
a bounded queue; when it is full, newly arriving ones are dropped (as the firmware's decode queue does), so
`datagram_received` never blocks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final, cast

from pibuddy.drops import DropCounter
from pibuddy.errors import ConnectionLost

_LOGGER = logging.getLogger(__name__)
_QUEUE_PACKETS: Final = 40  # 2.4 s of 60 ms frames, the firmware's decode queue


class UdpLink(asyncio.DatagramProtocol):
    """One connected UDP socket. Create with `await UdpLink.open(host, port)`."""

    def __init__(self, queue_packets: int = _QUEUE_PACKETS) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_packets)
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = asyncio.Event()
        self._error: Exception | None = None
        self.drops = DropCounter("incoming UDP audio", _LOGGER)

    @classmethod
    async def open(cls, host: str, port: int, *, queue_packets: int = _QUEUE_PACKETS) -> UdpLink:
        loop = asyncio.get_running_loop()
        try:
            _, link = await loop.create_datagram_endpoint(lambda: cls(queue_packets), remote_addr=(host, port))
        except OSError as exc:
            raise ConnectionLost(f"cannot open UDP to {host}:{port}: {exc.strerror or exc}") from exc
        return link

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            self.drops.count()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the server side is gone or not yet listening; not fatal.
        _LOGGER.debug("UDP error from server: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._error = exc
        self._closed.set()

    def send(self, datagram: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionLost("UDP audio channel is closed")
        self._transport.sendto(datagram)

    async def receive(self) -> bytes:
        """The next datagram; raises ConnectionLost once the socket is closed."""
        if self._closed.is_set() and self._queue.empty():
            raise ConnectionLost("UDP audio channel is closed")
        get = asyncio.ensure_future(self._queue.get())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait([get, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when receive() itself is cancelled: no task may outlive it
            closed.cancel()
            if not get.done():
                get.cancel()
        if get.done():
            return get.result()
        raise ConnectionLost("UDP audio channel is closed")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
