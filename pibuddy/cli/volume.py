"""`pibuddy volume [0-100]`: read or set the speaker volume of the running service."""

from __future__ import annotations

import argparse

from pibuddy.cli.ask import Failed, ask

NAME = "volume"
HELP = "show the speaker volume, or set it (0-100)"


def _percent(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 100")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("percent", nargs="?", type=_percent, help="the new volume, 0 to 100 (omit to read it)")


def run(args: argparse.Namespace) -> int:
    try:
        answer = ask(args, "volume", percent=args.percent)
    except Failed as failed:
        return failed.code
    print(f"volume {answer['volume']}%")
    return 0
