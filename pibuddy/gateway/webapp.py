"""Starting and stopping one small aiohttp application (the management API, the local OTA), served under
the shared HTTP policy (`pibuddy.httpserve`: connection caps and deadlines).

Malformed input is a 400 with one log line per interval, never a 500 with a traceback: a handler that
trips over undecodable header bytes (aiohttp keeps them as surrogates) or JSON nested too deep is
answered by `_malformed_input`, and aiohttp's own "Error handling request" for requests it cannot
parse at all (a header line over 8 190 bytes, a bad request line) is counted instead of logged.
"""

from __future__ import annotations

import logging
from typing import Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

from pibuddy.drops import DropCounter
from pibuddy.httpserve import HTTP_POLICY, HttpPolicy, serve_http
from pibuddy.jsonlimits import JsonTooDeep
from pibuddy.listener import BoundedListener

_LOGGER = logging.getLogger(__name__)
_SHUTDOWN_SECONDS: Final = 2.0
_UNPARSABLE: Final = DropCounter("unparsable HTTP requests", _LOGGER)


class _CountUnparsable(logging.Filter):
    """On aiohttp.server: a request aiohttp could not parse is counted (one line per interval), not logged
    with its traceback each time."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            _UNPARSABLE.count(type(error).__name__)
            return False
        return True


logging.getLogger("aiohttp.server").addFilter(_CountUnparsable())


def _malformed_input_middleware(name: str) -> Middleware:
    counter = DropCounter(f"malformed {name} requests", _LOGGER)

    @web.middleware
    async def malformed_input(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except (UnicodeError, RecursionError, JsonTooDeep) as exc:
            counter.count(type(exc).__name__)
            return web.json_response({"error": "malformed request"}, status=400)

    return malformed_input


class WebApp:
    """An aiohttp application served on `host:port` (port 0 picks a free one; see `port`)."""

    def __init__(self, app: web.Application, name: str, *, policy: HttpPolicy = HTTP_POLICY) -> None:
        app.middlewares.insert(0, _malformed_input_middleware(name))  # outermost: around the app's own
        self._app = app
        self._name = name
        self._policy = policy
        self._runner: web.AppRunner | None = None
        self.listener: BoundedListener | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        runner = web.AppRunner(self._app, access_log=None, handle_signals=False,
                                shutdown_timeout=_SHUTDOWN_SECONDS)
        await runner.setup()
        self._runner = runner
        assert runner.server is not None
        self.listener = serve_http(self._name, runner.server, policy=self._policy)
        try:
            await self.listener.start(host, port)
        except BaseException:
            await runner.cleanup()
            raise
        self.port = self.listener.port

    async def stop(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if listener is not None:
            await listener.stop()
