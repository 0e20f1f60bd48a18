"""`pibuddy say "turn on the living room light"`: run text through the local brain and print what it did; with
PiBuddy running, the tools it calls are the service's (a timer set this way runs, and rings, in the service)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from pibuddy.cli.common import load_or_exit

NAME = "say"
HELP = "run a sentence through the local (offline) brain and print the intent, tool calls and reply"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="+", help='the command, e.g. "turn on the living room light"')
    parser.add_argument("--language", help="override brain.language (en, zh-CN ...)")


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    if args.language:
        config = config.model_copy(update={"brain": config.brain.model_copy(update={"language": args.language})})
    from pibuddy.brain import Outcome  # noqa: PLC0415 - keep `pibuddy --help` light
    from pibuddy.brain.errors import BrainUnavailable  # noqa: PLC0415
    from pibuddy.cli.service_tools import service_registry  # noqa: PLC0415
    from pibuddy.control.paths import client_socket_paths  # noqa: PLC0415
    from pibuddy.wiring.brain import local_brain  # noqa: PLC0415
    from pibuddy.wiring.tools import Toolbox, build_toolbox  # noqa: PLC0415

    toolbox = build_toolbox(config)
    # With PiBuddy running, what the sentence asks is done by it: its timers, its drivers, its history.
    routed = service_registry(client_socket_paths(config), toolbox.registry, source="cli")
    try:
        brain = local_brain(config, toolbox if routed is None else Toolbox(routed, toolbox.services))
    except BrainUnavailable as exc:
        print(f"pibuddy: {exc}", file=sys.stderr)
        return 2
    text = " ".join(args.text)
    reply = asyncio.run(brain.handle(text))
    print(f"text:    {text}")
    print(f"intent:  {reply.intent or '-'} ({reply.outcome})")
    for record in reply.calls:
        status = "error" if record.result.is_error else "ok"
        arguments = json.dumps(dict(record.call.arguments), ensure_ascii=False)
        print(f"called:  {record.call.tool} {arguments} -> {status}: {record.result.text}")
    print(f"reply:   {reply.text}")
    return 0 if reply.outcome in (Outcome.DONE, Outcome.ANSWERED, Outcome.NOTHING) else 1
