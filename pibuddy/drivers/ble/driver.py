"""The BLE driver's shared state: parsers, the sensor cache, the devices last seen, and the GATT pool.

The supervised `BleService` runs a scanner that feeds `on_advertisement`; the tools read the cache. When no
scanner feeds this driver (`pibuddy tools call`, or the service waiting to retry), a tool that needs a
sensor runs a short scan itself (`refresh`), so tools never depend on the service being up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection

from bleak import BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError

from pibuddy.config import BleConfig, BleSensorConfig
from pibuddy.drivers.ble.adverts import Advert, ParserSet, Problem, protocol_of, service_info
from pibuddy.drivers.ble.errors import as_unavailable
from pibuddy.drivers.ble.gatt import GattPool
from pibuddy.drivers.ble.scanner import Scanner
from pibuddy.drivers.ble.sensors import SensorCache
from pibuddy.errors import DeviceUnreachable

_LOGGER = logging.getLogger(__name__)

_PROBLEM_LOG = {
    Problem.NEEDS_BINDKEY: "sends encrypted data and has no bindkey (set ble.sensors[].bindkey)",
    Problem.WRONG_BINDKEY: "sends data its bindkey cannot decrypt (check ble.sensors[].bindkey)",
    Problem.DOWNGRADE: "sent unencrypted data although it has a bindkey; ignored",
}


class BleDriver:
    """Args:
    config: the `ble` config section.
    scanner_backend: a bleak scanner backend class (tests); None for the platform's (BlueZ).
    client_backend: a bleak client backend class (tests); None for the platform's.
    clock: monotonic seconds, for last-seen times.
    """

    def __init__(self, config: BleConfig, *, scanner_backend: type[BaseBleakScanner] | None = None,
                 client_backend: type[BaseBleakClient] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.cache = SensorCache()
        self._scanner_backend = scanner_backend
        self._parsers = ParserSet({s.address: bytes.fromhex(s.bindkey.get_secret_value())
                                   for s in config.sensors if s.bindkey is not None})
        self._by_address = {s.address.upper(): s for s in config.sensors}
        self._gatt_addresses = {d.address.upper() for d in config.devices}
        self._seen_devices: dict[str, BLEDevice] = {}
        self._logged_problems: dict[str, Problem | None] = {}
        self._feeding = 0
        self._heard = asyncio.Event()
        self.last_heard: float | None = None
        self.gatt = GattPool(self._find_device, connect_timeout=config.connect_timeout,
                             idle_seconds=config.idle_disconnect_seconds, backend=client_backend)

    @property
    def sensors(self) -> tuple[BleSensorConfig, ...]:
        return self.config.sensors

    @property
    def scanning(self) -> bool:
        """Whether a scanner currently feeds this driver."""
        return self._feeding > 0

    def scanner(self) -> Scanner:
        """A scanner that feeds this driver while it runs (`async with driver.scanner():`)."""
        return Scanner(self.on_advertisement, adapter=self.config.adapter, mode=self.config.scanning_mode,
                       backend=self._scanner_backend, on_running=self._count_feeder)

    def on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        """bleak's detection callback: runs on the event loop for every advertisement heard."""
        now = self.clock()
        self.last_heard = now
        address = device.address.upper()
        if address in self._gatt_addresses:
            self._seen_devices[address] = device
        if protocol_of(adv.service_data) is None:
            return  # phones, watches ...: nothing to decode
        advert = self._parsers.parse(service_info(device, adv, source=self.config.adapter or "default", now=now))
        if advert is None:
            return
        self.cache.record(advert, adv.rssi, now)
        self._log_problem_change(advert)
        self._heard.set()

    async def refresh(self, addresses: Collection[str]) -> None:
        """If no scanner feeds this driver, scan until each address was heard (or, with none given, for the
        whole `scan_seconds`), at most `scan_seconds`. Raises `BluetoothUnavailable`."""
        if self.scanning:
            return
        wanted = {address.upper() for address in addresses}
        started = self.clock()
        async with self.scanner():
            deadline = asyncio.get_running_loop().time() + self.config.scan_seconds
            while not wanted or not all(self._heard_since(address, started) for address in wanted):
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    return
                self._heard.clear()
                try:  # not wait_for: on 3.11 it can swallow a racing cancel
                    async with asyncio.timeout(remaining):
                        await self._heard.wait()
                except TimeoutError:
                    return

    async def close(self) -> None:
        await self.gatt.close()

    def _count_feeder(self, running: bool) -> None:
        self._feeding += 1 if running else -1

    def _heard_since(self, address: str, since: float) -> bool:
        record = self.cache.get(address)
        return record is not None and record.heard_at >= since

    def _log_problem_change(self, advert: Advert) -> None:
        """One warning when a configured sensor starts failing, one info line when it recovers."""
        sensor = self._by_address.get(advert.address)
        if sensor is None or (advert.problem is None and not advert.readings):
            return
        before = self._logged_problems.get(advert.address)
        if advert.problem == before:
            return
        self._logged_problems[advert.address] = advert.problem
        if advert.problem is not None:
            _LOGGER.warning("BLE sensor %s (%s) %s", sensor.name, advert.address, _PROBLEM_LOG[advert.problem])
        elif before is not None:
            _LOGGER.info("BLE sensor %s (%s) decodes again", sensor.name, advert.address)

    async def _find_device(self, address: str) -> BLEDevice | None:
        """The device as the running scanner last saw it, else a short scan for it."""
        seen = self._seen_devices.get(address)
        if seen is not None:
            return seen
        bluez = {"adapter": self.config.adapter} if self.config.adapter else {}
        try:
            return await BleakScanner.find_device_by_address(
                address, timeout=self.config.connect_timeout / 2, bluez=bluez,  # type: ignore[arg-type]
                backend=self._scanner_backend)  # type: ignore[arg-type] # bleak's hint omits its None default
        except (BleakError, OSError) as exc:
            raise as_unavailable(exc) or DeviceUnreachable(f"searching for {address} failed: {exc}") from None
