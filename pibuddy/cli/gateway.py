"""`pibuddy gateway status` and `pibuddy gateway pair` (ask the running gateway's API) and
`pibuddy gateway credentials MAC`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from pibuddy.cli.common import load_or_exit

NAME = "gateway"
HELP = "show the devices connected to the local gateway, open pairing, or print MQTT credentials for a device"
_API_TIMEOUT_SECONDS = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status", "pair", "credentials"],
                        help="status: devices connected now; pair: accept new devices for gateway.pairing_minutes; "
                             "credentials: the OTA `mqtt` object for a device")
    parser.add_argument("mac", nargs="?", help="credentials: the device's MAC, e.g. aa:bb:cc:dd:ee:ff")
    parser.add_argument("--client-id", default=None,
                        help="credentials: the device's Client-Id (UUID) as third client-id part (default: MAC)")
    parser.add_argument("--board", default="default", help="credentials: board type for the GID_ group")
    parser.add_argument("--json", action="store_true", help="status: print the API's JSON as it is")


def run(args: argparse.Namespace) -> int:
    if args.action == "credentials" and not args.mac:
        print("pibuddy: gateway credentials needs the device's MAC address", file=sys.stderr)
        return 2
    config = load_or_exit(args)
    from pibuddy.gateway.credentials import daily_api_token, issue_mqtt_credentials  # noqa: PLC0415
    from pibuddy.gateway.service import advertised_host, signature_key  # noqa: PLC0415
    from pibuddy.statedir import StateDir  # noqa: PLC0415

    gateway = config.gateway
    key = signature_key(gateway, StateDir(config.device.resolved_state_dir))
    if args.action == "credentials":
        host = advertised_host(gateway)
        try:
            mqtt = issue_mqtt_credentials(key, mac=args.mac, client_uuid=args.client_id, board_type=args.board,
                                          endpoint=f"{host}:{gateway.mqtt_port}", ip=host)
        except ValueError as exc:
            print(f"pibuddy: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({"mqtt": mqtt}, indent=2))
        return 0
    api_host = "127.0.0.1" if gateway.host in ("", "0.0.0.0") else gateway.host
    pairing = args.action == "pair"
    url = f"http://{api_host}:{gateway.api_port}/api/{'pairing' if pairing else 'devices'}"
    token = daily_api_token(key, dt.date.today())
    import httpx  # noqa: PLC0415

    try:
        response = httpx.request("POST" if pairing else "GET", url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=_API_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        print(f"pibuddy: the gateway API at {url} did not answer ({exc}); is `pibuddy run` up?", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"pibuddy: the gateway API answered {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    body = response.json()
    if pairing:
        print(f"pairing open for {body['pairingSeconds'] // 60} minutes: switch the new device on (or restart it) "
              "now" if body["admission"] == "pairing" else "gateway.admission is open: every device is accepted")
        return 0
    print(json.dumps(body, indent=2, ensure_ascii=False) if args.json else format_status(body))
    return 0


def format_status(body: dict[str, Any]) -> str:
    """The API's device list as a table, then one line per chat server."""
    lines = [_device_table(body.get("devices", []))]
    for upstream in body.get("upstreams", []):
        health = "healthy" if upstream["healthy"] else "cooling down"
        lines.append(f"chat server {upstream['url']}: {health}, {upstream['activeSessions']} active, "
                     f"{upstream['sessionsTotal']} sessions, {upstream['failures']} failures")
    return "\n".join(lines)


def _device_table(devices: list[dict[str, Any]]) -> str:
    if not devices:
        return "no devices connected"
    rows = [("MAC", "IP", "STATE", "SINCE", "UDP IN/OUT", "UPSTREAM")]
    rows += [(d["mac"], d["ip"], d["state"], d["connectedAt"], f"{d['udp']['packetsIn']}/{d['udp']['packetsOut']}",
              d["upstream"] or "-") for d in devices]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=False)) + f"  {row[-1]}"
                     for row in rows)
