"""The UDP audio relay (docs/protocol.md §4, §14): one socket for every device, routed by connection id.

Per hello the gateway opens a `UdpRoute` with a fresh key; the route for a connection id replaces the
previous one. Uplink rules, stricter than the Node gateway where §14 is: the datagram must be at least
16 bytes, type 0x01, carry its whole payload (trailing bytes tolerated), name a live connection id, come
from the IP address of the device's MQTT connection and then from the port pinned by the route's first
valid packet, and have a sequence number above the last one and at most `MAX_SEQUENCE_AHEAD` beyond it
(replays, old and far-ahead packets are dropped; gaps are counted and tolerated). Downlink carries the chat server's
timestamp and the route's own sequence (1, 2, ... per hello), and goes out of the same socket, bound to the
advertised address when that is one of ours, so a `connect()`ed firmware socket accepts it.

Nothing here blocks or raises out of the socket callback: a bad packet is counted and logged at most once
per interval.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Final

from pibuddy.drops import DropCounter
from pibuddy.xiaozhi.const import UDP_HEADER_SIZE, Role
from pibuddy.xiaozhi.errors import MalformedPacket
from pibuddy.xiaozhi.udp_codec import ReceiveWindow, SequenceVerdict, udp_to_ws, ws_to_udp

_LOGGER = logging.getLogger(__name__)
RECEIVE_BUFFER_BYTES: Final = 4 * 1024 * 1024
"""~0.8 s of 5 000 packets/s: short stalls of the event loop lose nothing (the Node gateway's default
212 992 bytes overflowed at 300 devices)."""
_SO_RCVBUFFORCE: Final = getattr(socket, "SO_RCVBUFFORCE", 33)
_MAX_READS_PER_WAKEUP: Final = 64
_MAX_DATAGRAM: Final = 65535

Address = tuple[str, int]
UplinkSink = Callable[[bytes], None]
"""Takes one chat-server frame (§8.2 uplink form) built from a device datagram."""


class UdpRoute:
    """One device session's audio path: its key, pinned address and sequence counters.

    Only the IP address of the device's MQTT connection may use the route: the connection id travels in
    clear in the MQTT hello, so without this a neighbour could send the first packet and take the downlink.
    Within that address, the first valid packet pins the port.
    """

    def __init__(self, relay: UdpRelay, connection_id: int, key: bytes, sink: UplinkSink, *, device_ip: str) -> None:
        self.connection_id = connection_id
        self.key = key
        self.device_ip = device_ip.removeprefix("::ffff:")
        self.address: Address | None = None
        """The device's source address, pinned by its first valid packet of this session."""
        self.packets_in = 0
        self.packets_out = 0
        self._relay = relay
        self._sink = sink
        # §14's stricter rule (the firmware's own): a repeated sequence number is a replay and dropped too.
        self._window = ReceiveWindow(Role.DEVICE)
        self._local_sequence = 0

    def from_device(self, datagram: bytes, address: Address) -> None:
        if self.address is not None and address != self.address:
            self._relay.drop("from a second source address")
            return
        if self.address is None and address[0].removeprefix("::ffff:") != self.device_ip:
            self._relay.drop("from another IP address than the device's MQTT connection")
            return
        try:
            packet, frame = udp_to_ws(self.key, datagram)
        except MalformedPacket as exc:
            self._relay.drop(exc.reason)
            return
        verdict = self._window.admit(packet.sequence)
        if verdict.dropped:
            self._relay.drop("replayed or old sequence number" if verdict is SequenceVerdict.STALE
                             else "sequence number far ahead of the window")
            return
        if self.address is None:
            self.address = address
            _LOGGER.debug("UDP route %08x pinned to %s:%d", self.connection_id, *address)
        self.packets_in += 1
        self._sink(frame)

    def to_device(self, ws_frame: bytes) -> None:
        """Relay one chat-server downlink frame; dropped (and counted) before the device's first packet."""
        if self.address is None:
            self._relay.drop("downlink before the device's first uplink packet")
            return
        try:
            datagram = ws_to_udp(self.key, ws_frame, self.connection_id, self._local_sequence + 1)
        except MalformedPacket as exc:
            self._relay.drop(f"server frame: {exc.reason}")
            return
        self._local_sequence += 1
        self.packets_out += 1
        self._relay.send(datagram, self.address)


