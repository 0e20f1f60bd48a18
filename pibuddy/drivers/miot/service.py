"""The MIoT driver as a supervised service of `pibuddy run`: it keeps device specs cached and addresses
current, so tool calls find what they need without waiting.

`start()` caches the spec of every device that lacks one (best effort: offline is fine) and runs one
discovery round; `serve()` repeats discovery every `discovery_interval`. Tools never depend on the service:
without it they fetch specs on demand and use the last known addresses.
"""

from __future__ import annotations

import asyncio
import logging

from pibuddy.drivers.miot.driver import MiotDriver
from pibuddy.errors import DriverError
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)


class MiotService(Service):
    name = "miot"

    def __init__(self, driver: MiotDriver) -> None:
        self._driver = driver
        self._last_found: int | None = None

    @property
    def driver(self) -> MiotDriver:
        return self._driver

    async def start(self) -> None:
        await self.cache_specs()
        if self._driver.config.discovery:
            await self._discover()

    async def serve(self) -> None:
        while True:
            await asyncio.sleep(self._driver.config.discovery_interval)
            if self._driver.config.discovery:
                await self._discover()

    async def stop(self) -> None:
        await self._driver.close()

    def health(self) -> Health:
        devices = len(self._driver.devices())
        found = "" if self._last_found is None else f", {self._last_found} answered discovery"
        return Health(True, f"{devices} devices{found}")

    async def cache_specs(self) -> int:
        """Fetch the specs not yet cached; returns how many devices still lack one."""
        missing = 0
        for device in self._driver.devices():
            if self._driver.cached_controls(device) is not None:
                continue
            try:
                await self._driver.spec(device)
            except DriverError as exc:
                missing += 1
                _LOGGER.warning("no spec for %s yet: %s", device.name, exc.message)
        return missing

    async def _discover(self) -> None:
        try:
            self._last_found = await self._driver.discover()
        except DriverError as exc:
            _LOGGER.warning("MIoT discovery failed: %s", exc.message)
