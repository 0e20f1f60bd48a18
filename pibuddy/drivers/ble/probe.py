"""`pibuddy check`'s Bluetooth row: can a scan start, and is anything heard?"""

from __future__ import annotations

import asyncio
from typing import Final

from pibuddy.config import BleConfig
from pibuddy.drivers.ble.errors import BluetoothUnavailable
from pibuddy.drivers.ble.scanner import Scanner
from pibuddy.probe import ProbeResult

_LISTEN_SECONDS: Final = 1.0


async def probe_bluetooth(config: BleConfig) -> ProbeResult:
    heard: set[str] = set()
    scanner = Scanner(lambda device, adv: heard.add(device.address), adapter=config.adapter,
                      mode=config.scanning_mode)
    try:
        async with scanner:
            await asyncio.sleep(_LISTEN_SECONDS)
    except BluetoothUnavailable as exc:
        return ProbeResult(False, exc.message)
    where = config.adapter or "the default adapter"
    return ProbeResult(True, f"scanning works on {where}; {len(heard)} devices heard in {_LISTEN_SECONDS:g} s")
