"""`pibuddy ble scan`: what is advertising nearby and what the parsers make of it, to pick names for config."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner

from pibuddy.config import BleConfig
from pibuddy.drivers.ble.adverts import Advert, ParserSet, service_info
from pibuddy.drivers.ble.scanner import Scanner
from pibuddy.drivers.ble.sensors import reading_text

# A crowded place (phones, watches, trackers) must not grow the table without bound.
_MAX_DEVICES: Final = 500
_PROBLEM_TEXT: Final = {
    "needs_bindkey": "encrypted: set its bindkey",
    "wrong_bindkey": "encrypted: the bindkey does not decrypt it",
    "downgrade": "sent plaintext although a bindkey is set",
}


@dataclass(slots=True)
class Nearby:
    address: str
    name: str | None = None
    rssi: int | None = None
    advert: Advert | None = None
    configured_as: str | None = None


async def scan_nearby(config: BleConfig, seconds: float, *,
                      backend: type[BaseBleakScanner] | None = None) -> list[Nearby]:
    """Listen for `seconds`; every device heard, loudest first. Raises `BluetoothUnavailable`."""
    parsers = ParserSet({s.address: bytes.fromhex(s.bindkey.get_secret_value())
                         for s in config.sensors if s.bindkey is not None})
    names = {s.address.upper(): s.name for s in config.sensors} | {d.address.upper(): d.name for d in config.devices}
    found: dict[str, Nearby] = {}

    def heard(device: BLEDevice, adv: AdvertisementData) -> None:
        address = device.address.upper()
        entry = found.get(address)
        if entry is None:
            if len(found) >= _MAX_DEVICES:
                return
            entry = found[address] = Nearby(address, configured_as=names.get(address))
        entry.name = adv.local_name or device.name or entry.name
        entry.rssi = adv.rssi
        advert = parsers.parse(service_info(device, adv, source=config.adapter or "default"))
        if advert is not None and (advert.readings or advert.problem or entry.advert is None):
            entry.advert = advert

    async with Scanner(heard, adapter=config.adapter, mode=config.scanning_mode, backend=backend):
        await asyncio.sleep(seconds)
    return sorted(found.values(), key=lambda entry: -(entry.rssi if entry.rssi is not None else -999))


def format_scan(found: list[Nearby]) -> str:
    rows = [("ADDRESS", "RSSI", "NAME", "CONFIGURED AS", "DECODED")]
    rows += [(entry.address, "" if entry.rssi is None else str(entry.rssi), entry.name or "",
              entry.configured_as or "", _decoded(entry.advert)) for entry in found]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join([*(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)), row[4]]).rstrip()
             for row in rows]
    return "\n".join(lines) if found else lines[0] + "\n(nothing heard)"


def _decoded(advert: Advert | None) -> str:
    if advert is None:
        return "-"
    protocol = f"{advert.protocol}{' (encrypted)' if advert.encrypted else ''}"
    if advert.problem is not None:
        return f"{protocol}: {_PROBLEM_TEXT[advert.problem.value]}"
    if not advert.readings:
        return f"{protocol} {advert.title}: no readings yet"
    return f"{protocol} {advert.title}: {', '.join(reading_text(r) for r in advert.readings)}"
