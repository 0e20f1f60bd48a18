"""`pibuddy mcp`: serve PiBuddy's tools as a standard MCP server on stdin/stdout, for any MCP client
(Claude Desktop, an IDE, ...). Drivers behind the tools run supervised alongside; logs go to stderr."""

from __future__ import annotations

import argparse
import asyncio

from pibuddy.cli.common import load_or_exit

NAME = "mcp"
HELP = "serve the tools as a standard MCP server over stdio (for MCP clients)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options beyond --config and --log-level


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    from pibuddy.events import EventBus  # noqa: PLC0415 - keep `pibuddy --help` light
    from pibuddy.supervisor import Supervisor  # noqa: PLC0415
    from pibuddy.tools.mcp_standard import serve_stdio  # noqa: PLC0415
    from pibuddy.wiring.tools import build_toolbox  # noqa: PLC0415

    async def main() -> None:
        toolbox = build_toolbox(config)
        supervisor = Supervisor(toolbox.services, bus=EventBus())
        supervising = asyncio.create_task(supervisor.run())
        serving = asyncio.create_task(serve_stdio(toolbox.registry))
        try:  # until stdin closes, or SIGTERM/SIGINT stops the supervisor
            await asyncio.wait([supervising, serving], return_when=asyncio.FIRST_COMPLETED)
        finally:
            serving.cancel()
            supervisor.request_stop()
            await asyncio.gather(serving, supervising, return_exceptions=True)

    asyncio.run(main())
    return 0
