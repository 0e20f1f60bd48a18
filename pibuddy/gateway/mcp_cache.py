"""The gateway's MCP client towards each device, its tool cache, and host tools (docs/protocol.md §10.4).

On every MQTT connection the gateway runs `initialize`, `notifications/initialized` and `tools/list`
(following `nextCursor`) with ids from 10000, and answers the chat server's `tools/list` from the cache.
Fixed against the reference: `max_tools_count` is honoured (default 128; a page that would pass it is cut,
not dropped whole), and a server `tools/list` waits until discovery has finished or timed out instead of
getting a partial or empty list.

Host tools: with `gateway.host_tools` on, PiBuddy's own tools (the tool registry) are appended to each
device's list as `pibuddy.<name>` and their calls are served on the Pi, so a stock ESP32 can use the hub's
tools with no firmware change.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Final

from pibuddy.errors import PiBuddyError
from pibuddy.tools.mcp import PROTOCOL_VERSION
from pibuddy.tools.registry import ToolRegistry

_LOGGER = logging.getLogger(__name__)
FIRST_REQUEST_ID: Final = 10000
HOST_TOOL_PREFIX: Final = "pibuddy."
_HOST_DESCRIPTION_PREFIX: Final = "[PiBuddy hub] "
_CLIENT_INFO: Final = {"name": "pibuddy-gateway", "version": "1.0.0"}
_MAX_PAGES: Final = 64
"""A device repeating a cursor must not keep discovery looping."""


class McpRequestFailed(PiBuddyError):
    """A request to the device got a JSON-RPC error, timed out, or lost its connection.

    `str(exc)` is what the management API reports: the device's error message, "timeout" or
    "Connection closed" (§9.2).
    """


class ServerRequest(StrEnum):
    """What the gateway does with an MCP payload from the chat server."""

    FORWARD = "forward"
    """To the device unchanged (initialize, device tools/call, anything else)."""
    CONSUME = "consume"
    """Swallowed: notifications/initialized (the gateway already sent its own)."""
    ANSWER = "answer"
    """Answered by the gateway: tools/list from the cache, tools/call of a host tool."""


class HostTools:
    """PiBuddy's registry as extra tools in a device's list, renamed `pibuddy.<name without self.>`."""

    def __init__(self, registry: ToolRegistry) -> None:
        self._registry = registry
        self._names = {HOST_TOOL_PREFIX + t.name.removeprefix("self."): t.name for t in registry.list()}

    def owns(self, listed_name: object) -> bool:
        return listed_name in self._names

    def listed(self) -> list[dict[str, Any]]:
        listed = []
        for name, original in self._names.items():
            tool = self._registry.get(original)
            assert tool is not None
            described = tool.to_mcp() | {"name": name, "description": _HOST_DESCRIPTION_PREFIX + tool.description}
            listed.append(described)
        return listed

    async def call(self, listed_name: str, arguments: Any) -> dict[str, Any]:
        arguments = arguments if isinstance(arguments, Mapping) else {}
        result = await self._registry.call(self._names[listed_name], arguments, source="gateway-device")
        return {"content": [{"type": "text", "text": result.text}], "isError": result.is_error}


class DeviceMcp:
    """One device's MCP client and tool cache.

    Args:
        publish: sends one JSON message (text) to the device.
        max_tools: most tools offered to the server, device tools first.
        timeout: seconds per discovery request.
        host_tools: PiBuddy's tools to merge in, or None.
    """

    def __init__(self, publish: Callable[[str], None], *, max_tools: int, timeout: float,
                 host_tools: HostTools | None) -> None:
        self._publish = publish
        self._max_tools = max_tools
        self._timeout = timeout
        self._host_tools = host_tools
        self._ids = itertools.count(FIRST_REQUEST_ID)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ready = asyncio.Event()
        self.device_tools: list[dict[str, Any]] = []
        self.server_info: dict[str, Any] | None = None
        self._closed = False

    @property
    def discovered(self) -> bool:
        return self._ready.is_set()

    async def discover(self) -> None:
        """initialize, notifications/initialized, tools/list pages; failures are logged, never raised."""
        try:
            result = await self.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                                       "clientInfo": _CLIENT_INFO})
            self.server_info = result if isinstance(result, dict) else None
            self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            await self._list_tools()
        except McpRequestFailed as exc:
            _LOGGER.info("device MCP discovery stopped (%s); %d tools cached", exc, len(self.device_tools))
        finally:
            self._ready.set()

    async def _list_tools(self) -> None:
        params: dict[str, Any] = {}
        for _ in range(_MAX_PAGES):
            result = await self.request("tools/list", params)
            page = result.get("tools") if isinstance(result, dict) else None
            if not isinstance(page, list) or not page:
                return
            room = self._max_tools - len(self.device_tools)
            self.device_tools += [t for t in page[:room] if isinstance(t, dict)]
            if len(page) > room:
                _LOGGER.warning("device offers more than %d tools (max_tools_count); the rest are left out",
                                self._max_tools)
                return
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                return
            params = {"cursor": cursor}

    async def request(self, method: str, params: Any) -> Any:
        """Send a JSON-RPC request to the device and return its `result`; raises `McpRequestFailed`.

        Times out after the constructor's `timeout`; a caller wanting less wraps it in `asyncio.timeout`.
        """
        if self._closed:
            raise McpRequestFailed("Connection closed")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        payload: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            payload["params"] = params
        self._send(payload)
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise McpRequestFailed("timeout") from None
        finally:
            self._pending.pop(request_id, None)

    def response_from_device(self, payload: Mapping[str, Any]) -> bool:
        """Resolve the gateway's own request this answers; False if it answers someone else's."""
        request_id = payload.get("id")
        future = self._pending.get(request_id) if isinstance(request_id, int) else None
        if future is None or "method" in payload:
            return False
        if not future.done():
            error = payload.get("error")
            if error is not None:
                message = error.get("message") if isinstance(error, Mapping) else None
                future.set_exception(McpRequestFailed(message if isinstance(message, str) else json.dumps(error)))
            else:
                future.set_result(payload.get("result"))
        return True

    def classify_server_request(self, payload: Mapping[str, Any]) -> ServerRequest:
        method = payload.get("method")
        if method == "notifications/initialized":
            return ServerRequest.CONSUME
        if method == "tools/list":
            return ServerRequest.ANSWER
        if method == "tools/call" and self._host_tools is not None:
            params = payload.get("params")
            if isinstance(params, Mapping) and self._host_tools.owns(params.get("name")):
                return ServerRequest.ANSWER
        return ServerRequest.FORWARD

    async def answer_server(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON-RPC response to a request `classify_server_request` marked ANSWER."""
        if payload.get("method") == "tools/list":
            result: dict[str, Any] = {"tools": await self.server_tools()}
        else:
            assert self._host_tools is not None
            params = payload.get("params")
            assert isinstance(params, Mapping)
            result = await self._host_tools.call(str(params.get("name")), params.get("arguments"))
        return {"jsonrpc": "2.0", "id": payload.get("id"), "result": result}

    async def server_tools(self) -> list[dict[str, Any]]:
        """Device tools then host tools, at most `max_tools`, once discovery is over (or its time is up)."""
        # Bounded: every discovery request times out, pages are capped, and close() releases the wait.
        await self._ready.wait()
        tools = list(self.device_tools)
        if self._host_tools is not None:
            taken = {t.get("name") for t in tools}
            tools += [t for t in self._host_tools.listed() if t["name"] not in taken]
        return tools[: self._max_tools]

    def close(self) -> None:
        """Fail every pending request with "Connection closed" and release waiters."""
        self._closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(McpRequestFailed("Connection closed"))
        self._ready.set()

    def _send(self, payload: dict[str, Any]) -> None:
        self._publish(json.dumps({"type": "mcp", "payload": payload}, ensure_ascii=False, separators=(",", ":")))
