"""One authenticated gateway session over any `FrameTransport`: handshake, requests, events, tick watchdog.

    async with GatewayConnection(open_transport, identity=..., client=..., spec=...) as session:
        payload = await session.request("node.event", {...})
        async for event in session.events():
            ...

Entering waits for the challenge, signs and sends `connect`, and returns after `hello-ok` (a refusal
raises a `GatewayRejected` leaf). A dropped link, a close, or no frame for two tick intervals raises
`ConnectionLost` out of `events()` and out of pending requests. Frames PiBuddy sends are kept under the
gateway's `policy.maxPayload`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Final, Self

from pibuddy.drops import DropCounter
from pibuddy.errors import ConnectionLost
from pibuddy.openclaw.errors import FrameError, OpenClawError, RequestFailed, rejection
from pibuddy.openclaw.frames import EventFrame, Frame, RequestFrame, ResponseFrame, encode, parse_frame
from pibuddy.openclaw.handshake import Challenge, ClientInfo, HelloOk, SessionSpec, connect_params
from pibuddy.openclaw.identity import DeviceIdentity
from pibuddy.openclaw.transport import FrameTransport, TransportFactory

_LOGGER = logging.getLogger(__name__)
# Largest frame accepted from the gateway. Nodes get small frames (invoke requests, ticks); hello-ok and
# health snapshots of a busy gateway stay well under this.
MAX_INCOMING_BYTES: Final = 8 * 1024 * 1024
_EVENT_QUEUE_SIZE: Final = 256
_TICKS_MISSED_BEFORE_LOST: Final = 2


class FrameTooLarge(OpenClawError):
    """A frame PiBuddy wanted to send exceeds the gateway's `policy.maxPayload`."""


class RequestTimedOut(OpenClawError):
    """No response to a request within its timeout."""


