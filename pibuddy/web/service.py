"""The household page as a supervised service (web.enabled), under the shared HTTP policy."""

from __future__ import annotations

import logging

from pibuddy.config import WebConfig
from pibuddy.control import Control
from pibuddy.gateway.webapp import WebApp
from pibuddy.ports import binding
from pibuddy.supervisor import Health, Service
from pibuddy.web.app import HouseholdPage

_LOGGER = logging.getLogger(__name__)


class WebService(Service):
    name = "web"

    def __init__(self, control: Control, config: WebConfig) -> None:
        self._config = config
        token = config.token.get_secret_value() if config.token is not None else None
        self._page = HouseholdPage(control, token=token or None)
        self._server: WebApp | None = None

    @property
    def port(self) -> int:
        return self._server.port if self._server is not None else 0

    async def start(self) -> None:
        server = WebApp(self._page.app(), "web page")
        with binding(self._config.port, "tcp", "web.port"):
            await server.start(self._config.host, self._config.port)
        self._server = server
        _LOGGER.info("household page at http://%s:%d/", self._config.host, server.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    def health(self) -> Health:
        return Health(True, f"http://{self._config.host}:{self.port}/")
