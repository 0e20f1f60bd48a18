"""The management API (docs/protocol.md §9), aiohttp on port 8007, with the reference's status codes and JSON
keys (its error texts in English).

Every route needs `Authorization: Bearer <daily token>`, the token of yesterday, today or tomorrow (the
gateway's local date; manager-api uses UTC and retries ±1 day on 401, so both sides meet).
- `POST /api/commands/{clientId}`: one MCP request to a connected device, 5 s for its answer.
- `POST /api/devices/status`: `{"clientIds": [...]}` -> per id `{"isAlive", "exists"}`.
- `POST /api/pairing` (PiBuddy's own): opens pairing for `gateway.pairing_minutes` (`pibuddy gateway pair`).
- `GET /api/devices` (PiBuddy's own): who is connected, since when, session state, upstream, counters
  (of the current session), and the chat servers with their health.
- `GET /api/devices/{clientId}/location` (PiBuddy's own): which gateway holds the device; with several
  gateways sharing a Redis registry (gateway.registry_url, docs/scaling.md) any of them answers, and a
  command for a device held by another gateway is passed on to that gateway's API (once: a passed-on
  request carries `X-PiBuddy-Forwarded`) and its answer returned, so a client may call any gateway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import aiohttp
from aiohttp import web

from pibuddy.gateway.admission import Admission
from pibuddy.gateway.bridge import ChatServerPool, display_url
from pibuddy.gateway.credentials import api_token_valid
from pibuddy.gateway.device import DeviceSession
from pibuddy.gateway.mcp_cache import McpRequestFailed
from pibuddy.gateway.registry import RegistryUnavailable
from pibuddy.jsonlimits import JsonTooDeep, loads_limited
from pibuddy.xiaozhi.states import State

_LOGGER = logging.getLogger(__name__)
COMMAND_TIMEOUT_SECONDS: Final = 5.0
# The reference's status codes and JSON keys, with English texts where it has Chinese ones (§9.1-§9.3 quote them).
_NO_AUTH_HEADER: Final = "no valid Authorization header (expected: Bearer <token>)"
_BAD_TOKEN: Final = "invalid token"
_NOT_CONNECTED: Final = "device not connected"
_BAD_COMMAND: Final = "invalid command type (expected: mcp with a payload method)"
_CLIENT_IDS_NOT_A_LIST: Final = "clientIds must be an array"
_MAX_BODY_BYTES: Final = 64 * 1024
_FORWARDED: Final = "X-PiBuddy-Forwarded"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Locate = Callable[[str], Awaitable[str | None]]
"""client id -> the management API URL of the other gateway holding it, or None; raises RegistryUnavailable."""


class ManagementApi:
    """Args:
    sessions: the live device sessions by client id (read, never changed, by the API).
    pool: the chat servers, listed with their counters.
    key: the signature key the daily token derives from.
    admission: opened by `POST /api/pairing` (None: no such route).
    pairing_seconds: how long that opens pairing.
    today: the local date (tests move it).
    locate: finds a device on another gateway (the Redis registry); None: this gateway alone.
    """

    def __init__(self, sessions: Mapping[str, DeviceSession], pool: ChatServerPool, *, key: str,
                 admission: Admission | None = None, pairing_seconds: float = 600.0,
                 today: Callable[[], dt.date] = dt.date.today, locate: Locate | None = None) -> None:
        self._sessions = sessions
        self._locate = locate
        self._pool = pool
        self._key = key
        self._admission = admission
        self._pairing_seconds = pairing_seconds
        self._today = today

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authorize], client_max_size=_MAX_BODY_BYTES)
        app.router.add_post("/api/commands/{client_id}", self._command)
        app.router.add_post("/api/devices/status", self._status)
        app.router.add_get("/api/devices", self._devices)
        app.router.add_get("/api/devices/{client_id}/location", self._location)
        if self._admission is not None:
            app.router.add_post("/api/pairing", self._pair)
        return app

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return web.json_response({"error": _NO_AUTH_HEADER}, status=401)
        if not api_token_valid(self._key, header.removeprefix("Bearer ").strip(), self._today()):
            _LOGGER.warning("management API: bad token from %s", request.remote)
            return web.json_response({"error": _BAD_TOKEN}, status=401)
        return await handler(request)

    async def _command(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        client_id = request.match_info["client_id"]
        session = self._sessions.get(client_id)
        if session is None:  # checked first, as the reference does
            elsewhere = None if _FORWARDED in request.headers else await self._elsewhere(client_id)
            if isinstance(elsewhere, web.Response):
                return elsewhere
            if elsewhere is not None:
                return await _forward(request, f"{elsewhere}/api/commands/{client_id}", body)
            return _failure(_NOT_CONNECTED)
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("type") != "mcp" or not isinstance(payload, dict) \
                or not isinstance(payload.get("method"), str):
            return _failure(_BAD_COMMAND)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                result = await session.mcp.request(payload["method"], payload.get("params"))
        except TimeoutError:
            return _failure("timeout")
        except McpRequestFailed as exc:
            return _failure(str(exc))
        return web.json_response({"success": True, "data": result})

    async def _status(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        client_ids = body.get("clientIds") if isinstance(body, dict) else None
        if not isinstance(client_ids, list):
            return web.json_response({"error": _CLIENT_IDS_NOT_A_LIST}, status=400)
        answer = {}
        for client_id in client_ids:
            session = self._sessions.get(client_id) if isinstance(client_id, str) else None
            answer[str(client_id)] = {"isAlive": _is_alive(session), "exists": session is not None}
        return web.json_response(answer)

    async def _pair(self, request: web.Request) -> web.Response:
        del request
        assert self._admission is not None
        self._admission.open_pairing(self._pairing_seconds)
        return web.json_response({"pairingSeconds": round(self._admission.pairing_remaining()),
                                  "admission": self._admission.mode.value})

    async def _location(self, request: web.Request) -> web.Response:
        client_id = request.match_info["client_id"]
        if client_id in self._sessions:
            return web.json_response({"clientId": client_id, "local": True, "gateway": None})
        elsewhere = await self._elsewhere(client_id)
        if isinstance(elsewhere, web.Response):
            return elsewhere
        if elsewhere is None:
            return web.json_response({"clientId": client_id, "error": _NOT_CONNECTED}, status=404)
        return web.json_response({"clientId": client_id, "local": False, "gateway": elsewhere})

    async def _elsewhere(self, client_id: str) -> str | web.Response | None:
        """The other gateway's API URL, None when no gateway holds the device, a 503 when Redis is away."""
        if self._locate is None:
            return None
        try:
            return await self._locate(client_id)
        except RegistryUnavailable as exc:
            _LOGGER.warning("management API: %s", exc)
            return web.json_response({"success": False, "error": f"device registry unavailable: {exc}"},
                                     status=503)

    async def _devices(self, request: web.Request) -> web.Response:
        del request
        now = time.monotonic()
        upstreams = [{"url": display_url(u.url), "healthy": u.healthy(now), "activeSessions": u.active,
                      "sessionsTotal": u.sessions_total, "failures": u.failures} for u in self._pool.servers]
        return web.json_response({"devices": [describe(session) for session in self._sessions.values()],
                                  "upstreams": upstreams})


