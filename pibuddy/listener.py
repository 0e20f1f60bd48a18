"""Bounded TCP listeners: every server socket PiBuddy opens to the LAN accepts through `BoundedListener`.

asyncio's own accept loop takes every connection a neighbour opens, and once the process is out of file
descriptors CPython 3.11 logs a traceback per queued connection and re-arms per queued connection (about
300 000 lines in 40 s were seen). Here:
- at most `max_per_address` connections are open at once from one source address, and at most
  `max_connections` in all; a connection over the per-address cap is closed as soon as it is accepted; at
  the global cap, the oldest `waiting` connection (guarded, nothing in progress) of the address with the
  most connections is closed to make room, else the new one is; every refusal is counted and logged once per interval;
- EMFILE/ENFILE/ENOBUFS/ENOMEM pause accepting for a delay that grows from 50 ms to 2 s (reset by the next
  successful accept), with one log line per interval;
- each connection's protocol may be wrapped by a `ConnectionGuard` (the HTTP deadlines of `httpserve`).

`raise_open_file_limit()` lifts the soft RLIMIT_NOFILE to the hard limit at start (systemd's default soft
limit is 1 024; the unit also sets LimitNOFILE=).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import resource
import socket
from collections.abc import Callable
from typing import Final, Protocol

from pibuddy.drops import DropCounter

_LOGGER = logging.getLogger(__name__)
_OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPTS_PER_WAKEUP: Final = 64
_BACKLOG: Final = 128
_PAUSE_FIRST_SECONDS: Final = 0.05
_PAUSE_MAX_SECONDS: Final = 2.0

ProtocolFactory = Callable[[], asyncio.Protocol]


class ConnectionGuard(Protocol):
    """Wraps one accepted connection's protocol (e.g. to enforce deadlines). The wrapper may have a `waiting`
    attribute: True while nothing is in progress, so the connection may be closed to make room."""

    def __call__(self, inner: asyncio.Protocol) -> asyncio.Protocol: ...


class _Tracked(asyncio.Protocol):
    """Forwards everything to `inner`; gives the listener its slot back when the connection ends."""

    def __init__(self, inner: asyncio.Protocol, release: Callable[[], None]) -> None:
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.release()
        self.inner.connection_lost(exc)


class BoundedListener:
    """A TCP server socket that accepts by itself, within connection caps.

    Args:
        name: what it serves, for log lines ("local OTA", "MQTT").
        protocol_factory: makes the protocol of each accepted connection.
        max_connections: most connections open at once.
        max_per_address: most connections open at once from one source IP address (None: no such cap).
        guard: wraps each connection's protocol (None: the protocol serves the connection directly).
    """

    def __init__(self, name: str, protocol_factory: ProtocolFactory, *, max_connections: int,
                 max_per_address: int | None = None, guard: ConnectionGuard | None = None) -> None:
        self.name = name
        self._factory = protocol_factory
        self._max = max_connections
        self._max_per_address = max_per_address
        self._guard = guard
        self._sockets: list[socket.socket] = []
        self._open: dict[_Tracked, str] = {}
        """Open connections, oldest first, with their source address."""
        self._per_address: collections.Counter[str] = collections.Counter()
        self._pending: set[asyncio.Task[None]] = set()
        self._pause = 0.0
        self.refused = DropCounter(f"{name} connections", _LOGGER)
        """Connections closed at accept (over a cap) and accept pauses (out of descriptors), by reason."""

    @property
    def port(self) -> int:
        assert self._sockets, "not started"
        return int(self._sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def start(self, host: str, port: int) -> None:
        """Listen on every address `host` resolves to ("" or "0.0.0.0": all IPv4 interfaces)."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address[0], port, *address[2:]))
                port = sock.getsockname()[1]  # port 0: a name's other addresses take the port the first got
                sock.listen(_BACKLOG)
                sock.setblocking(False)
        except BaseException:
            self._close_sockets()
            raise
        for sock in self._sockets:
            loop.add_reader(sock.fileno(), self._readable, sock)

    def close(self) -> None:
        """Stop accepting; open connections stay (their owner shuts them down gracefully)."""
        self._close_sockets()

    async def stop(self) -> None:
        """Stop accepting, then abort the connections still open."""
        self._close_sockets()
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        for tracked in list(self._open):
            if tracked.transport is not None:
                tracked.transport.abort()

    def _close_sockets(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            if sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
                sock.close()
        self._sockets = []

    def _readable(self, sock: socket.socket) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):  # bounded: the loop's other work must not starve
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._pause_accepting(sock, exc)
                else:
                    self.refused.count(f"accept failed: {exc.strerror}")
                return
            self._pause = 0.0
            self._admit(conn, str(address[0]))

    def _pause_accepting(self, sock: socket.socket, exc: OSError) -> None:
        """Out of descriptors: stop watching the socket for a while (Linux keeps reporting it readable)."""
        loop = asyncio.get_running_loop()
        self._pause = min(_PAUSE_MAX_SECONDS, max(_PAUSE_FIRST_SECONDS, self._pause * 2))
        self.refused.count(f"{errno.errorcode.get(exc.errno or 0, 'error')}, accepting paused")
        loop.remove_reader(sock.fileno())

        def resume() -> None:
            if sock in self._sockets:
                loop.add_reader(sock.fileno(), self._readable, sock)

        loop.call_later(self._pause, resume)

    def _admit(self, conn: socket.socket, ip: str) -> None:
        if self._max_per_address is not None and self._per_address[ip] >= self._max_per_address:
            conn.close()
            self.refused.count(f"over the cap of {self._max_per_address} connections from one address")
            return
        if len(self._open) >= self._max and not self._evict_oldest_waiting():
            conn.close()
            self.refused.count(f"over the cap of {self._max} open connections")
            return
        conn.setblocking(False)
        inner = self._factory()
        tracked = _Tracked(self._guard(inner) if self._guard is not None else inner, lambda: self._release(tracked, ip))
        self._open[tracked] = ip
        self._per_address[ip] += 1
        task = asyncio.get_running_loop().create_task(self._connect(conn, tracked))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _evict_oldest_waiting(self) -> bool:
        """Close the oldest waiting connection of the address with the most open (a flood displaces itself)."""
        waiting = [(tracked, ip) for tracked, ip in self._open.items()
                   if tracked.transport is not None and getattr(tracked.inner, "waiting", False)]
        if not waiting:
            return False
        crowded = max({ip for _, ip in waiting}, key=lambda ip: self._per_address[ip])
        tracked = next(t for t, ip in waiting if ip == crowded)
        assert tracked.transport is not None
        tracked.transport.abort()
        tracked.release()
        self.refused.count(f"oldest idle connection of the most crowded address closed at the cap of {self._max}")
        return True

    async def _connect(self, conn: socket.socket, tracked: _Tracked) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: tracked, conn)
        except OSError:
            tracked.release()
            conn.close()
        except asyncio.CancelledError:
            tracked.release()
            conn.close()
            raise

    def _release(self, tracked: _Tracked, ip: str) -> None:
        self._open.pop(tracked, None)
        self._per_address[ip] -= 1
        if self._per_address[ip] <= 0:
            del self._per_address[ip]


def raise_open_file_limit() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
