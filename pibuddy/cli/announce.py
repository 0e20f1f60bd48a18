"""`pibuddy announce TEXT [--device MAC|all]`: say something on the Pi, or show it on gateway devices."""

from __future__ import annotations

import argparse

from pibuddy.cli.ask import Failed, ask

NAME = "announce"
HELP = "say a sentence on the Pi's speaker (chime first), or show it on gateway devices with --device"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="+", help="what to say")
    parser.add_argument("--device", metavar="MAC|all",
                        help="a gateway device (MAC or client id) or 'all' of them: a stock firmware shows the "
                             "text with its alert sound (it can only speak in a conversation it opened itself)")


def run(args: argparse.Namespace) -> int:
    try:
        answer = ask(args, "announce", text=" ".join(args.text), device=args.device)
    except Failed as failed:
        return failed.code
    print(f"announced on {', '.join(answer['announced_on'])}")
    return 0
