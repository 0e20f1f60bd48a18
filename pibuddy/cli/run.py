"""`pibuddy run`: start every enabled service under the supervisor until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging

from pibuddy import __version__
from pibuddy.cli.common import config_path, load_or_exit

NAME = "run"
HELP = "run PiBuddy in the foreground (what the systemd service does)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options beyond --config and --log-level


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    from pibuddy.listener import raise_open_file_limit  # noqa: PLC0415

    logging.getLogger("pibuddy").info("PiBuddy %s starting with %s (up to %d open files)", __version__,
                                      config_path(args), raise_open_file_limit())
    from pibuddy.events import EventBus  # noqa: PLC0415
    from pibuddy.supervisor import Supervisor  # noqa: PLC0415
    from pibuddy.systemd import Notifier  # noqa: PLC0415
    from pibuddy.wiring.services import build_services  # noqa: PLC0415

    async def main() -> None:
        bus = EventBus()
        notifier = Notifier()
        try:
            await Supervisor(build_services(config, bus), bus=bus, notifier=notifier).run()
        finally:
            notifier.close()

    asyncio.run(main())
    return 0
