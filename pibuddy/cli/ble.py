"""`pibuddy ble scan`: list nearby Bluetooth LE devices and what the BTHome/MiBeacon parsers decode."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pibuddy.cli.common import load_or_exit

NAME = "ble"
HELP = "Bluetooth LE: `scan` lists nearby devices and their decoded sensor values, to pick names for ble.sensors"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["scan"], help="scan: listen and list what is heard")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to listen (default 10)")


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    if args.seconds <= 0:
        print("pibuddy: --seconds must be positive", file=sys.stderr)
        return 2
    from pibuddy.drivers.ble.errors import BluetoothUnavailable  # noqa: PLC0415 - bleak is slow to import
    from pibuddy.drivers.ble.nearby import format_scan, scan_nearby  # noqa: PLC0415

    print(f"listening for {args.seconds:g} s ...", file=sys.stderr)
    try:
        found = asyncio.run(scan_nearby(config.ble, args.seconds))
    except BluetoothUnavailable as exc:
        print(f"pibuddy: {exc.message}", file=sys.stderr)
        return 1
    print(format_scan(found))
    return 0
