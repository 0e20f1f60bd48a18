"""A bleak scanner with PiBuddy's settings, whose start fails with `BluetoothUnavailable` and nothing else.

`backend=` is bleak's own extension point: None means the platform backend (BlueZ over D-Bus on the Pi);
tests pass a fake `BaseBleakScanner` subclass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from bleak import BleakScanner
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from pibuddy.config import BleScanningMode
from pibuddy.drivers.ble.errors import BluetoothUnavailable, as_unavailable

_LOGGER = logging.getLogger(__name__)

Callback = Callable[[BLEDevice, AdvertisementData], None]

# Passive scanning on BlueZ needs AdvertisementMonitor "or patterns": service data 0xFCD2 (BTHome) and 0xFE95
# (MiBeacon), as AD type 0x16 with the 16-bit UUID little-endian at offset 0. UNCONFIRMED on a real Pi here
# (needs bluetoothd --experimental); active scanning is the default.
_SERVICE_DATA_UUID16: Final = AdvertisementDataType.SERVICE_DATA_UUID16
_PASSIVE_PATTERNS: Final = ((0, _SERVICE_DATA_UUID16, b"\xd2\xfc"), (0, _SERVICE_DATA_UUID16, b"\x95\xfe"))


class Scanner:
    """Start/stop a scanner that calls `callback(device, advertisement)` on the event loop.

    Args:
        callback: called for every advertisement (must not block).
        adapter: BlueZ adapter name, None for the first powered one.
        mode: active or passive scanning.
        backend: a bleak scanner backend class (tests), None for the platform's.
        on_running: told True once scanning started and False once it stopped.
    """

    def __init__(self, callback: Callback, *, adapter: str | None = None,
                 mode: BleScanningMode = BleScanningMode.ACTIVE, backend: type[BaseBleakScanner] | None = None,
                 on_running: Callable[[bool], None] | None = None) -> None:
        bluez: dict[str, Any] = {}
        if adapter:
            bluez["adapter"] = adapter
        if mode is BleScanningMode.PASSIVE:
            from bleak.args.bluez import OrPattern  # noqa: PLC0415 (BlueZ-only module)

            bluez["or_patterns"] = [OrPattern(*pattern) for pattern in _PASSIVE_PATTERNS]
        self._bleak = BleakScanner(callback, scanning_mode=mode.value, bluez=bluez,  # type: ignore[arg-type]
                                   backend=backend)
        self._running = False
        self._on_running = on_running

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        try:
            await self._bleak.start()
        except (BleakError, OSError) as exc:
            raise _converted(exc) from exc
        self._running = True
        if self._on_running is not None:
            self._on_running(True)

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._on_running is not None:
            self._on_running(False)
        try:
            await self._bleak.stop()
        except (BleakError, OSError, EOFError) as exc:  # the adapter or bus is gone: nothing left to release
            _LOGGER.debug("stopping the BLE scanner: %s", exc)

    async def __aenter__(self) -> Scanner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _converted(exc: BaseException) -> BluetoothUnavailable:
    return as_unavailable(exc) or BluetoothUnavailable(f"Bluetooth scanning failed: {exc or type(exc).__name__}")
