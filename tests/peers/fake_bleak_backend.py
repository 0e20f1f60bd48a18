"""A fake radio for bleak's official `backend=` extension point: `FakeScanner` and `FakeClient`.

bleak constructs backend classes itself, so they share one module-level `AIR`: tests make sensors advertise
(`AIR.advertise`), place GATT peripherals in range (`AIR.add_peripheral`) and switch Bluetooth off
(`AIR.unavailable`). Call `AIR.reset()` between tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bleak.uuids import normalize_uuid_str

_SERVICE_UUID = "0000ffd0-0000-1000-8000-00805f9b34fb"


@dataclass(eq=False)
class FakePeripheral:
    """A connectable device: characteristic uuid -> current value; every write is logged."""

    address: str
    name: str
    values: dict[str, bytearray]
    writes: list[tuple[str, bytes, bool]] = field(default_factory=list)
    connects: int = 0
    reachable: bool = True
    clients: list[FakeClient] = field(default_factory=list)

    def drop_links(self) -> None:
        """The peripheral goes away: every connected client sees an unsolicited disconnect."""
        for client in list(self.clients):
            client.lose_link()


@dataclass
class Air:
    scanners: list[FakeScanner] = field(default_factory=list)
    peripherals: dict[str, FakePeripheral] = field(default_factory=dict)
    unavailable: BaseException | None = None
    scans_started: int = 0

    def reset(self) -> None:
        self.scanners.clear()
        self.peripherals.clear()
        self.unavailable = None
        self.scans_started = 0

    def advertise(self, address: str, *, name: str | None = None, service_data: dict[str, bytes] | None = None,
                  rssi: int = -60) -> None:
        data = service_data or {}
        adv = AdvertisementData(local_name=name, manufacturer_data={}, service_data=data,
                                service_uuids=list(data), tx_power=None, rssi=rssi, platform_data=())
        for scanner in list(self.scanners):
            scanner.hear(address, name, adv)

    def add_peripheral(self, address: str, name: str, values: dict[str, bytes]) -> FakePeripheral:
        peripheral = FakePeripheral(address.upper(), name,
                                    {normalize_uuid_str(uuid): bytearray(v) for uuid, v in values.items()})
        self.peripherals[peripheral.address] = peripheral
        return peripheral


AIR = Air()


class FakeScanner(BaseBleakScanner):
    """Hears what `AIR.advertise` sends while started; connectable peripherals advertise on start."""

    def __init__(self, detection_callback: AdvertisementDataCallback | None, service_uuids: list[str] | None,
                 scanning_mode: str, **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        self.scanning_mode = scanning_mode
        self.bluez: dict[str, Any] = kwargs.get("bluez", {})

    async def start(self) -> None:
        if AIR.unavailable is not None:
            raise AIR.unavailable
        self.seen_devices = {}
        AIR.scanners.append(self)
        AIR.scans_started += 1
        # connectable peripherals advertise shortly after (bleak registers stream callbacks after start())
        asyncio.get_running_loop().call_later(0.01, self._peripherals_advertise)

    async def stop(self) -> None:
        if self in AIR.scanners:
            AIR.scanners.remove(self)

    def _peripherals_advertise(self) -> None:
        for peripheral in AIR.peripherals.values():
            if peripheral.reachable and self in AIR.scanners:
                adv = AdvertisementData(local_name=peripheral.name, manufacturer_data={}, service_data={},
                                        service_uuids=[], tx_power=None, rssi=-50, platform_data=())
                self.hear(peripheral.address, peripheral.name, adv)

    def hear(self, address: str, name: str | None, adv: AdvertisementData) -> None:
        if not self.is_allowed_uuid(adv.service_uuids):
            return
        device = self.create_or_update_device(address, address, name, {"fake": True}, adv)
        self.call_detection_callbacks(device, adv)


class FakeClient(BaseBleakClient):
    """Connects to an `AIR` peripheral; reads and writes its values."""

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=kwargs.get("disconnected_callback"),
                         timeout=kwargs.get("timeout", 10.0))
        self.address = self.address.upper()
        self._connected = False

    @property
    def name(self) -> str:
        return self._peripheral().name

    @property
    def mtu_size(self) -> int:
        return 23

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if AIR.unavailable is not None:
            raise AIR.unavailable
        peripheral = AIR.peripherals.get(self.address)
        if peripheral is None or not peripheral.reachable:
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        services = BleakGATTServiceCollection()
        service = BleakGATTService(None, 1, _SERVICE_UUID)
        services.add_service(service)
        for handle, uuid in enumerate(peripheral.values, start=2):
            characteristic = BleakGATTCharacteristic(None, handle, uuid, ["read", "write"], lambda: 20, service)
            services.add_characteristic(characteristic)  # also adds it to `service`
        self.services = services
        self._connected = True
        peripheral.connects += 1
        peripheral.clients.append(self)

    async def disconnect(self) -> None:
        self._unlink()

    def lose_link(self) -> None:
        self._unlink()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise BleakError("the fake backend does not pair")

    async def unpair(self) -> None:
        raise BleakError("the fake backend does not pair")

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        return bytearray(self._live().values[characteristic.uuid])

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any, response: bool) -> None:
        peripheral = self._live()
        peripheral.writes.append((characteristic.uuid, bytes(data), response))
        peripheral.values[characteristic.uuid] = bytearray(data)

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any) -> bytearray:
        raise BleakError("the fake backend has no descriptors")

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        raise BleakError("the fake backend has no descriptors")

    async def start_notify(self, characteristic: BleakGATTCharacteristic,
                           callback: Callable[[bytearray], None], **kwargs: Any) -> None:
        raise BleakError("the fake backend does not notify")

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        raise BleakError("the fake backend does not notify")

    def _peripheral(self) -> FakePeripheral:
        return AIR.peripherals[self.address]

    def _live(self) -> FakePeripheral:
        if not self._connected:
            raise BleakError("Not connected")
        return self._peripheral()

    def _unlink(self) -> None:
        self._connected = False
        peripheral = AIR.peripherals.get(self.address)
        if peripheral is not None and self in peripheral.clients:
            peripheral.clients.remove(self)
