"""`pibuddy mute [on|off]`: mute or unmute the microphone of the running service."""

from __future__ import annotations

import argparse

from pibuddy.cli.ask import Failed, ask

NAME = "mute"
HELP = "show whether the microphone is muted, or mute it (on) / unmute it (off)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("switch", nargs="?", choices=["on", "off"], help="on: mute, off: unmute (omit to read it)")


def run(args: argparse.Namespace) -> int:
    muted = None if args.switch is None else args.switch == "on"
    try:
        answer = ask(args, "mute", muted=muted)
    except Failed as failed:
        return failed.code
    print("microphone muted" if answer["muted"] else "microphone on")
    return 0
