"""A miIO device over UDP: hello handshake with stamp offset, correlated message ids, retries.

`async with MiioClient(host, token, name="the desk lamp") as lamp: await lamp.call("miIO.info")`.
A device that checks the checksum against another token drops the packet without a word, so silence
is diagnosed from what did answer: no hello reply -> offline (or a wrong IP); hello replies but no
command replies -> the token is wrong; only unreadable replies -> a bad reply.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Final

from pibuddy.drivers.miot.codec import (
    HEADER_SIZE,
    PORT,
    Header,
    Token,
    decode_message,
    encode_message,
    hello_request,
    open_packet,
    parse_header,
    seal,
)
from pibuddy.drivers.miot.errors import BadReply, DeviceRejected, MiioProtocolError
from pibuddy.errors import DeviceNotResponding, DeviceUnreachable, TokenInvalid

_LOGGER = logging.getLogger(__name__)
# python-miio keeps ids in 1..9999 and jumps by 100 after a timeout, so a device that remembers recent
# ids does not drop the retry as a duplicate. UNCONFIRMED whether larger ids upset some firmware; we stay
# in python-miio's range, starting at random so a restart does not reuse the ids just sent.
_MAX_ID: Final = 9999
_RETRY_ID_JUMP: Final = 100
# Error codes python-miio treats as "try again" (device busy / internal hiccup).
_RECOVERABLE_CODES: Final = frozenset({-30001, -9999})


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: MiioClient) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._owner._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        self._owner._on_error(exc)


class MiioClient:
    """One miIO device; reusable, not reentrant; calls are serialised (devices handle one at a time).

    Args:
        host: the device's IP address.
        token: its 16-byte token.
        port: UDP port (54321 on real devices).
        timeout: seconds to wait for one answer; each call may override it (`wait_seconds`).
        attempts: how many times a call is sent (re-handshaking in between) before giving up.
        name: how the device is named in error messages ("the desk lamp").
        clock: monotonic seconds, for the stamp offset.
    """

    def __init__(self, host: str, token: Token, *, port: int = PORT, timeout: float = 2.0, attempts: int = 3,
                 name: str = "the device", clock: Callable[[], float] = time.monotonic) -> None:
        self.host, self.port, self.name = host, port, name
        self._token = token
        self._timeout = timeout
        self._attempts = attempts
        self._clock = clock
        self._transport: asyncio.DatagramTransport | None = None
        self._lock = asyncio.Lock()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._hello: asyncio.Future[Header] | None = None
        self._synced: tuple[Header, float] | None = None  # the last hello reply and when it came
        self._next_id = random.randint(1, _MAX_ID)
        self._last_drop: str | None = None

    @property
    def did(self) -> int | None:
        """The device id from the last hello reply."""
        return self._synced[0].did if self._synced else None

    async def __aenter__(self) -> MiioClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Endpoint(self), remote_addr=(self.host, self.port))
        except OSError as exc:
            raise DeviceUnreachable(f"{self.name} cannot be reached at {self.host} ({exc.strerror or exc})",
                                    device=self.name) from None

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    async def handshake(self, *, wait_seconds: float | None = None) -> Header:
        """Send hello and wait for the reply that gives the device's did and clock."""
        await self.open()
        assert self._transport is not None
        self._hello = asyncio.get_running_loop().create_future()
        self._transport.sendto(hello_request())
        try:
            header = await asyncio.wait_for(self._hello, wait_seconds or self._timeout)
        finally:
            self._hello = None
        self._synced = (header, self._clock())
        return header

    async def call(self, method: str, params: Any = None, *, wait_seconds: float | None = None) -> Any:
        """Send one request and return its `result`; raises a `DriverError` leaf naming the device."""
        async with self._lock:
            return await self._call(method, [] if params is None else params, wait_seconds or self._timeout)

    async def _call(self, method: str, params: Any, wait_seconds: float) -> Any:
        hello_answered = False
        self._last_drop = None
        for attempt in range(self._attempts):
            if self._synced is None or attempt > 0:
                try:
                    await self.handshake(wait_seconds=wait_seconds)
                except TimeoutError:
                    continue
                hello_answered = True
            reply = await self._exchange(method, params, wait_seconds)
            if reply is None:
                self._next_id = (self._next_id + _RETRY_ID_JUMP) % _MAX_ID + 1
                continue
            error = reply.get("error")
            if error is not None:
                code, message = _error_fields(error)
                if code in _RECOVERABLE_CODES and attempt + 1 < self._attempts:
                    continue
                raise DeviceRejected(f"{self.name} refused {method}: {message} (error {code})")
            if "result" not in reply:
                raise BadReply(f"{self.name} answered {method} without a result")
            return reply["result"]
        if self._last_drop is not None:
            raise BadReply(f"{self.name} sent a reply PiBuddy cannot read ({self._last_drop})")
        if hello_answered:
            raise TokenInvalid(f"{self.name} answers but ignores commands, so its token is wrong: "
                               "run `pibuddy miot setup` or fix the token in the config", device=self.name)
        raise DeviceNotResponding(f"{self.name} does not answer at {self.host}: it is offline or its address changed",
                                  device=self.name)

    async def _exchange(self, method: str, params: Any, wait_seconds: float) -> dict[str, Any] | None:
        """Send one request; its reply, or None after `wait_seconds` without one."""
        assert self._transport is not None
        assert self._synced is not None
        header, synced_at = self._synced
        message_id = self._take_id()
        stamp = (header.stamp + int(self._clock() - synced_at)) & 0xFFFFFFFF
        packet = seal(encode_message({"id": message_id, "method": method, "params": params}),
                      token=self._token, did=header.did, stamp=stamp)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        self._transport.sendto(packet)
        try:
            return await asyncio.wait_for(future, wait_seconds)
        except TimeoutError:
            return None
        finally:
            self._pending.pop(message_id, None)

    def _take_id(self) -> int:
        message_id = self._next_id
        self._next_id = message_id % _MAX_ID + 1
        return message_id

    def _on_datagram(self, data: bytes) -> None:
        try:
            if len(data) == HEADER_SIZE:
                header = parse_header(data)
                if self._hello is not None and not self._hello.done():
                    self._hello.set_result(header)
                return
            _, plaintext = open_packet(data, self._token)
            message = decode_message(plaintext)
        except MiioProtocolError as exc:
            self._drop(str(exc))
            return
        message_id = message.get("id")
        future = self._pending.get(message_id) if isinstance(message_id, int) else None
        if future is None or future.done():
            _LOGGER.debug("dropped a reply from %s with id %r nobody waits for", self.host, message_id)
            return
        future.set_result(message)

    def _on_error(self, exc: Exception) -> None:
        """ICMP port unreachable and the like: nobody is listening, so waiting longer is pointless."""
        _LOGGER.debug("UDP error from %s: %s", self.host, exc)
        failure = DeviceUnreachable(f"{self.name} cannot be reached at {self.host} ({exc})", device=self.name)
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(failure)

    def _drop(self, reason: str) -> None:
        self._last_drop = reason
        _LOGGER.warning("dropped a datagram from %s (%s): %s", self.name, self.host, reason)


def _error_fields(error: Any) -> tuple[int | None, str]:
    if isinstance(error, dict):
        code = error.get("code")
        return (code if isinstance(code, int) else None), str(error.get("message", "error"))
    return None, str(error)
