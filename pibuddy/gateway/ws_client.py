"""A WebSocket client connection run on websockets' sans-I/O protocol, synchronous on the event loop.

Why not an async client library: the relay's hot path is one frame in, one packet out, per packet. Here a
received frame is handed to its callback straight from `data_received`, and a frame to send is serialized
and written at once from the UDP callback; no task wakes per packet. websockets' `ClientProtocol` does the
RFC 6455 work (handshake, masking, pings, close handshake, size limits); this class only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import struct
from collections.abc import Callable
from typing import Final

from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState, InvalidURI
from websockets.frames import Frame, Opcode, apply_mask
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from pibuddy.errors import ConnectionLost

_LOGGER = logging.getLogger(__name__)
_CLOSE_TIMEOUT_SECONDS: Final = 2.0
_MAX_WRITE_BUFFER: Final = 256 * 1024
"""Beyond this much unsent output (a stalled server), audio frames are dropped rather than queued."""
_MASK_POOL_BYTES: Final = 4096
_HEADER_16: Final = struct.Struct("!BBH")
_HEADER_64: Final = struct.Struct("!BBQ")


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
        on_text: gets each text message (str).
        on_binary: gets each binary message (bytes).
        max_size: largest message accepted, in bytes.
    """

    def __init__(self, *, on_text: Callable[[str], None], on_binary: Callable[[bytes], None],
                 max_size: int) -> None:
        self.on_text = on_text
        self.on_binary = on_binary
        self._max_size = max_size
        self._protocol: ClientProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed = asyncio.Event()
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._writing_paused = False
        self._masks = _MaskPool()

    @classmethod
    async def connect(cls, url: str, headers: dict[str, str], *, on_text: Callable[[str], None],
                      on_binary: Callable[[bytes], None], max_size: int) -> WsClient:
        """Open TCP (TLS for wss), do the handshake with extra `headers`; raises `WsConnectFailed`."""
        try:
            uri = parse_uri(url)
        except InvalidURI as exc:
            raise WsConnectFailed(f"not a WebSocket URL: {exc}") from None
        client = cls(on_text=on_text, on_binary=on_binary, max_size=max_size)
        client._protocol = ClientProtocol(uri, max_size=max_size)
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: client, uri.host, uri.port,
                                         ssl=ssl.create_default_context() if uri.secure else None)
        except OSError as exc:
            raise WsConnectFailed(f"cannot connect: {exc.strerror or exc}") from None
        request = client._protocol.connect()
        request.headers.update(Headers(headers))
        client._protocol.send_request(request)
        client._flush()
        try:
            await client._handshake
        except BaseException:
            client.abort()
            raise
        return client

    def send_text(self, text: str) -> bool:
        """Send one text message now; False when the connection is not open."""
        protocol = self._protocol
        if protocol is None:
            return False
        try:
            protocol.send_text(text.encode("utf-8"))
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
        if transport is None or protocol is None or self._writing_paused or protocol.state is not State.OPEN:
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

    def close(self) -> None:
        """Start the closing handshake; the TCP connection goes after the server answers, or a timeout."""
        protocol = self._protocol
        if protocol is not None and protocol.state is State.OPEN:
            protocol.send_close(1000)
            self._flush()
            self._expect_close()
        elif not self._closed.is_set():
            self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._transport.set_write_buffer_limits(high=_MAX_WRITE_BUFFER)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False

    def data_received(self, data: bytes) -> None:
        protocol = self._protocol
        assert protocol is not None
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Response):
                self._handshake_done(event)
        self._flush()
        if protocol.close_expected():
            self._expect_close()

    def eof_received(self) -> bool | None:
        assert self._protocol is not None
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

    def _handshake_done(self, response: Response) -> None:
        if self._handshake.done():
            return
        error = self._protocol.handshake_exc if self._protocol is not None else None
        if error is not None:
            self._handshake.set_exception(WsConnectFailed(f"handshake refused: {error}"))
        else:
            self._handshake.set_result(None)

    def _frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            if frame.fin:
                self._deliver(frame.opcode, frame.data)
                return
            self._fragment_opcode, self._fragments = frame.opcode, [frame.data]
        elif frame.opcode is Opcode.CONT and self._fragment_opcode is not None:
            self._fragments.append(frame.data)
            if sum(len(part) for part in self._fragments) > self._max_size:
                _LOGGER.warning("WebSocket message over %d bytes; closing", self._max_size)
                assert self._protocol is not None
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
        transport, protocol = self._transport, self._protocol
        if transport is None or protocol is None:
            return
        for chunk in protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            else:  # the protocol's signal to half-close
                with contextlib.suppress(OSError, NotImplementedError):
                    transport.write_eof()
