"""`pibuddy miot setup | devices | call`: log in to the Mi account and save its devices, list them, and call
one by hand for troubleshooting."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pibuddy.cli.common import load_or_exit

if TYPE_CHECKING:
    from pibuddy.config import MiotConfig
    from pibuddy.drivers.miot.cloud import MiCloud
    from pibuddy.drivers.miot.cloud_login import MiAccount
    from pibuddy.drivers.miot.driver import MiotDriver
    from pibuddy.drivers.miot.inventory import Device
    from pibuddy.drivers.miot.spec_store import SpecStore

NAME = "miot"
HELP = "Xiaomi MIoT devices: log in and save them (setup), list them, or call one"
Print = Callable[[str], None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["setup", "devices", "call"],
                        help="setup: log in to the Mi account and save its devices; devices: list them; "
                             "call: read or control one")
    parser.add_argument("name", nargs="?", help="call: the device, as you would say it")
    parser.add_argument("control", nargs="?", help="call: a control or action (omit to read the state)")
    parser.add_argument("value", nargs="?", help="call: the value (JSON or text), e.g. true, 40, sleep")
    parser.add_argument("--qr", action="store_true", help="setup: log in by scanning a QR code with Mi Home")
    parser.add_argument("--username", help="setup: the Mi account (default: miot.cloud_username)")
    parser.add_argument("--refresh-specs", action="store_true", help="setup: fetch every spec again")
    parser.add_argument("--via", choices=["lan", "cloud"], help="call: use only this path")


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    from pibuddy.drivers.miot.driver import MiotDriver  # noqa: PLC0415 - keep `pibuddy --help` light
    from pibuddy.drivers.miot.transport import TransportKind  # noqa: PLC0415

    state_dir = config.device.resolved_state_dir
    driver = MiotDriver(config.miot, state_dir, backend=TransportKind(args.via) if args.via else None)
    match args.action:
        case "setup":
            username, password = _credentials(args, config.miot)
            return asyncio.run(_setup(driver, username, password, qr=args.qr, refresh=args.refresh_specs))
        case "devices":
            print(format_devices(driver, driver.devices()))
            return 0
    if not args.name:
        print("pibuddy: miot call needs a device name (see `pibuddy miot devices`)", file=sys.stderr)
        return 2
    return asyncio.run(call(driver, args.name, args.control, parse_value(args.value)))


def _credentials(args: argparse.Namespace, config: MiotConfig) -> tuple[str | None, str | None]:
    """The account and password from the options and config, asking for what is missing (not with --qr)."""
    username = args.username or config.cloud_username
    password = config.cloud_password.get_secret_value() if config.cloud_password else None
    if not args.qr:
        username = username or input("Mi account (e-mail, phone or id): ").strip()
        password = password or getpass.getpass("Mi account password: ")
    return username, password


async def _setup(driver: MiotDriver, username: str | None, password: str | None, *, qr: bool, refresh: bool) -> int:
    from pibuddy.drivers.miot.cloud_login import MiAccount  # noqa: PLC0415

    try:
        return await run_setup(MiAccount(timeout=driver.config.cloud_timeout), driver.cloud, driver.specs, driver,
                               username=username, password=password, qr=qr, refresh=refresh)
    finally:
        await driver.close()


async def run_setup(account: MiAccount, cloud: MiCloud, specs: SpecStore, driver: MiotDriver, *,
                    username: str | None, password: str | None, qr: bool = False, refresh: bool = False,
                    out: Print = print) -> int:
    """Log in, fetch the account's devices with tokens and rooms, save them and their specs. Exit code."""
    from pibuddy.drivers.miot.errors import TwoFactorRequired  # noqa: PLC0415
    from pibuddy.errors import DriverError  # noqa: PLC0415

    try:
        if qr:
            pending = await account.start_qr_login()
            out(f"Scan the QR code at {pending.image_url} with the Mi Home app (or open {pending.login_url}).")
            session = await account.finish_qr_login(pending)
        else:
            if not (username and password):
                out("pibuddy: setup needs the Mi account and its password (or --qr)")
                return 2
            session = await account.login(username, password)
        cloud.use_session(session)
        devices = await cloud.devices()
    except TwoFactorRequired as exc:
        out(f"pibuddy: {exc.message}" + (f"\n  {exc.url}" if exc.url else ""))
        return 1
    except DriverError as exc:
        out(f"pibuddy: {exc.message}")
        return 1
    devices = [await _with_urn(specs, d) for d in devices]
    driver.inventory.save_cloud_devices(devices)
    missing = []
    for device in devices:
        if device.urn is None:
            missing.append(device.name)
            continue
        try:
            await specs.get(device.urn, refresh=refresh)
        except DriverError as exc:
            missing.append(f"{device.name} ({exc.message})")
    out(format_devices(driver, driver.devices()))
    out(f"\nSaved {len(devices)} devices and the login in {driver.inventory.path} (readable only by PiBuddy).")
    if missing:
        out("No spec yet for: " + ", ".join(missing) + ". They are fetched again on start.")
    out("Turn the driver on with `miot: {enabled: true}` in config.yaml. To rename a device or give it aliases, "
        "add it under miot.devices by did, e.g.\n" + _yaml_example(devices))
    return 0


async def _with_urn(specs: SpecStore, device: Device) -> Device:
    """The device with its spec URN, looked up by model when the cloud did not say (best effort)."""
    from dataclasses import replace  # noqa: PLC0415

    from pibuddy.errors import DriverError  # noqa: PLC0415

    if device.urn is not None or device.model is None:
        return device
    try:
        urn = await specs.urn_for_model(device.model)
    except DriverError:
        return device
    return replace(device, urn=urn) if urn else device


async def call(driver: MiotDriver, name: str, control: str | None, value: Any, *, out: Print = print) -> int:
    from pibuddy.drivers.miot.tools import control as control_devices  # noqa: PLC0415
    from pibuddy.drivers.miot.tools import get_state  # noqa: PLC0415
    from pibuddy.errors import DriverError  # noqa: PLC0415

    try:
        out(await (get_state(driver, name) if control is None else control_devices(driver, name, control, value)))
        return 0
    except DriverError as exc:
        out(f"pibuddy: {exc.message}")
        return 1
    finally:
        await driver.close()


def parse_value(text: str | None) -> Any:
    """`true` -> True, `40` -> 40, `[1, 2]` -> [1, 2]; anything else stays text."""
    import json  # noqa: PLC0415

    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def format_devices(driver: MiotDriver, devices: list[Device]) -> str:
    rows = [("NAME", "ROOM", "MODEL", "DID", "PATH", "STATE")]
    for device in devices:
        path = "lan+cloud" if device.lan_ready and device.did else "lan" if device.lan_ready else "cloud"
        state = {True: "online", False: "offline", None: "?"}[driver.online(device)]
        rows.append((device.name, device.room or "-", device.model or "-", device.did or "-", path, state))
    if len(rows) == 1:
        return "No Mi Home devices: run `pibuddy miot setup`, or add miot.devices to config.yaml."
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
                     for row in rows)


def _yaml_example(devices: list[Device]) -> str:
    shown = devices[:2]
    lines = ["  miot:", "    devices:"]
    for device in shown:
        lines += [f"      - name: {device.name}", "        aliases: []", f"        room: {device.room or ''}",
                  f'        did: "{device.did}"']
    return "\n".join(lines)
