"""A WebSocket client connection run on websockets' sans-I/O protocol, synchronous on the event loop.

Why not an async client library: the relay's hot path is one frame in, one packet out, per packet. Here a
received frame is handed to its callback straight from `data_received`, and a frame to send is serialized
and written at once from the UDP callback; no task wakes per packet. websockets' `ClientProtocol` does the
RFC 6455 work (handshake, masking, pings, close handshake, size limits); this class only moves bytes.

Once the connection is open, incoming bytes are cut at frame boundaries. A plain binary frame (FIN, no
reserved bits, unmasked, within `max_size`, no fragmented message pending: one websockets would deliver
as is) goes straight to `on_binary`; every other frame is fed to websockets whole, so its parser always
sits at a frame boundary and keeps doing the checks, pongs and closing. Running every audio frame through
websockets' generator-based parser cost 4-7 ms of CPU per 1000 relayed packets at 100 devices
(bench/RESULTS.md, 2026-12-06).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import struct
from collections.abc import Callable
from typing import Final, cast

from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState, InvalidURI
from websockets.frames import Frame, Opcode, apply_mask
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import WebSocketURI, parse_uri

from pibuddy.errors import ConnectionLost

_LOGGER = logging.getLogger(__name__)
_CLOSE_TIMEOUT_SECONDS: Final = 2.0
MAX_WRITE_BUFFER: Final = 256 * 1024
"""Beyond this much unsent output (a stalled server), audio frames are dropped rather than queued."""
_MASK_POOL_BYTES: Final = 4096
_HEADER_16: Final = struct.Struct("!BBH")
_HEADER_64: Final = struct.Struct("!BBQ")
_PLAIN_BINARY: Final = 0x82
"""First header byte of an unfragmented binary frame without reserved bits."""
_HEADERS_END: Final = b"\r\n\r\n"


class _MaskPool:
    """Frame masks from the OS's CSPRNG, fetched 4 KiB at a time rather than with one syscall per frame."""

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0

    def take(self) -> bytes:
        if self._next >= len(self._pool):
            self._pool, self._next = os.urandom(_MASK_POOL_BYTES), 0
        mask = self._pool[self._next : self._next + 4]
        self._next += 4
        return mask


class WsConnectFailed(ConnectionLost):
    """The TCP connection or the WebSocket handshake failed."""


