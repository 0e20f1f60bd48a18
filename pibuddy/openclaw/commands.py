"""The commands PiBuddy serves as an OpenClaw node.

- `system.notify {title?, body?}`: PiBuddy speaks the text on the Pi (a `Say` on the event bus).
- `device.info {}`: name, board, OS, kernel and PiBuddy's version.
- `pibuddy.tools.list {}`: PiBuddy's tools (the same list the LLM gets), MCP-shaped.
- `pibuddy.tools.call {name, arguments?}`: call one tool; `{text}` back, or an error with the tool's text.

A gateway filters declared commands through a per-platform allowlist. For a `linux` node it keeps
`system.notify`; the others must be added on the gateway (openclaw.json) before they are approved:
`"gateway": {"nodes": {"commands": {"allow": ["device.info", "pibuddy.tools.list", "pibuddy.tools.call"]}}}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from pibuddy.events import EventBus, Say
from pibuddy.openclaw.errors import OpenClawError
from pibuddy.tools.builtin import system_info
from pibuddy.tools.host import Host
from pibuddy.tools.registry import ToolRegistry

_MAX_SPOKEN_CHARS: Final = 500


class CommandError(OpenClawError):
    """A command failed; `code` goes to the gateway as `error.code` (message conventionally "CODE: text")."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message


Command = Callable[[Mapping[str, Any]], Awaitable[Any]]


class NodeCommands:
    """Command name -> handler. Handlers take the decoded params and return the result payload.

    Args:
        bus: where `system.notify` publishes what to say.
        registry: PiBuddy's tools.
        display_name: the name `device.info` reports.
        host: system facts (tests point it at a fake tree).
    """

    def __init__(self, *, bus: EventBus, registry: ToolRegistry, display_name: str, host: Host | None = None) -> None:
        self._bus = bus
        self._registry = registry
        self._display_name = display_name
        self._host = host or Host()
        self._handlers: dict[str, Command] = {
            "system.notify": self._notify,
            "device.info": self._device_info,
            "pibuddy.tools.list": self._tools_list,
            "pibuddy.tools.call": self._tools_call,
        }

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._handlers)

    async def run(self, command: str, params: Mapping[str, Any]) -> Any:
        handler = self._handlers.get(command)
        if handler is None:
            raise CommandError("UNKNOWN_COMMAND", f"PiBuddy has no command {command!r}")
        return await handler(params)

    async def _notify(self, params: Mapping[str, Any]) -> dict[str, Any]:
        parts = [str(params[key]).strip() for key in ("title", "body") if isinstance(params.get(key), str)]
        text = ". ".join(part for part in parts if part)[:_MAX_SPOKEN_CHARS]
        if not text:
            raise CommandError("INVALID_REQUEST", "system.notify needs a title or a body")
        self._bus.publish(Say(text))
        return {"spoken": True}

    async def _device_info(self, params: Mapping[str, Any]) -> dict[str, Any]:
        del params
        return {"deviceName": self._display_name, **system_info(self._host)}

    async def _tools_list(self, params: Mapping[str, Any]) -> dict[str, Any]:
        del params
        return {"tools": [found.to_mcp() for found in self._registry.list()]}

    async def _tools_call(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name, arguments = params.get("name"), params.get("arguments", {})
        if not isinstance(name, str) or not name:
            raise CommandError("INVALID_REQUEST", "pibuddy.tools.call needs a tool name")
        if not isinstance(arguments, dict):
            raise CommandError("INVALID_REQUEST", "pibuddy.tools.call arguments must be an object")
        result = await self._registry.call(name, arguments, source="openclaw")
        if result.is_error:
            raise CommandError("TOOL_FAILED", result.text)
        return {"text": result.text}
