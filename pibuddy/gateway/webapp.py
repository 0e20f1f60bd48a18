"""Starting and stopping one small aiohttp application (the management API, the local OTA), served under
the shared HTTP policy (`pibuddy.httpserve`: connection caps and deadlines)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from pibuddy.httpserve import HTTP_POLICY, HttpPolicy, serve_http
from pibuddy.listener import BoundedListener

_SHUTDOWN_SECONDS: Final = 2.0


class WebApp:
    """An aiohttp application served on `host:port` (port 0 picks a free one; see `port`)."""

    def __init__(self, app: web.Application, name: str, *, policy: HttpPolicy = HTTP_POLICY) -> None:
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
