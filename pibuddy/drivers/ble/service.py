"""BLE scanning as a supervised service.

`start()` starts the scanner and raises `BluetoothUnavailable` when Bluetooth is missing or off: the
supervisor logs that one line and retries with backoff, so an adapter that appears later (or a
`bluetoothctl power on`) is picked up without a restart. `serve()` watches for silence: when sensors are
configured and nothing at all was heard for `silence_restart_seconds`, the scanner is presumed stuck (an
unplugged dongle, a restarted bluetoothd) and `ConnectionLost` makes the supervisor start it afresh.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from pibuddy.drivers.ble.driver import BleDriver
from pibuddy.drivers.ble.scanner import Scanner
from pibuddy.errors import ConnectionLost
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)
_MAX_CHECK_SECONDS: Final = 30.0


class BleService(Service):
    """Keeps a scanner feeding `driver` while PiBuddy runs.

    Args:
        driver: the BLE driver the tools read from.
    """

    name = "ble"

    def __init__(self, driver: BleDriver) -> None:
        self._driver = driver
        self._scanner: Scanner | None = None
        self._started_at = 0.0

    async def start(self) -> None:
        scanner = self._driver.scanner()
        await scanner.start()
        self._scanner, self._started_at = scanner, self._driver.clock()
        config = self._driver.config
        _LOGGER.info("BLE: scanning on %s (%d sensors, %d devices configured)", config.adapter or "the default adapter",
                     len(config.sensors), len(config.devices))

    async def serve(self) -> None:
        silence = self._driver.config.silence_restart_seconds
        while True:
            await asyncio.sleep(min(silence / 4, _MAX_CHECK_SECONDS))
            if not self._driver.sensors:
                continue  # nothing expected: a quiet neighbourhood is not a stuck scanner
            last = max(self._driver.last_heard or 0.0, self._started_at)
            if self._driver.clock() - last > silence:
                raise ConnectionLost(f"no BLE advertisement heard for {silence:g} s; restarting the scanner")

    async def stop(self) -> None:
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            await scanner.stop()
        await self._driver.close()

    def health(self) -> Health:
        heard = sum(1 for record in self._driver.cache.records() if record.readings)
        return Health(self._scanner is not None, f"scanning; {heard} sensors with readings")
