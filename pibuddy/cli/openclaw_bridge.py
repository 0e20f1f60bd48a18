"""`pibuddy openclaw-bridge`: run the MQTT-to-OpenClaw-gateway bridge in the foreground."""

from __future__ import annotations

import argparse
import asyncio

from pibuddy.cli.common import load_or_exit

NAME = "openclaw-bridge"
HELP = "bridge MQTT clients (openclaw.mqtt_* topics) to the OpenClaw gateway until stopped"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # everything comes from the openclaw section of the config


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args, running_bridge=True)  # its broker must not be the gateway's, enabled or not
    from pibuddy.events import EventBus  # noqa: PLC0415
    from pibuddy.openclaw.bridge import OpenClawBridge  # noqa: PLC0415
    from pibuddy.supervisor import Supervisor  # noqa: PLC0415

    async def main() -> None:
        await Supervisor([OpenClawBridge(config)], bus=EventBus()).run()

    asyncio.run(main())
    return 0
