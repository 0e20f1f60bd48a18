"""Configured GATT devices (a bulb, a plug, a relay board): connect on demand, keep briefly, write and read.

Connections go through bleak-retry-connector (`establish_connection` retries the transient BlueZ failures)
and stay open `idle_seconds` after their last use, so "on, then brightness 50" costs one connection. One
lock per device serializes its operations. bleak's exceptions are converted here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from bleak import BleakClient
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import BleakCharacteristicNotFoundError, BleakError, BleakGATTProtocolError
from bleak_retry_connector import BleakClientWithServiceCache, establish_connection

from pibuddy.config import GattDeviceConfig, GattReadConfig, GattValueFormat, GattWriteConfig
from pibuddy.drivers.ble.errors import as_unavailable
from pibuddy.errors import DeviceUnreachable, DriverError, InvalidArguments

_LOGGER = logging.getLogger(__name__)
_CONNECT_ATTEMPTS: Final = 3
_PLACEHOLDER: Final = re.compile(r"\{value:0([2468])x\}")
_STRUCTS: Final = {
    GattValueFormat.UINT8: "<B", GattValueFormat.INT8: "<b",
    GattValueFormat.UINT16LE: "<H", GattValueFormat.INT16LE: "<h",
    GattValueFormat.UINT32LE: "<I", GattValueFormat.INT32LE: "<i",
}

FindDevice = Callable[[str], Awaitable[BLEDevice | None]]
T = TypeVar("T")


def needs_value(action: GattWriteConfig) -> bool:
    return _PLACEHOLDER.search(action.data) is not None


def render(action: GattWriteConfig, value: int | None) -> bytes:
    """The bytes an action writes, with `value` in its placeholders; `InvalidArguments` when the value is
    missing or out of the action's range."""
    if not needs_value(action):
        return bytes.fromhex(action.data)
    if value is None:
        raise InvalidArguments(f"this action needs a value from {action.minimum} to {action.maximum}")
    if not action.minimum <= value <= action.maximum:
        raise InvalidArguments(f"the value must be from {action.minimum} to {action.maximum}, not {value}")

    def hex_digits(match: re.Match[str]) -> str:
        width = int(match.group(1))
        if value < 0 or value >= 16**width:
            raise InvalidArguments(f"{value} does not fit in {width // 2} byte(s)")
        return f"{value:0{width}x}"

    return bytes.fromhex(_PLACEHOLDER.sub(hex_digits, action.data))


def decode(data: bytes, reading: GattReadConfig) -> float | int | str:
    """A characteristic's bytes as the number or text the config describes; `DriverError` if too short."""
    if reading.format is GattValueFormat.UTF8:
        return data.decode("utf-8", errors="replace").rstrip("\x00")
    if reading.format is GattValueFormat.HEX:
        return data.hex()
    layout = _STRUCTS[reading.format]
    size = struct.calcsize(layout)
    if len(data) < size:
        raise DriverError(f"the device sent {len(data)} byte(s) where {size} were expected", code="bad_reply")
    number = struct.unpack_from(layout, data)[0]
    return number if reading.scale == 1 else round(number * reading.scale, 6)


@dataclass(eq=False)
class _Link:
    client: BleakClient
    idle: asyncio.TimerHandle | None = None


