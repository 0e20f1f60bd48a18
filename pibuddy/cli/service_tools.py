"""The tools as a CLI process reaches them: through the running service when one answers on the control socket
(its drivers are connected, and the call lands in its history with the caller's source), else this process's own
registry (`pibuddy tools call`, `pibuddy mcp`, `pibuddy say`)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Final

from pibuddy.control.client import ControlRefused, NotRunning, request
from pibuddy.tools.registry import DEFAULT_TIMEOUT_SECONDS, Tool, ToolRegistry, ToolResult

_LOGGER = logging.getLogger(__name__)
_CALL_TIMEOUT_SECONDS: Final = DEFAULT_TIMEOUT_SECONDS + 15.0  # the service's registry has ended a call by then


class ServiceFirst:
    """Args:
    paths: where the control socket may be (`control.paths.client_socket_paths`).
    registry: this process's tools, for when no PiBuddy runs.
    source: how the calls show in the history and the log ("cli", "mcp-stdio").
    """

    def __init__(self, paths: list[Path], registry: ToolRegistry, *, source: str) -> None:
        self._paths = paths
        self._registry = registry
        self._source = source

    def service_running(self) -> bool:
        try:
            request(self._paths, "status")
        except NotRunning:
            return False
        except ControlRefused:
            return True  # it answers, if not with a status
        return True

    async def list_tools(self) -> list[dict[str, Any]]:
        """The running service's tools (it may have more: the timers), else this process's."""
        try:
            answer = await asyncio.to_thread(request, self._paths, "list_tools")
        except NotRunning:
            return [t.to_mcp() for t in self._registry.list()]
        except ControlRefused as exc:  # an older service without list_tools: the same config gives these
            _LOGGER.warning("the running PiBuddy did not list its tools (%s); listing this process's", exc)
            return [t.to_mcp() for t in self._registry.list()]
        return list(answer["tools"])

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """One call, done by the running service, or here when none runs. A service that has the request but
        refuses or does not answer gets no second call here: the result says why."""
        try:
            answer = await asyncio.to_thread(request, self._paths, "call_tool", timeout=_CALL_TIMEOUT_SECONDS,
                                             name=name, arguments=arguments, source=self._source)
        except NotRunning:
            return await self._registry.call(name, arguments, source=self._source)
        except ControlRefused as exc:
            return ToolResult(str(exc), is_error=True)
        return ToolResult(str(answer["text"]), bool(answer["is_error"]))


def service_registry(paths: list[Path], local: ToolRegistry, *, source: str) -> ToolRegistry | None:
    """The running service's tools as a registry in this process (the local brain of `pibuddy say` calls
    through it), each call done by the service, or by `local` should it stop; None when no PiBuddy runs."""
    try:
        listed = request(paths, "list_tools")["tools"]
    except (NotRunning, ControlRefused):
        return None
    tools = ServiceFirst(paths, local, source=source)
    registry = ToolRegistry(timeout=_CALL_TIMEOUT_SECONDS)  # the service's own deadline ends a call first
    for described in listed:
        name = str(described["name"])

        async def call(arguments: dict[str, Any], name: str = name) -> ToolResult:
            return await tools.call_tool(name, arguments)

        registry.register(Tool(name, str(described.get("description") or ""), described["inputSchema"], call))
    return registry