def _is_alive(session: DeviceSession | None) -> bool | None:
    """The reference's `connection.isAlive()` as JSON: false for an unknown device, null for a connected one
    without a chat session (its `bridge && …` is null then), true while bridged, false while the chat
    server's WebSocket is still opening."""
    if session is None:
        return False
    return _ALIVE[session.state]


_ALIVE: Final[dict[State, bool | None]] = {
    State.IDLE: None, State.CONNECTING: False, State.OPEN: True, State.LISTENING: True, State.SPEAKING: True,
}
_STATE_WORDS: Final[dict[State, str]] = {
    State.IDLE: "idle", State.CONNECTING: "opening", State.OPEN: "bridged", State.LISTENING: "bridged",
    State.SPEAKING: "bridged",
}
"""The API's words for the device's session (the gateway relays listen and tts, so it stays OPEN)."""


def describe(session: DeviceSession) -> dict[str, Any]:
    """One device for `GET /api/devices` (and `pibuddy gateway status`)."""
    connection, route, bridge = session.connection, session.route, session.bridge
    return {
        "clientId": connection.identity.client_id,
        "mac": connection.identity.mac,
        "ip": connection.peer_ip,
        "connectedAt": dt.datetime.fromtimestamp(connection.connected_at, dt.UTC).isoformat(timespec="seconds"),
        "state": _STATE_WORDS[session.state],
        "sessionId": session.session_id,
        "upstream": display_url(bridge.server.url) if bridge else None,
        "toolsCached": len(session.mcp.device_tools),
        "mqtt": {"messagesIn": connection.messages_in, "messagesOut": connection.messages_out},
        "udp": {"packetsIn": route.packets_in if route else 0, "packetsOut": route.packets_out if route else 0},
        "websocket": {"framesUp": bridge.frames_up if bridge else 0, "framesDown": bridge.frames_down if bridge else 0},
    }



async def _forward(request: web.Request, url: str, body: Any) -> web.Response:
    """The command passed on to the gateway that holds the device (same token: gateways share the key)."""
    headers = {"Authorization": request.headers["Authorization"], _FORWARDED: "1"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=COMMAND_TIMEOUT_SECONDS + 2)) as http, \
                http.post(url, json=body, headers=headers) as response:
            return web.json_response(await response.json(content_type=None), status=response.status)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        _LOGGER.warning("management API: the gateway at %s did not answer (%s)", url, exc or type(exc).__name__)
        return web.json_response({"success": False, "error": f"gateway {url} unreachable"}, status=502)


async def _json_body(request: web.Request) -> Any:
    """The parsed body, or None when it is not JSON (answered like any other invalid body); 400 when it
    nests deeper than any command does."""
    try:
        return loads_limited(await request.read())
    except JsonTooDeep:
        raise  # answered 400 by the web app's malformed-input middleware
    except ValueError:
        return None


def _failure(error: str) -> web.Response:
    # The reference answers every command failure with HTTP 500 (§9.2); manager-api expects exactly that.
    return web.json_response({"success": False, "error": error}, status=500)
