"""`pibuddy check`: validate the config and probe what it configures."""

from __future__ import annotations

import argparse
import asyncio

from pibuddy.cli.common import config_path, load_or_exit

NAME = "check"
HELP = "validate the configuration and probe audio, upstream, Home Assistant, ... (OK/FAIL table)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    from pibuddy.probe import ProbeResult  # noqa: PLC0415
    from pibuddy.wiring.check import format_table, run_probes  # noqa: PLC0415

    rows = [("config", ProbeResult(True, str(config_path(args))))]
    rows += asyncio.run(run_probes(config))
    print(format_table(rows))
    return 0 if all(result.ok for _, result in rows) else 1
