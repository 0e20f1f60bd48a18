"""`pibuddy version`."""

from __future__ import annotations

import argparse
import platform

from pibuddy import __version__

NAME = "version"
HELP = "print the PiBuddy version"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    del args
    print(f"pibuddy {__version__} (Python {platform.python_version()}, {platform.machine()})")
    return 0