class GatewayConnection:
    """An authenticated session; reusable, not reentrant.

    Args:
        open_transport: opens the link (WebSocket or MQTT) for each entry.
        identity: the device key that signs the challenge.
        client: `connect.client` metadata (stable per identity).
        spec: role, scopes, caps and commands to ask for.
        token: what goes in `auth.token`: the stored device token, else the shared gateway token.
        timeout: seconds for the handshake and, unless a call says otherwise, for each request.
        locale: `connect.locale`.
    """

    def __init__(self, open_transport: TransportFactory, *, identity: DeviceIdentity, client: ClientInfo,
                 spec: SessionSpec, token: str | None, timeout: float = 10.0, locale: str = "en-US") -> None:
        self._open_transport = open_transport
        self._identity = identity
        self._client = client
        self._spec = spec
        self._token = token
        self._timeout = timeout
        self._locale = locale
        self._transport: FrameTransport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[ResponseFrame]] = {}
        self._events: asyncio.Queue[EventFrame | None] = asyncio.Queue(_EVENT_QUEUE_SIZE)
        self._event_drops = DropCounter("gateway events (nobody reads them fast enough)", _LOGGER)
        self._lost: ConnectionLost | None = None
        self.hello: HelloOk | None = None

    async def __aenter__(self) -> Self:
        self._lost = None
        self._events = asyncio.Queue(_EVENT_QUEUE_SIZE)
        self._transport = await self._open_transport()
        try:
            self.hello = await self._handshake(self._transport)
        except BaseException:
            await self._close_transport()
            raise
        self._reader = asyncio.create_task(self._read_loop(self._transport, self.hello))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._close_transport()

    async def _close_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            with contextlib.suppress(ConnectionLost):
                await transport.close()

    # --- handshake ---------------------------------------------------------------------------------

    async def _handshake(self, transport: FrameTransport) -> HelloOk:
        try:
            async with asyncio.timeout(self._timeout):
                challenge = await self._receive_challenge(transport)
        except TimeoutError:
            raise ConnectionLost(f"no connect.challenge from {transport.description} within {self._timeout:g} s"
                                 " (is the gateway, or the MQTT bridge, running?)") from None
        connect = RequestFrame("connect", connect_params(
            challenge=challenge, identity=self._identity, client=self._client, spec=self._spec,
            token=self._token, locale=self._locale))
        await transport.send(encode(connect))
        try:
            async with asyncio.timeout(self._timeout):
                while True:
                    frame = await self._receive_frame(transport)
                    if isinstance(frame, ResponseFrame) and frame.id == connect.id:
                        break
                    _LOGGER.debug("ignoring %s before hello-ok", type(frame).__name__)
        except TimeoutError:
            raise ConnectionLost(f"no answer to connect from {transport.description} within {self._timeout:g} s"
                                 ) from None
        if not frame.ok:
            raise rejection(frame.error) from None  # type: ignore[arg-type]  # parse_frame sets it when not ok
        try:
            return HelloOk.from_payload(frame.payload)
        except FrameError as exc:
            raise ConnectionLost(f"{transport.description}: {exc}") from None

    async def _receive_challenge(self, transport: FrameTransport) -> Challenge:
        frame = await self._receive_frame(transport)
        if not isinstance(frame, EventFrame):
            raise ConnectionLost(f"{transport.description} did not start with connect.challenge")
        try:
            return Challenge.from_event(frame)
        except FrameError as exc:
            raise ConnectionLost(f"{transport.description}: {exc}") from None

    @staticmethod
    async def _receive_frame(transport: FrameTransport) -> Frame:
        """The next valid frame; invalid ones are logged (one line each) and dropped."""
        while True:
            text = await transport.receive()
            try:
                return parse_frame(text, max_bytes=MAX_INCOMING_BYTES)
            except FrameError as exc:
                _LOGGER.warning("dropping a frame from %s: %s", transport.description, exc)

    # --- after hello-ok ------------------------------------------------------------------------------

    async def _read_loop(self, transport: FrameTransport, hello: HelloOk) -> None:
        silence_limit = _TICKS_MISSED_BEFORE_LOST * hello.tick_interval_ms / 1000
        try:
            while True:
                try:
                    async with asyncio.timeout(silence_limit):
                        frame = await self._receive_frame(transport)
                except TimeoutError:
                    raise ConnectionLost(f"no tick from {transport.description} for {silence_limit:g} s") from None
                self._dispatch(frame)
        except ConnectionLost as exc:
            self._lost = exc
        finally:
            lost = self._lost or ConnectionLost("the gateway session was closed")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(lost)
            self._offer(None)

    def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, ResponseFrame):
            future = self._pending.get(frame.id)
            if future is not None and not future.done():
                future.set_result(frame)
            else:
                _LOGGER.debug("response %s matches no waiting request (late, or a second phase)", frame.id)
        elif isinstance(frame, EventFrame):
            self._offer(frame)
        else:
            _LOGGER.warning("dropping a request frame from the gateway (%s): clients answer none", frame.method)

    def _offer(self, event: EventFrame | None) -> None:
        if self._events.full():
            self._events.get_nowait()  # the oldest goes: ticks and presence are superseded anyway
            self._event_drops.count()
        self._events.put_nowait(event)

    async def events(self) -> AsyncIterator[EventFrame]:
        """Every event after hello-ok; raises `ConnectionLost` when the session ends."""
        while True:
            event = await self._events.get()
            if event is None:
                raise self._lost or ConnectionLost("the gateway session was closed")
            yield event

    # A per-call override of the constructor's timeout, as the style asks for clients.
    async def request(self, method: str, params: Any = None, *,
                      timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """Send a request and return its `payload`; `RequestFailed` on `ok:false`."""
        frame = RequestFrame(method, params)
        future: asyncio.Future[ResponseFrame] = asyncio.get_running_loop().create_future()
        self._pending[frame.id] = future
        limit = self._timeout if timeout is None else timeout
        try:
            await self.send(frame)
            async with asyncio.timeout(limit):
                response = await future
        except TimeoutError:
            raise RequestTimedOut(f"{method}: no answer within {limit:g} s") from None
        finally:
            self._pending.pop(frame.id, None)
        if not response.ok:
            raise RequestFailed(method, response.error)  # type: ignore[arg-type]
        return response.payload

    async def send(self, frame: RequestFrame) -> None:
        """Send one request without waiting; `FrameTooLarge` if it would break `policy.maxPayload`."""
        if self._transport is None or self.hello is None:
            raise ConnectionLost("the gateway session is not open")
        if self._lost is not None:
            raise self._lost
        text = encode(frame)
        size = len(text.encode("utf-8"))
        if size > self.hello.max_payload:
            raise FrameTooLarge(f"{frame.method} frame of {size} bytes exceeds the gateway's "
                                f"maxPayload of {self.hello.max_payload}")
        await self._transport.send(text)