class UdpRelay:
    """The relay's socket and routing table.

    The socket is read with `loop.add_reader` and drained on each wakeup (asyncio's datagram transport
    reads one datagram per event-loop pass, which under load costs a pass per packet), and written with
    plain non-blocking `sendto`: a full send buffer drops the packet, which is what UDP would do anyway.

    Args:
        bind_host: the configured listen address ("0.0.0.0" for all interfaces).
        port: UDP port (0 picks a free one; see `port`).
        advertised_host: the address devices are told to send to; bound instead of a wildcard when local.
    """

    def __init__(self, *, bind_host: str, port: int, advertised_host: str) -> None:
        self._bind_host, self._port, self._advertised = bind_host, port, advertised_host
        self._sock: socket.socket | None = None
        self.routes: dict[int, UdpRoute] = {}
        self.drops: collections.Counter[str] = collections.Counter()
        self._drop_log = DropCounter("UDP packets", _LOGGER)

    @property
    def port(self) -> int:
        assert self._sock is not None, "not started"
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        self._sock = _bind(self._bind_host, self._port, self._advertised)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._read_ready)

    async def stop(self) -> None:
        self.routes.clear()
        sock, self._sock = self._sock, None
        if sock is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()

    def open_route(self, connection_id: int, key: bytes, sink: UplinkSink, *, device_ip: str) -> UdpRoute:
        """A fresh route for a new hello, for datagrams from `device_ip` only; any previous route of this
        connection id stops receiving."""
        route = UdpRoute(self, connection_id, key, sink, device_ip=device_ip)
        self.routes[connection_id] = route
        return route

    def close_route(self, route: UdpRoute) -> None:
        if self.routes.get(route.connection_id) is route:
            del self.routes[route.connection_id]

    def _read_ready(self) -> None:
        sock = self._sock
        if sock is None:
            return
        receive, routes = sock.recvfrom, self.routes
        for _ in range(_MAX_READS_PER_WAKEUP):  # bounded: the loop's other work must not starve
            try:
                data, address = receive(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port unreachable from a device that went away, and the like
                _LOGGER.debug("UDP receive error: %s", exc)
                continue
            if len(data) < UDP_HEADER_SIZE:
                self.drop(f"shorter than {UDP_HEADER_SIZE} bytes")
                continue
            route = routes.get(int.from_bytes(data[4:8], "big"))
            if route is None:
                self.drop("unknown connection id")
                continue
            route.from_device(data, address)

    def send(self, datagram: bytes, address: Address) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto(datagram, address)
        except (BlockingIOError, InterruptedError):
            self.drop("send buffer full")
        except OSError as exc:
            self.drop(f"send failed ({exc.strerror})")

    def drop(self, reason: str) -> None:
        self.drops[reason] += 1
        self._drop_log.count(reason)


def _bind(bind_host: str, port: int, advertised: str) -> socket.socket:
    """A non-blocking UDP socket with a big receive buffer, on the advertised address if we own it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        _enlarge_receive_buffer(sock)
        if bind_host in ("", "0.0.0.0") and _is_ipv4(advertised):
            try:
                sock.bind((advertised, port))
                return sock
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL:
                    raise
                # The advertised address is not ours (a NAT's public address): replies leave by route.
        sock.bind((bind_host, port))
        return sock
    except BaseException:
        sock.close()
        raise


def _is_ipv4(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv4Address)
    except ValueError:  # a host name: resolving it here would block the loop
        return False


def _enlarge_receive_buffer(sock: socket.socket) -> None:
    for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):  # FORCE passes rmem_max but needs CAP_NET_ADMIN
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER_BYTES)
            break
        except OSError:
            continue
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports twice the request
    if granted < RECEIVE_BUFFER_BYTES:
        _LOGGER.warning("UDP receive buffer is %d bytes, not %d: raise net.core.rmem_max to avoid loss "
                        "under load", granted, RECEIVE_BUFFER_BYTES)
