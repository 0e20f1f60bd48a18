"""Advertisements into sensor readings: glue between bleak and the Bluetooth-Devices parsers.

bthome-ble decodes BTHome (service data 0xFCD2, and v1's 0x181C/0x181E); xiaomi-ble decodes MiBeacon
(0xFE95). Each parser keeps per-device state (packet id, encryption counter, key verification), so there is
exactly one parser instance per address and protocol, made on the first advertisement that needs it.

The parsers' `SensorUpdate` accumulates every value ever seen, so whether *this* advertisement brought fresh
values is decided here: an encrypted frame counts only if it decrypted, and a plaintext frame from a sensor
that has a bindkey is a downgrade and is refused (bthome-ble detects that itself, xiaomi-ble does not).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bthome_ble import BTHomeBluetoothDeviceData
from habluetooth import BluetoothServiceInfoBleak
from xiaomi_ble import XiaomiBluetoothDeviceData

from pibuddy.drops import DropCounter

_LOGGER = logging.getLogger(__name__)
# The parsers log a warning or error for every advertisement they cannot decrypt or decode: every few seconds
# per sensor, neighbours' included. PiBuddy reports each configured sensor's problem once instead.
for _parser_logger in ("bthome_ble", "xiaomi_ble"):
    logging.getLogger(_parser_logger).setLevel(logging.CRITICAL)

BTHOME_UUIDS: Final = frozenset(
    f"0000{short}-0000-1000-8000-00805f9b34fb" for short in ("fcd2", "181c", "181e")
)
MIBEACON_UUID: Final = "0000fe95-0000-1000-8000-00805f9b34fb"
# Values every parser adds that are not readings of the sensor itself (RSSI is tracked separately).
_NOT_READINGS: Final = frozenset({"signal_strength"})
# Sensors nobody configured (the neighbours') are still parsed for `ble_list_sensors`, up to this many.
_MAX_TRACKED_ADDRESSES: Final = 64


class Protocol(StrEnum):
    BTHOME = "BTHome"
    MIBEACON = "MiBeacon"


class Problem(StrEnum):
    """Why an advertisement from a known sensor brought no values."""

    NEEDS_BINDKEY = "needs_bindkey"
    WRONG_BINDKEY = "wrong_bindkey"
    DOWNGRADE = "downgrade"


@dataclass(frozen=True, slots=True)
class Reading:
    """One decoded quantity, e.g. key "temperature", name "Temperature", 21.5, "°C"."""

    key: str
    name: str
    value: float | int | str | bool
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Advert:
    """What the parsers made of one advertisement; `readings` is empty when `problem` is set."""

    address: str
    protocol: Protocol
    title: str
    readings: tuple[Reading, ...]
    encrypted: bool
    problem: Problem | None = None


def service_info(device: BLEDevice, adv: AdvertisementData, *, source: str, now: float | None = None,
                 ) -> BluetoothServiceInfoBleak:
    """The parsers' input type (habluetooth's), built from what bleak reports."""
    return BluetoothServiceInfoBleak(
        name=adv.local_name or device.name or device.address,
        address=device.address,
        rssi=adv.rssi,
        manufacturer_data=adv.manufacturer_data,
        service_data=adv.service_data,
        service_uuids=adv.service_uuids,
        source=source,
        device=device,
        advertisement=adv,
        connectable=True,
        time=time.monotonic() if now is None else now,  # bthome-ble needs it (dedupe window)
        tx_power=adv.tx_power,
    )


def protocol_of(service_data: dict[str, bytes]) -> Protocol | None:
    """Which parser an advertisement's service data is for, if any."""
    if MIBEACON_UUID in service_data:
        return Protocol.MIBEACON
    if not BTHOME_UUIDS.isdisjoint(service_data):
        return Protocol.BTHOME
    return None


_Parser = BTHomeBluetoothDeviceData | XiaomiBluetoothDeviceData


