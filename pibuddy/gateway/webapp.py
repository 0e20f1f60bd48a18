"""Starting and stopping one small aiohttp application (the management API, the local OTA)."""

from __future__ import annotations

from aiohttp import web


class WebApp:
    """An aiohttp application served on `host:port` (port 0 picks a free one; see `port`)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        self._runner = runner
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
