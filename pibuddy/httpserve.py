"""The one HTTP serving policy of every HTTP listener (the local OTA, the management API, MCP HTTP).

Each connection may be open at most `idle_seconds` before a request starts (and between requests); a
request's header must be complete `header_seconds` after its first byte; its answer must start
`response_seconds` after its header ended (that covers the body upload and the handler). A connection that
misses a deadline is aborted, counted by reason and logged once per interval. The connection caps of
`BoundedListener` apply on top (at the global cap, the oldest connection waiting for a request gives way).
Header and body sizes are capped by each framework (aiohttp's 8 190-byte field limit and
`client_max_size`, h11's incomplete-event limit).

The deadlines follow bytes, not the framework: the end of a header is its first CRLFCRLF, and an answer has
started when the server writes any byte. Pipelined requests are not special-cased (no PiBuddy client
pipelines): a second request already read counts as started only when its own bytes arrive.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from pibuddy.drops import DropCounter
from pibuddy.listener import BoundedListener, ProtocolFactory

_LOGGER = logging.getLogger(__name__)
_HEADER_END: Final = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """Limits for one HTTP listener."""

    max_connections: int = 64
    """Open connections at once: four HTTP listeners (local OTA, management API, MCP HTTP, household page:
    4 × 64) plus MQTT at its defaults (200 devices, 64 handshakes) make 520, well under 1 024 descriptors."""
    max_per_address: int = 8
    """Open connections at once from one source address."""
    idle_seconds: float = 15.0
    """Open (or between requests) without sending the first byte of a request."""
    header_seconds: float = 10.0
    """From a request's first byte to the end of its header."""
    response_seconds: float = 60.0
    """From the end of a request's header to the first byte of its answer (body upload and handler)."""


HTTP_POLICY: Final = HttpPolicy()


class _Phase(Enum):
    IDLE = "open without a request for"
    HEADER = "request header incomplete after"
    REQUEST = "no answer within"


class _WatchedTransport:
    """The real transport, telling the deadlines when the server writes."""

    def __init__(self, transport: asyncio.Transport, on_write: Any) -> None:
        self._transport = transport
        self._on_write = on_write

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._on_write()
        self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self._on_write()
        self._transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Deadlines(asyncio.Protocol):
    """Wraps one HTTP connection's protocol; aborts the connection when it misses a deadline."""

    def __init__(self, inner: asyncio.Protocol, policy: HttpPolicy, timeouts: DropCounter) -> None:
        self._inner = inner
        self._policy = policy
        self._timeouts = timeouts
        self._transport: asyncio.Transport | None = None
        self._phase = _Phase.IDLE
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""

    @property
    def waiting(self) -> bool:
        return self._phase is _Phase.IDLE

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._enter(_Phase.IDLE)
        self._inner.connection_made(_WatchedTransport(self._transport, self._answered))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self._phase is _Phase.IDLE:
            self._enter(_Phase.HEADER)
        if self._phase is _Phase.HEADER:
            seen = self._tail + data
            if _HEADER_END in seen:
                self._enter(_Phase.REQUEST)
            else:
                self._tail = seen[-(len(_HEADER_END) - 1):]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._inner.connection_lost(exc)

    def _answered(self) -> None:
        self._enter(_Phase.IDLE)

    def _enter(self, phase: _Phase) -> None:
        self._phase, self._tail = phase, b""
        seconds = {_Phase.IDLE: self._policy.idle_seconds, _Phase.HEADER: self._policy.header_seconds,
                   _Phase.REQUEST: self._policy.response_seconds}[phase]
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired, phase, seconds)

    def _expired(self, phase: _Phase, seconds: float) -> None:
        self._timeouts.count(f"{phase.value} {seconds:g} s")
        if self._transport is not None:
            self._transport.abort()


def serve_http(name: str, protocol_factory: ProtocolFactory, *, policy: HttpPolicy = HTTP_POLICY) -> BoundedListener:
    """A listener (not started yet) that serves `protocol_factory`'s HTTP within `policy`."""
    timeouts = DropCounter(f"{name} connections (deadline missed)", _LOGGER)
    return BoundedListener(name, protocol_factory, max_connections=policy.max_connections,
                           max_per_address=policy.max_per_address,
                           guard=lambda inner: _Deadlines(inner, policy, timeouts))
