"""`pibuddy openclaw status` and `pibuddy openclaw invoke-self COMMAND '{...}'`: troubleshooting the node."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from pibuddy.cli.common import json_object_arg, load_or_exit
from pibuddy.config import Config

NAME = "openclaw"
HELP = "show the OpenClaw node's identity and pairing state, or invoke one of its commands through the gateway"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status", "invoke-self"],
                        help="status: identity, pairing state, last error; invoke-self: call a command of this "
                             "node through the gateway (needs `pibuddy run` with openclaw.enabled)")
    parser.add_argument("command", nargs="?", default="device.info",
                        help="invoke-self: the node command (default device.info)")
    parser.add_argument("params", nargs="?", default="{}", help="invoke-self: JSON object of params (default {})")
    parser.add_argument("--timeout", type=float, default=15.0, help="invoke-self: seconds to wait (default 15)")


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    if args.action == "status":
        print(status_text(config))
        return 0
    params = json_object_arg(args.params, "the params")
    if params is None:
        return 1
    return asyncio.run(_invoke_self(config, args.command, params, args.timeout))


def status_text(config: Config) -> str:
    from pibuddy.openclaw.identity import IDENTITY_FILE, TokenStore  # noqa: PLC0415 (keep --help light)
    from pibuddy.openclaw.status import StatusFile  # noqa: PLC0415
    from pibuddy.statedir import StateDir  # noqa: PLC0415

    cfg = config.openclaw
    state = StateDir(config.device.resolved_state_dir)
    lines = [f"OpenClaw node: {'enabled' if cfg.enabled else 'disabled'} (openclaw.enabled), transport {cfg.transport}",
             f"gateway: {cfg.gateway_url}" + (f" via MQTT {cfg.mqtt_host}:{cfg.mqtt_port}"
                                              if cfg.transport == "mqtt" else "")]
    identity = state.read_json(IDENTITY_FILE)
    device_id = str(identity.get("deviceId", "")) if identity else ""
    if not device_id:
        lines.append(f"identity: none yet (created in {state.path} on the first connect)")
    else:
        lines.append(f"device id: {device_id}")
        lines.append(f"device tokens: {', '.join(TokenStore(state, device_id).roles()) or 'none (not paired yet)'}")
    for role, entry in StatusFile(state).read().items():
        if isinstance(entry, dict):
            lines += _role_lines(role, entry)
    return "\n".join(lines)


def _role_lines(role: str, entry: dict[str, Any]) -> list[str]:
    when = entry.get("updatedAtMs")
    since = datetime.fromtimestamp(when / 1000).strftime("%Y-%m-%d %H:%M:%S") if isinstance(when, int) else "?"
    lines = [f"{role}: {entry.get('state', 'unknown')} since {since}"]
    for key, label in (("serverVersion", "gateway version"), ("authMethod", "authenticated with"),
                       ("commands", "commands"), ("pairingRequestId", "pairing request"),
                       ("advice", "to do"), ("lastError", "last error")):
        if entry.get(key):
            lines.append(f"  {label}: {entry[key]}")
    return lines


async def _invoke_self(config: Config, command: str, params: dict[str, Any], wait_seconds: float) -> int:
    from pibuddy.errors import ConnectionLost  # noqa: PLC0415
    from pibuddy.openclaw.errors import GatewayRejected, OpenClawError  # noqa: PLC0415
    from pibuddy.openclaw.handshake import SessionSpec  # noqa: PLC0415
    from pibuddy.openclaw.identity import DeviceIdentity, TokenStore  # noqa: PLC0415
    from pibuddy.openclaw.operator import Operator  # noqa: PLC0415
    from pibuddy.openclaw.profile import OPERATOR_ROLE, OPERATOR_SCOPES, open_session  # noqa: PLC0415
    from pibuddy.statedir import StateDir  # noqa: PLC0415

    state = StateDir(config.device.resolved_state_dir)
    identity = DeviceIdentity.load_or_create(state)
    tokens = TokenStore(state, identity.device_id)
    spec = SessionSpec(role=OPERATOR_ROLE, scopes=OPERATOR_SCOPES)
    try:
        async with open_session(config, identity, tokens, spec) as session:
            assert session.hello is not None
            if session.hello.device_token:
                tokens.put(OPERATOR_ROLE, session.hello.device_token, session.hello.scopes)
            result = await Operator(session).invoke(identity.device_id, command, params,
                                                    timeout_ms=int(wait_seconds * 1000))
    except GatewayRejected as exc:
        print(f"pibuddy: {exc}", file=sys.stderr)
        return 1
    except (OpenClawError, ConnectionLost) as exc:
        print(f"pibuddy: {command} failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
