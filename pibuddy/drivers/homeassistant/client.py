"""Home Assistant's REST API (httpx) and WebSocket API (websockets), with foreign errors converted once.

httpx and websockets exceptions never leave this module: an unreachable Home Assistant becomes
`DeviceUnreachable`, a refused token `AuthFailed`, a missing entity `NotFound`, a rejected call a
`DriverError` with code "rejected". The token goes into one header and one auth message; neither is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from pibuddy.errors import (
    AuthFailed,
    ConnectionLost,
    DeviceNotResponding,
    DeviceUnreachable,
    DriverError,
    NotFound,
    Party,
)

_LOGGER = logging.getLogger(__name__)

UNREACHABLE_TEXT: Final = "Home Assistant is not reachable, check it is running"
TOKEN_TEXT: Final = "the Home Assistant token is invalid"
_HA: Final = Party.HOME_ASSISTANT
# get_states and the registries of a large house run to a few MB; refuse anything absurd before allocating.
_MAX_WS_MESSAGE_BYTES: Final = 32 * 1024 * 1024
_PING_SECONDS: Final = 20.0

EventHandler = Callable[[dict[str, Any]], None]


def websocket_url(base_url: str) -> str:
    """`http://h:8123/` -> `ws://h:8123/api/websocket` (https -> wss; a path prefix is kept)."""
    base = base_url.rstrip("/")
    scheme, _, rest = base.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/api/websocket"


class RestClient:
    """Home Assistant's REST API. An async context manager; one default `timeout` (seconds).

    Args:
        base_url: e.g. http://homeassistant.local:8123
        token: a long-lived access token.
        timeout: seconds per request.
    """

    def __init__(self, base_url: str, *, token: str, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout,
                                       headers={"Authorization": f"Bearer {token}"})

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def check(self) -> None:
        """Raise unless Home Assistant answers and accepts the token."""
        await self._request("GET", "/api/")

    async def states(self) -> list[dict[str, Any]]:
        return list(await self._request("GET", "/api/states"))

    async def state(self, entity_id: str) -> dict[str, Any]:
        return dict(await self._request("GET", f"/api/states/{entity_id}", missing=entity_id))

    async def call_service(self, domain: str, service: str, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Call a service and wait for it; returns the states it changed (HA 2024.x: a list; newer HA may
        wrap it as {"changed_states": [...]} — both are accepted)."""
        answer = await self._request("POST", f"/api/services/{domain}/{service}", body=dict(data))
        if isinstance(answer, Mapping):
            answer = answer.get("changed_states", [])
        return list(answer) if isinstance(answer, list) else []

    async def conversation(self, text: str, *, language: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text}
        if language:
            body["language"] = language
        return dict(await self._request("POST", "/api/conversation/process", body=body))

    async def _request(self, method: str, path: str, *, body: dict[str, Any] | None = None,
                       missing: str | None = None) -> Any:
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.TimeoutException:
            raise DeviceNotResponding(f"{UNREACHABLE_TEXT} (no answer in time)", party=_HA) from None
        except httpx.HTTPError:
            raise DeviceUnreachable(UNREACHABLE_TEXT, party=_HA) from None
        if response.status_code in (401, 403):
            raise AuthFailed(TOKEN_TEXT, party=_HA)
        if response.status_code == 404 and missing is not None:
            raise NotFound(f"Home Assistant has no entity {missing}")
        if response.status_code == 400:
            raise DriverError(f"Home Assistant rejected the request ({_reason(response)})", code="rejected")
        if response.status_code >= 300:
            raise DriverError(f"Home Assistant answered HTTP {response.status_code} ({_reason(response)})",
                              code="ha_error")
        try:
            return response.json()
        except ValueError:
            raise DriverError("Home Assistant sent a reply that is not JSON", code="ha_error") from None


