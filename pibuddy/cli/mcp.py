"""`pibuddy mcp`: serve PiBuddy's tools as a standard MCP server on stdin/stdout, for any MCP client
(Claude Desktop, an IDE, ...). With PiBuddy running, its tools are listed and called through the control socket,
so each call is in its history (source mcp-stdio); otherwise this process's drivers run supervised alongside.
Logs go to stderr."""

from __future__ import annotations

import argparse
import asyncio
import logging

from pibuddy.cli.common import load_or_exit

_LOGGER = logging.getLogger(__name__)
NAME = "mcp"
HELP = "serve the tools as a standard MCP server over stdio (for MCP clients)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options beyond --config and --log-level


def run(args: argparse.Namespace) -> int:
    config = load_or_exit(args)
    from pibuddy.cli.service_tools import ServiceFirst  # noqa: PLC0415 - keep `pibuddy --help` light
    from pibuddy.control.paths import client_socket_paths  # noqa: PLC0415
    from pibuddy.events import EventBus  # noqa: PLC0415
    from pibuddy.supervisor import Supervisor  # noqa: PLC0415
    from pibuddy.tools.mcp_standard import serve_stdio  # noqa: PLC0415
    from pibuddy.wiring.tools import build_toolbox  # noqa: PLC0415

    async def main() -> None:
        toolbox = build_toolbox(config)
        tools = ServiceFirst(client_socket_paths(config), toolbox.registry, source="mcp-stdio")
        # With PiBuddy running, its drivers answer (two processes must not both hold the GPIO pins or the
        # Bluetooth adapter); this process's connect on demand only if it stops.
        running = await asyncio.to_thread(tools.service_running)
        if running:
            _LOGGER.info("tool calls go through the running PiBuddy (its history records them as mcp-stdio)")
        supervisor = Supervisor([] if running else toolbox.services, bus=EventBus())
        supervising = asyncio.create_task(supervisor.run())
        serving = asyncio.create_task(serve_stdio(tools))
        try:  # until stdin closes, or SIGTERM/SIGINT stops the supervisor
            await asyncio.wait([supervising, serving], return_when=asyncio.FIRST_COMPLETED)
        finally:
            serving.cancel()
            supervisor.request_stop()
            await asyncio.gather(serving, supervising, return_exceptions=True)

    asyncio.run(main())
    return 0