class WsClient(asyncio.Protocol):
    """One client connection. Build it with `await WsClient.connect(...)`.

    Args:
        uri: the server.
        on_text: gets each text message (str).
        on_binary: gets each binary message (bytes).
        max_size: largest message accepted, in bytes.
        split_frames: deliver plain binary frames without websockets' parser (off: websockets parses every
            frame, the reference the fast path is tested against).
    """

    def __init__(self, uri: WebSocketURI, *, on_text: Callable[[str], None], on_binary: Callable[[bytes], None],
                 max_size: int, split_frames: bool = True) -> None:
        self.on_text = on_text
        self.on_binary = on_binary
        self._max_size = max_size
        self._split_frames = split_frames
        self._protocol = ClientProtocol(uri, max_size=max_size)
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = asyncio.Event()
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._writing_paused = False
        self._masks = _MaskPool()
        self._head_seen: bytes | None = b""
        """The handshake response's last bytes, to find its end across reads; None once found."""
        self._splitting = False
        """Open, and websockets has been fed whole frames only: plain binary frames may skip it."""
        self._partial = b""
        """An incomplete frame header, kept until the next read."""
        self._owed = 0
        """Bytes of a frame websockets has started that it must get before frames are split again."""

    @classmethod
    async def connect(cls, url: str, headers: dict[str, str], *, on_text: Callable[[str], None],
                      on_binary: Callable[[bytes], None], max_size: int) -> WsClient:
        """Open TCP (TLS for wss), do the handshake with extra `headers`; raises `WsConnectFailed`."""
        try:
            uri = parse_uri(url)
        except InvalidURI as exc:
            raise WsConnectFailed(f"not a WebSocket URL: {exc}") from None
        client = cls(uri, on_text=on_text, on_binary=on_binary, max_size=max_size)
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: client, uri.host, uri.port,
                                         ssl=ssl.create_default_context() if uri.secure else None)
        except BaseException as exc:
            # Nobody will wait for the handshake: a late connection_lost must not leave an unretrieved error.
            client._handshake.cancel()
            if isinstance(exc, OSError):
                raise WsConnectFailed(f"cannot connect: {exc.strerror or exc}") from None
            raise
        client.start_handshake(headers)
        try:
            await client.wait_open()
        except BaseException:
            client.abort()
            raise
        return client

    def start_handshake(self, headers: dict[str, str]) -> None:
        """Send the opening request with extra `headers`, once connected (`connect` then awaits the answer)."""
        request = self._protocol.connect()
        request.headers.update(Headers(headers))
        self._protocol.send_request(request)
        self._flush()

    def send_text(self, text: str) -> bool:
        """Send one text message now; False when the connection is not open."""
        try:
            self._protocol.send_text(text.encode("utf-8"))
        except InvalidState:
            return False
        self._flush()
        return True

    def send_binary(self, data: bytes) -> bool:
        """Send one binary message now; False (dropped) when closing or when the server stopped reading.

        The hot path: the frame is built here (RFC 6455 §5.2, masked, unfragmented), as websockets would
        build it, minus its per-frame object and `getrandom` call. The protocol object keeps no state for
        outgoing data frames, so writing them past it is safe while it is OPEN (control frames still go
        through it).
        """
        transport, protocol = self._transport, self._protocol
        if transport is None or self._writing_paused or protocol.state is not State.OPEN:
            return False
        size = len(data)
        if size < 126:
            header = bytes((0x82, 0x80 | size))
        elif size < 65536:
            header = _HEADER_16.pack(0x82, 0xFE, size)
        else:
            header = _HEADER_64.pack(0x82, 0xFF, size)
        mask = self._masks.take()
        transport.write(header + mask + apply_mask(data, mask))
        return True

    @property
    def unsent(self) -> int:
        """Bytes written but not yet taken by the kernel: it grows while the server is not reading."""
        return self._transport.get_write_buffer_size() if self._transport is not None else 0

    def close(self) -> None:
        """Start the closing handshake; the TCP connection goes after the server answers, or a timeout."""
        protocol = self._protocol
        if protocol.state is State.OPEN:
            protocol.send_close(1000)
            self._flush()
            self._expect_close()
        elif not self._closed.is_set():
            self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def wait_open(self) -> None:
        """Until the server accepted the handshake; raises `WsConnectFailed` when it refused or went away."""
        await self._handshake

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # a TCP connection's transport
        self._transport.set_write_buffer_limits(high=MAX_WRITE_BUFFER)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False

    def data_received(self, data: bytes) -> None:
        if self._owed:
            rest = data[: self._owed]
            self._owed -= len(rest)
            self._receive(rest)
            data = data[len(rest) :]
        if self._splitting:
            self._split(self._partial + data if self._partial else data)
        elif self._head_seen is not None:
            self._receive_head(data)
        elif data:
            self._receive(data)

    def eof_received(self) -> bool | None:
        if self._partial:  # websockets reports the truncated frame itself
            self._receive(self._partial)
            self._partial = b""
        self._protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        if not self._handshake.done():
            self._handshake.set_exception(WsConnectFailed(f"connection closed during the handshake ({exc})"))
        self._closed.set()

    # --- internals ---------------------------------------------------------------------------------

    def _receive_head(self, data: bytes) -> None:
        """Until the handshake response has ended: websockets gets it, and no byte after it, in one piece."""
        assert self._head_seen is not None
        seen = self._head_seen + data
        end = seen.find(_HEADERS_END)
        if end < 0:
            self._head_seen = seen[-3:]
            self._receive(data)
            return
        self._head_seen = None
        cut = end + len(_HEADERS_END) - (len(seen) - len(data))
        self._receive(data[:cut])
        protocol = self._protocol
        self._splitting = self._split_frames and protocol.state is State.OPEN and not protocol.extensions
        if self._splitting:
            self._split(data[cut:])
        elif cut < len(data):
            self._receive(data[cut:])

    def _split(self, data: bytes) -> None:
        """Deliver plain binary frames from `data` directly; hand every other frame to websockets whole."""
        protocol = self._protocol
        start, end = 0, len(data)
        self._partial = b""
        while start < end:
            if protocol.state is not State.OPEN:  # closing: websockets takes everything from here on
                self._splitting = False
                self._receive(data[start:])
                return
            header = _frame_header(data, start)
            if header is None:
                self._partial = data[start:]
                return
            first, masked, payload, size = header
            frame_end = payload + size
            if (first == _PLAIN_BINARY and not masked and frame_end <= end and size <= self._max_size
                    and self._fragment_opcode is None):
                self.on_binary(data[payload:frame_end])
            else:
                self._owed = max(frame_end - end, 0)
                self._receive(data[start:frame_end])
            start = frame_end

    def _receive(self, data: bytes) -> None:
        protocol = self._protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Response):
                self._handshake_done(event)
        self._flush()
        if protocol.close_expected():
            self._expect_close()

    def _handshake_done(self, response: Response) -> None:
        if self._handshake.done():
            return
        error = self._protocol.handshake_exc
        if error is not None:
            self._handshake.set_exception(WsConnectFailed(f"handshake refused: {error}"))
        else:
            self._handshake.set_result(None)

    def _frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            if frame.fin:
                self._deliver(frame.opcode, bytes(frame.data))
                return
            self._fragment_opcode, self._fragments = frame.opcode, [bytes(frame.data)]
        elif frame.opcode is Opcode.CONT and self._fragment_opcode is not None:
            self._fragments.append(bytes(frame.data))
            if sum(len(part) for part in self._fragments) > self._max_size:
                _LOGGER.warning("WebSocket message over %d bytes; closing", self._max_size)
                self._protocol.fail(1009, "message too big")
                self._fragment_opcode, self._fragments = None, []
                self._expect_close()
                return
            if frame.fin:
                self._deliver(self._fragment_opcode, b"".join(self._fragments))
                self._fragment_opcode, self._fragments = None, []

    def _deliver(self, opcode: Opcode, data: bytes) -> None:
        if opcode is Opcode.BINARY:
            self.on_binary(data)
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            _LOGGER.warning("WebSocket text message is not UTF-8; dropped")
            return
        self.on_text(text)

    def _expect_close(self) -> None:
        """The server should now close TCP; if it does not within the timeout, drop the connection."""
        if self._close_timer is None:
            self._close_timer = asyncio.get_running_loop().call_later(_CLOSE_TIMEOUT_SECONDS, self.abort)

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for chunk in self._protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            else:  # the protocol's signal to half-close
                with contextlib.suppress(OSError, NotImplementedError):
                    transport.write_eof()


def _frame_header(data: bytes, start: int) -> tuple[int, bool, int, int] | None:
    """(first byte, masked, payload offset, payload size) of the frame at `start` (RFC 6455 §5.2), or None
    while its header is incomplete."""
    header_end = start + 2
    if header_end > len(data):
        return None
    second = data[start + 1]
    size = second & 0x7F
    if size >= 126:  # a 16- or 64-bit extended payload length follows
        header_end += 2 if size == 126 else 8
        if header_end > len(data):
            return None
        size = int.from_bytes(data[start + 2 : header_end], "big")
    masked = bool(second & 0x80)  # a server must not mask (websockets fails such a frame)
    return data[start], masked, header_end + 4 if masked else header_end, size