class ParserSet:
    """One parser per (address, protocol); `parse` never raises for a malformed frame.

    Args:
        bindkeys: address (upper case) -> bindkey bytes, for the sensors that encrypt.
    """

    def __init__(self, bindkeys: dict[str, bytes] | None = None) -> None:
        self._bindkeys = {address.upper(): key for address, key in (bindkeys or {}).items()}
        self._parsers: dict[tuple[str, Protocol], _Parser] = {}
        self._drops = DropCounter("advertisements from untracked sensors", _LOGGER, interval=600)

    def parse(self, info: BluetoothServiceInfoBleak) -> Advert | None:
        """The readings in `info`, or None when no parser handles it (or it is garbage)."""
        protocol = protocol_of(info.service_data)
        if protocol is None:
            return None
        address = info.address.upper()
        parser = self._parser(address, protocol)
        if parser is None:
            return None
        try:
            update = parser.update(info)
        except Exception as exc:  # a parser bug or a frame it chokes on must not stop the scanner
            _LOGGER.warning("BLE %s: dropped a malformed %s advertisement (%s: %s)", address, protocol,
                            type(exc).__name__, exc)
            return None
        if not update.devices and not update.title:
            return None  # not a device this parser knows (unknown MiBeacon product id, bad version ...)
        encrypted, carries_values = _frame_flags(protocol, info.service_data, parser)
        problem = _problem(parser, encrypted) if carries_values else None
        readings = _readings(update) if carries_values and problem is None else ()
        return Advert(address, protocol, update.title or address, readings, encrypted, problem)

    def _parser(self, address: str, protocol: Protocol) -> _Parser | None:
        parser = self._parsers.get((address, protocol))
        if parser is not None:
            return parser
        if address not in self._bindkeys and len(self._parsers) >= _MAX_TRACKED_ADDRESSES:
            self._drops.count(f"more than {_MAX_TRACKED_ADDRESSES} sensors nearby")
            return None
        bindkey = self._bindkeys.get(address)
        created: _Parser = (BTHomeBluetoothDeviceData(bindkey) if protocol is Protocol.BTHOME
                            else XiaomiBluetoothDeviceData(bindkey))
        self._parsers[(address, protocol)] = created
        return created


def _frame_flags(protocol: Protocol, service_data: dict[str, bytes], parser: _Parser) -> tuple[bool, bool]:
    """(encrypted, carries values) for this very frame.

    xiaomi-ble keeps its `encryption_scheme` from the last encrypted frame, so for MiBeacon both flags come
    from the frame control word (bit 3: encrypted, bit 6: object included); bthome-ble sets the scheme anew
    for every frame.
    """
    if protocol is Protocol.MIBEACON:
        frame = service_data[MIBEACON_UUID]
        control = frame[0] | frame[1] << 8 if len(frame) >= 2 else 0
        return bool(control & 0x08), bool(control & 0x40)
    return parser.encryption_scheme.name != "NONE", True


def _problem(parser: _Parser, encrypted: bool) -> Problem | None:
    has_key = bool(parser.bindkey)
    if not encrypted:
        return Problem.DOWNGRADE if has_key else None
    if not has_key:
        return Problem.NEEDS_BINDKEY
    if parser.decryption_failed or not parser.bindkey_verified:
        return Problem.WRONG_BINDKEY
    return None


def _readings(update: Any) -> tuple[Reading, ...]:
    readings = []
    for key, value in update.entity_values.items():
        if key.key in _NOT_READINGS or value.native_value is None:
            continue
        description = update.entity_descriptions.get(key)
        unit = description.native_unit_of_measurement if description is not None else None
        readings.append(Reading(key.key, value.name, value.native_value, str(unit) if unit else ""))
    for key, value in update.binary_entity_values.items():
        if value.native_value is not None:
            readings.append(Reading(key.key, value.name, bool(value.native_value)))
    return tuple(readings)
