"""`pibuddy status`: how the running service is, what it heard and did."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pibuddy.cli.ask import Failed, ask, entry_line

NAME = "status"
HELP = "show the running PiBuddy: state, services, upstream link, gateway devices, timers, last turns"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the full status as JSON")


def run(args: argparse.Namespace) -> int:
    try:
        status = ask(args, "status")
    except Failed as failed:
        return failed.code
    if args.json:
        print(json.dumps(status, indent=2, ensure_ascii=False))
    else:
        print("\n".join(describe(status)))
    return 0


def describe(status: dict[str, Any]) -> list[str]:
    link = status.get("upstream")
    upstream = ("not tried yet" if link is None else
                f"connected over {link['transport']}" if link["connected"] else f"down ({link['detail']})")
    volume = "unknown" if status.get("volume") is None else f"{status['volume']}%"
    lines = [f"PiBuddy is {status['state']} ({status['device_state']}); wakes go to the {status['brain']} brain",
             f"upstream server: {upstream}",
             f"volume {volume}, microphone {'muted' if status['muted'] else 'on'}",
             f"last heard: {status['last_heard']!r}", f"last reply: {status['last_reply']!r}", "services:"]
    width = max((len(s["name"]) for s in status["services"]), default=0)
    lines += [f"  {s['name']:<{width}}  {s['status']}{'' if s['ok'] or s['status'] != 'running' else ' (not ok)'}"
              f"{'  ' + s['detail'] if s['detail'] else ''}" for s in status["services"]]
    devices = status["gateway_devices"]
    lines.append(f"gateway devices: {len(devices) or 'none'}")
    lines += [f"  {d['mac']}  {d['ip']}  {'in conversation' if d['in_conversation'] else 'idle'}" for d in devices]
    timers = status["timers"]
    lines.append(f"timers: {len(timers) or 'none'}")
    lines += [f"  {t['name'] or 'timer'}: {'RINGING' if t['ringing'] else _clock(t['remaining']) + ' left'}"
              f" of {_clock(t['seconds'])}" for t in timers]
    lines.append("last turns and actions:" if status["history"] else "no turns yet")
    lines += [f"  {entry_line(e)}" for e in status["history"]]
    return lines


def _clock(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