def _reason(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        message = response.json().get("message")
        if isinstance(message, str):
            return message
    return response.text.strip()[:200] or response.reason_phrase


class WebSocketLink:
    """One authenticated Home Assistant WebSocket: commands matched to results by id, events to a callback.

    Events go to a plain callback rather than a bounded queue: they update the in-memory index, which is
    cheap and must not lose an update. `wait_closed()` returns once the link dropped; commands in flight then
    raise `ConnectionLost`.
    """

    def __init__(self, conn: ClientConnection, *, request_timeout: float, on_event: EventHandler | None) -> None:
        self._conn = conn
        self._timeout = request_timeout
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="homeassistant-ws-reader")

    @classmethod
    async def open(cls, url: str, *, token: str, request_timeout: float = 10.0,
                   on_event: EventHandler | None = None) -> Self:
        """Connect and authenticate. Raises DeviceUnreachable or AuthFailed.

        Args:
            url: ws(s)://host:port/api/websocket
            token: a long-lived access token.
            request_timeout: seconds for the handshake and for each command.
            on_event: called with each subscribed event, on the event loop.
        """
        timeout = request_timeout
        try:
            conn = await websockets.connect(url, open_timeout=timeout, max_size=_MAX_WS_MESSAGE_BYTES,
                                            ping_interval=_PING_SECONDS, ping_timeout=_PING_SECONDS)
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI):
            raise DeviceUnreachable(UNREACHABLE_TEXT, party=_HA) from None
        try:
            async with asyncio.timeout(timeout):
                await _expect(conn, "auth_required")
                await conn.send(json.dumps({"type": "auth", "access_token": token}))
                answer = await _receive(conn)
        except (TimeoutError, websockets.ConnectionClosed):
            await conn.close()
            raise DeviceUnreachable(UNREACHABLE_TEXT, party=_HA) from None
        except BaseException:
            await conn.close()
            raise
        if answer.get("type") == "auth_invalid":
            await conn.close()
            raise AuthFailed(TOKEN_TEXT, party=_HA)
        if answer.get("type") != "auth_ok":
            await conn.close()
            raise DriverError(f"unexpected answer to auth: {answer.get('type')!r}", code="ha_protocol")
        return cls(conn, request_timeout=timeout, on_event=on_event)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def command(self, kind: str, **fields: Any) -> Any:
        """Send one command and return its `result`; a failed result raises DriverError (code "rejected")."""
        if self.closed:
            raise ConnectionLost("the Home Assistant WebSocket is closed")
        number = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        try:
            await self._conn.send(json.dumps({**fields, "id": number, "type": kind}))
            async with asyncio.timeout(self._timeout):
                reply = await future
        except websockets.ConnectionClosed:
            raise ConnectionLost("the Home Assistant WebSocket closed") from None
        except TimeoutError:
            raise DeviceNotResponding(f"{UNREACHABLE_TEXT} (no answer to {kind} in time)", party=_HA) from None
        finally:
            self._pending.pop(number, None)
        if not reply.get("success"):
            error = reply.get("error") or {}
            raise DriverError(f"Home Assistant refused {kind}: {error.get('message', 'no reason given')}",
                              code="rejected")
        return reply.get("result")

    async def subscribe(self, event_type: str) -> None:
        await self.command("subscribe_events", event_type=event_type)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self) -> None:
        await self._conn.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._finish()

    async def _read(self) -> None:
        try:
            with contextlib.suppress(websockets.ConnectionClosed):  # _finish() reports the closed link
                async for raw in self._conn:
                    self._dispatch(raw)
        finally:
            self._finish()

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            _LOGGER.warning("Home Assistant sent a WebSocket message that is not JSON; dropped")
            return
        if not isinstance(message, dict):
            _LOGGER.warning("Home Assistant sent a WebSocket message that is not an object; dropped")
            return
        kind = message.get("type")
        if kind == "result":
            future = self._pending.get(message.get("id"))  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "event" and self._on_event is not None and isinstance(message.get("event"), dict):
            try:
                self._on_event(message["event"])
            except Exception:
                _LOGGER.exception("a Home Assistant event handler failed; event dropped")

    def _finish(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLost("the Home Assistant WebSocket closed"))


async def _receive(conn: ClientConnection) -> dict[str, Any]:
    try:
        message = json.loads(await conn.recv())
    except ValueError:
        raise DriverError("Home Assistant sent a WebSocket message that is not JSON", code="ha_protocol") from None
    if not isinstance(message, dict):
        raise DriverError("Home Assistant sent a WebSocket message that is not an object", code="ha_protocol")
    return message


async def _expect(conn: ClientConnection, kind: str) -> None:
    message = await _receive(conn)
    if message.get("type") != kind:
        raise DriverError(f"expected {kind} from Home Assistant, got {message.get('type')!r}", code="ha_protocol")