class GattPool:
    """Connections to configured GATT devices, opened on demand and closed when idle.

    Args:
        find_device: resolves an address to a `BLEDevice` (from the running scanner, or a short scan).
        connect_timeout: seconds to find and connect before giving up.
        idle_seconds: seconds a connection stays open after its last use.
        backend: a bleak client backend class (tests), None for the platform's.
    """

    def __init__(self, find_device: FindDevice, *, connect_timeout: float, idle_seconds: float,
                 backend: type[BaseBleakClient] | None = None) -> None:
        self._find_device = find_device
        self._connect_timeout = connect_timeout
        self._idle_seconds = idle_seconds
        self._backend = backend
        self._links: dict[str, _Link] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def connected(self, address: str) -> bool:
        link = self._links.get(address.upper())
        return link is not None and link.client.is_connected

    async def write(self, device: GattDeviceConfig, action: GattWriteConfig, data: bytes) -> None:
        async def operation(client: BleakClient) -> None:
            await client.write_gatt_char(action.characteristic, data, response=action.response)

        await self._run(device, action.characteristic, operation)

    async def read(self, device: GattDeviceConfig, reading: GattReadConfig) -> bytes:
        async def operation(client: BleakClient) -> bytes:
            return bytes(await client.read_gatt_char(reading.characteristic))

        return await self._run(device, reading.characteristic, operation)

    async def close(self) -> None:
        for address in list(self._links):
            await self._disconnect(address)
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def _run(self, device: GattDeviceConfig, uuid: str, operation: Callable[[BleakClient], Awaitable[T]]) -> T:
        address = device.address.upper()
        lock = self._locks.setdefault(address, asyncio.Lock())
        async with lock:
            client = await self._client(device)
            try:
                result = await operation(client)
            except BleakCharacteristicNotFoundError:
                raise DriverError(f"the {device.name} has no characteristic {uuid}; check ble.devices in the "
                                  "configuration", code="bad_config") from None
            except BleakGATTProtocolError as exc:
                raise DriverError(f"the {device.name} refused the request ({exc})", code="rejected") from None
            except (BleakError, OSError, EOFError, TimeoutError) as exc:
                await self._drop(address)
                raise _unreachable(device, exc, "lost the connection to") from None
            self._schedule_idle(address)
            return result

    async def _client(self, device: GattDeviceConfig) -> BleakClient:
        address = device.address.upper()
        link = self._links.get(address)
        if link is not None and link.client.is_connected:
            if link.idle is not None:
                link.idle.cancel()
            return link.client
        await self._drop(address)
        try:
            async with asyncio.timeout(self._connect_timeout):
                ble_device = await self._find_device(address)
                if ble_device is None:
                    raise DeviceUnreachable(f"the {device.name} was not found; it may be out of range or switched off",
                                            device=device.name)
                client = await establish_connection(
                    BleakClientWithServiceCache, ble_device, device.name,
                    disconnected_callback=lambda gone: self._on_disconnected(address, gone),
                    max_attempts=_CONNECT_ATTEMPTS, backend=self._backend,
                )
        except DriverError:
            raise
        except (BleakError, OSError, EOFError, TimeoutError) as exc:
            raise _unreachable(device, exc, "could not connect to") from None
        _LOGGER.info("BLE: connected to %s (%s)", device.name, address)
        self._links[address] = _Link(client)
        return client

    def _on_disconnected(self, address: str, client: BleakClient) -> None:
        """An unsolicited disconnect: forget the link, the next call reconnects."""
        link = self._links.get(address)
        if link is not None and link.client is client:
            _LOGGER.info("BLE: %s disconnected", address)
            self._forget(address)

    def _schedule_idle(self, address: str) -> None:
        link = self._links.get(address)
        if link is None:
            return
        if link.idle is not None:
            link.idle.cancel()
        link.idle = asyncio.get_running_loop().call_later(self._idle_seconds, self._expire, address)

    def _expire(self, address: str) -> None:
        task = asyncio.get_running_loop().create_task(self._disconnect(address))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _disconnect(self, address: str) -> None:
        async with self._locks.setdefault(address, asyncio.Lock()):
            await self._drop(address)

    async def _drop(self, address: str) -> None:
        link = self._forget(address)
        if link is None:
            return
        with contextlib.suppress(BleakError, OSError, EOFError, TimeoutError):
            await asyncio.wait_for(link.client.disconnect(), self._connect_timeout)
        _LOGGER.debug("BLE: closed the connection to %s", address)

    def _forget(self, address: str) -> _Link | None:
        link = self._links.pop(address, None)
        if link is not None and link.idle is not None:
            link.idle.cancel()
        return link


def _unreachable(device: GattDeviceConfig, exc: BaseException, what: str) -> DriverError:
    unavailable = as_unavailable(exc)
    if unavailable is not None:
        return unavailable
    _LOGGER.info("BLE: %s %s: %s", what, device.address, exc or type(exc).__name__)
    return DeviceUnreachable(f"{what[0].upper()}{what[1:]} the {device.name}; it may be out of range or switched off",
                             device=device.name)
