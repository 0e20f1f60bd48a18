"""`pibuddy activate`: ask the xiaozhi server how to connect, and bind this Pi if it asks for a code."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pibuddy.cli.common import load_or_exit

NAME = "activate"
HELP = "run OTA and activation against upstream.ota_url, showing the 6-digit code to enter in the console"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    from pibuddy.device_client.service import make_channel, provision  # noqa: PLC0415
    from pibuddy.errors import PiBuddyError  # noqa: PLC0415
    from pibuddy.events import ActivationCode, EventBus  # noqa: PLC0415

    async def main() -> int:
        bus = EventBus()
        codes = bus.subscribe()

        async def show_codes() -> None:
            async for event in codes:
                if isinstance(event, ActivationCode):
                    print(f"\nActivation code: {event.code}\n{event.message}\n(waiting for you to enter it...)",
                          flush=True)

        printer = asyncio.create_task(show_codes())
        try:
            identity, response = await provision(config, bus)
        except PiBuddyError as exc:
            print(f"pibuddy: {exc}", file=sys.stderr)
            return 1
        finally:
            printer.cancel()
        channel = make_channel(config, identity, response)
        print(f"device id {identity.device_id}, client id {identity.client_id}")
        print(f"activated; PiBuddy will connect over {channel.describe()}")
        return 0

    return asyncio.run(main())
