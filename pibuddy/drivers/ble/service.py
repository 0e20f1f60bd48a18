"""BLE scanning as a supervised service.

Bluetooth that is missing or off (no adapter, bluetoothd not running, rfkill) is a state of this service,
not a crash: `start()` returns, one WARNING says what to do, `serve()` retries quietly with backoff (debug
lines only) and one INFO line says when scanning works again, so an adapter that appears later (or a
`bluetoothctl power on`) is picked up without a restart. `health()` is not ok meanwhile, and tools scan on
their own and answer with the reason. `serve()` also watches for silence: when sensors are configured and
nothing at all was heard for `silence_restart_seconds`, the scanner is presumed stuck (an unplugged dongle,
a restarted bluetoothd) and `ConnectionLost` makes the supervisor start it afresh.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from pibuddy.backoff import Backoff
from pibuddy.drivers.ble.driver import BleDriver
from pibuddy.drivers.ble.errors import BluetoothUnavailable
from pibuddy.drivers.ble.scanner import Scanner
from pibuddy.errors import ConnectionLost
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)
_MAX_CHECK_SECONDS: Final = 30.0
_RETRY_FIRST_SECONDS: Final = 2.0
_RETRY_MAX_SECONDS: Final = 60.0
_WHAT_TO_DO: Final = ("check that an adapter is attached (`bluetoothctl list`), that bluetoothd runs (`systemctl "
                      "status bluetooth`) and that Bluetooth is not blocked (`rfkill unblock bluetooth`)")


class BleService(Service):
    """Keeps a scanner feeding `driver` while PiBuddy runs.

    Args:
        driver: the BLE driver the tools read from.
        retry: the schedule for trying again while Bluetooth is unavailable (tests pass short ones).
    """

    name = "ble"

    def __init__(self, driver: BleDriver, *, retry: Backoff | None = None) -> None:
        self._driver = driver
        self._retry = retry or Backoff(initial=_RETRY_FIRST_SECONDS, maximum=_RETRY_MAX_SECONDS)
        self._scanner: Scanner | None = None
        self._started_at = 0.0
        self._unavailable: str | None = None  # why Bluetooth is unusable, while it is

    @property
    def driver(self) -> BleDriver:
        return self._driver

    async def start(self) -> None:
        self._retry.reset()
        await self._try_scanning()

    async def serve(self) -> None:
        while self._scanner is None:
            delay = self._retry.next_delay()
            _LOGGER.debug("BLE: trying Bluetooth again in %.1f s", delay)
            await asyncio.sleep(delay)
            await self._try_scanning()
        await self._watch_for_silence()

    async def stop(self) -> None:
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            await scanner.stop()
        await self._driver.close()

    def health(self) -> Health:
        if self._unavailable is not None:
            return Health(False, f"{self._unavailable}; retrying")
        heard = sum(1 for record in self._driver.cache.records() if record.readings)
        return Health(self._scanner is not None, f"scanning; {heard} sensors with readings")

    async def _try_scanning(self) -> None:
        """Start a scanner; when Bluetooth is unavailable, note it (one warning per outage) and return."""
        scanner = self._driver.scanner()
        try:
            await scanner.start()
        except BluetoothUnavailable as exc:
            if self._unavailable is None:
                _LOGGER.warning("BLE: %s; %s. Retrying in the background.", exc.message, _WHAT_TO_DO)
            else:
                _LOGGER.debug("BLE: still unavailable: %s", exc.message)
            self._unavailable = exc.message
            return
        back = self._unavailable is not None
        self._scanner, self._started_at, self._unavailable = scanner, self._driver.clock(), None
        config = self._driver.config
        _LOGGER.info("BLE: %sscanning on %s (%d sensors, %d devices configured)", "Bluetooth is back; " if back else "",
                     config.adapter or "the default adapter", len(config.sensors), len(config.devices))

    async def _watch_for_silence(self) -> None:
        silence = self._driver.config.silence_restart_seconds
        while True:
            await asyncio.sleep(min(silence / 4, _MAX_CHECK_SECONDS))
            if not self._driver.sensors:
                continue  # nothing expected: a quiet neighbourhood is not a stuck scanner
            last = max(self._driver.last_heard or 0.0, self._started_at)
            if self._driver.clock() - last > silence:
                raise ConnectionLost(f"no BLE advertisement heard for {silence:g} s; restarting the scanner")
