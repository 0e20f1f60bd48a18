"""The household page's HTTP side: the page itself and a JSON API on `Control`.

    GET  /                 the page (page.html: plain HTML, CSS and JavaScript, nothing fetched elsewhere)
    GET  /api/status       the snapshot and the last turns and actions
    POST /api/volume       {"percent": 40}
    POST /api/mute         {"muted": true}
    POST /api/announce     {"text": "Dinner is ready", "device": null | MAC | "all"}
    POST /api/restart      {"service": "upstream"}
    POST /login            {"token": "..."} when web.token is set: sets the session cookie

With a token, every other route needs the cookie (or `Authorization: Bearer <token>`). Commands must be
JSON (`Content-Type: application/json`), which a cross-site form cannot send, and the cookie is SameSite=Strict.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Final

from aiohttp import web

from pibuddy.control import Control, ControlError
from pibuddy.control.history import entry_to_json
from pibuddy.errors import PiBuddyError

SOURCE: Final = "web"
COOKIE: Final = "pibuddy_session"
MAX_BODY_BYTES: Final = 16 * 1024
_HISTORY: Final = 30
_OPEN: Final = frozenset({"/login", "/"})  # the page itself asks for the token when the API says 401

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _session_value(token: str) -> str:
    """What the cookie holds: a hash of the token, so the token itself is never stored in the browser."""
    return hashlib.sha256(b"pibuddy-web:" + token.encode()).hexdigest()


class HouseholdPage:
    """Args:
    control: the control layer.
    token: the password from web.token; None (loopback only): no login.
    """

    def __init__(self, control: Control, *, token: str | None) -> None:
        self._control = control
        self._token = token
        self._page = resources.files(__package__).joinpath("page.html").read_bytes()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_post("/login", self._login)
        app.router.add_get("/api/status", self._status)
        app.router.add_post("/api/volume", self._command(self._volume))
        app.router.add_post("/api/mute", self._command(self._mute))
        app.router.add_post("/api/announce", self._command(self._announce))
        app.router.add_post("/api/restart", self._command(self._restart))
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token is not None and request.path not in _OPEN and not self._authorized(request):
            return web.json_response({"error": "log in first"}, status=401)
        response = await handler(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    def _authorized(self, request: web.Request) -> bool:
        assert self._token is not None
        expected = _session_value(self._token)
        cookie = request.cookies.get(COOKIE, "")
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return hmac.compare_digest(cookie, expected) or hmac.compare_digest(_session_value(bearer), expected)

    async def _index(self, request: web.Request) -> web.Response:
        del request
        return web.Response(body=self._page, content_type="text/html", charset="utf-8")

    async def _login(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if self._token is None:
            return web.json_response({"ok": True})
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not hmac.compare_digest(_session_value(token), _session_value(self._token)):
            return web.json_response({"error": "wrong password"}, status=401)
        response = web.json_response({"ok": True})
        response.set_cookie(COOKIE, _session_value(self._token), httponly=True, samesite="Strict")
        return response

    async def _status(self, request: web.Request) -> web.Response:
        del request
        history = [entry_to_json(e) for e in reversed(self._control.history(_HISTORY))]
        return web.json_response(self._control.snapshot().to_json() | {"history": history})

    def _command(self, act: Callable[[dict[str, Any]], Awaitable[Any]]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            if request.content_type != "application/json":
                return web.json_response({"error": "send JSON (Content-Type: application/json)"}, status=415)
            body = await _json_body(request)
            if not isinstance(body, dict):
                return web.json_response({"error": "the body must be a JSON object"}, status=400)
            try:
                return web.json_response(await act(body))
            except PiBuddyError as exc:  # ControlError and the mixer's own errors: said to the user
                return web.json_response({"error": str(exc)}, status=409)

        return handle

    async def _volume(self, body: dict[str, Any]) -> Any:
        percent = body.get("percent")
        if not isinstance(percent, int) or isinstance(percent, bool):
            raise ControlError("percent must be a whole number from 0 to 100")
        return {"volume": await self._control.set_volume(percent, source=SOURCE)}

    async def _mute(self, body: dict[str, Any]) -> Any:
        muted = body.get("muted")
        if not isinstance(muted, bool):
            raise ControlError("muted must be true or false")
        return {"muted": await self._control.set_muted(muted, source=SOURCE)}

    async def _announce(self, body: dict[str, Any]) -> Any:
        text, device = body.get("text"), body.get("device") or None
        if not isinstance(text, str) or not (device is None or isinstance(device, str)):
            raise ControlError("announce needs a text (and optionally a device MAC or 'all')")
        return {"announced_on": await self._control.announce(text, device=device, source=SOURCE)}

    async def _restart(self, body: dict[str, Any]) -> Any:
        service = body.get("service")
        if not isinstance(service, str):
            raise ControlError("restart needs a service name")
        await self._control.restart(service, source=SOURCE)
        return {"restarting": service}


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError:
        return None
