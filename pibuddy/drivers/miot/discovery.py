"""Finding miIO devices: the hello packet sent to broadcast (or listed) addresses, every reply a device.

On a real LAN the address is 255.255.255.255 (or the subnet's broadcast); loopback does not deliver
broadcasts, so tests list the devices' addresses instead. The reply's did identifies the device, and the
checksum field carries the token only on a device that has not been provisioned yet.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from pibuddy.drivers.miot.codec import HEADER_SIZE, PORT, Token, hello_request, parse_header
from pibuddy.drivers.miot.errors import MiioProtocolError
from pibuddy.errors import DeviceUnreachable

_LOGGER = logging.getLogger(__name__)
_NO_TOKEN: Final = (b"\xff" * 16, b"\x00" * 16)
_RESEND_SECONDS: Final = 0.5  # hello is sent again after this, in case the first one was lost


@dataclass(frozen=True, slots=True)
class Found:
    """A device that answered hello."""

    ip: str
    did: int
    stamp: int
    token: Token | None = field(default=None, repr=False)


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.found: dict[int, Found] = {}

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) != HEADER_SIZE:
            return  # a reply to someone else's request
        try:
            header = parse_header(data)
        except MiioProtocolError as exc:
            _LOGGER.debug("discovery: ignored a datagram from %s: %s", addr[0], exc)
            return
        token = None if header.checksum in _NO_TOKEN else Token(header.checksum)
        self.found.setdefault(header.did, Found(addr[0], header.did, header.stamp, token))

    def error_received(self, exc: Exception) -> None:
        _LOGGER.debug("discovery: %s", exc)


async def discover(addresses: Sequence[str], *, port: int = PORT, duration: float = 2.0) -> list[Found]:
    """Send hello to each address (repeated every half second) and return who answered within `duration`."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setblocking(False)
    try:
        sock.bind(("0.0.0.0", 0))
        transport, collector = await loop.create_datagram_endpoint(_Collector, sock=sock)
    except OSError as exc:
        sock.close()
        raise DeviceUnreachable(f"cannot open a socket for discovery ({exc.strerror or exc})") from None
    deadline = loop.time() + duration
    try:
        while True:
            for address in addresses:
                try:
                    transport.sendto(hello_request(), (address, port))
                except OSError as exc:  # e.g. no route for a broadcast address on this host
                    _LOGGER.warning("discovery: cannot send to %s: %s", address, exc.strerror or exc)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(_RESEND_SECONDS, remaining))
    finally:
        transport.close()
    return sorted(collector.found.values(), key=lambda f: (f.ip, f.did))
