"""The WebSocket channel to a xiaozhi server (direct mode): text frames are JSON, binary frames audio.

Opened per conversation, with the firmware's handshake headers (§6.1). The device never pings (neither does
the firmware); it answers the server's pings, which the websockets library does by itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Final, Self

import websockets
from websockets.asyncio.client import ClientConnection, connect

from pibuddy.errors import ConnectionLost

_LOGGER = logging.getLogger(__name__)
_MAX_MESSAGE_BYTES: Final = 256 * 1024  # larger than any JSON or Opus frame a server sends


def handshake_headers(*, token: str, protocol_version: int, device_id: str, client_id: str) -> dict[str, str]:
    """The firmware's headers; `Bearer ` is added unless the token already has a scheme (contains a space)."""
    headers = {"Protocol-Version": str(protocol_version), "Device-Id": device_id, "Client-Id": client_id}
    if token:
        headers["Authorization"] = token if " " in token else f"Bearer {token}"
    return headers


class WsLink:
    """An open WebSocket. `async with WsLink(url, headers) as link:`; leaving closes it."""

    def __init__(self, url: str, headers: dict[str, str], *, timeout: float = 10.0) -> None:
        self.url = url
        self._headers = headers
        self._timeout = timeout
        self._connection: ClientConnection | None = None

    async def __aenter__(self) -> Self:
        try:
            self._connection = await connect(
                self.url,
                additional_headers=self._headers,
                open_timeout=self._timeout,
                ping_interval=None,
                max_size=_MAX_MESSAGE_BYTES,
                compression=None,
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise ConnectionLost(f"WebSocket connection to {self.url} failed: {exc}") from exc
        _LOGGER.info("WebSocket connected to %s", self.url)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    @property
    def _open(self) -> ClientConnection:
        if self._connection is None:
            raise ConnectionLost("WebSocket is not connected")
        return self._connection

    async def send_text(self, text: str) -> None:
        await self._send(text)

    async def send_binary(self, data: bytes) -> None:
        await self._send(data)

    async def _send(self, data: str | bytes) -> None:
        try:
            await self._open.send(data)
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"WebSocket closed: {_describe_close(exc)}") from exc

    async def messages(self) -> AsyncIterator[str | bytes]:
        """Every incoming frame; raises ConnectionLost when the server closes or the link drops."""
        try:
            async for message in self._open:
                yield message
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"WebSocket closed: {_describe_close(exc)}") from exc
        raise ConnectionLost("WebSocket closed by the server")


def _describe_close(exc: websockets.ConnectionClosed) -> str:
    close = exc.rcvd or exc.sent
    if close is None:
        return "connection dropped without a close frame"
    return f"code {close.code}" + (f" ({close.reason})" if close.reason else "")
