"""`pibuddy history [-n N]`: the last turns and actions of the running service, with per-stage latency."""

from __future__ import annotations

import argparse
import json

from pibuddy.cli.ask import Failed, ask, entry_line

NAME = "history"
HELP = "show the last turns (what was heard and said, tool calls, per-stage latency) and actions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=20, metavar="N", help="how many entries (default 20)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    try:
        answer = ask(args, "history", count=max(args.n, 0))
    except Failed as failed:
        return failed.code
    for entry in answer["entries"]:
        print(json.dumps(entry, ensure_ascii=False) if args.json else entry_line(entry))
    if not answer["entries"] and not args.json:
        print("no turns or actions yet")
    return 0
