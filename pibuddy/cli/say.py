"""`pibuddy say "turn on the living room light"`: run text through the local brain and print what it did."""

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
    from pibuddy.wiring.brain import local_brain  # noqa: PLC0415
    from pibuddy.wiring.tools import build_toolbox  # noqa: PLC0415

    try:
        brain = local_brain(config, build_toolbox(config))
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
