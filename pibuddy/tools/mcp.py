"""The device-side MCP server of the xiaozhi channel: JSON-RPC payload in, JSON-RPC payload (or nothing) out.

It follows the firmware's `McpServer::ParseMessage` (docs/protocol.md §10.2): requests need
`jsonrpc:"2.0"`, a string `method` and a numeric `id`, or they are dropped without a reply; errors are
`{"error":{"message":…}}` with no `code`. The xiaozhi envelope (`{"type":"mcp","payload":…}`) belongs to the
protocol package; this module sees payload dicts only. Replies must be encoded with `compact_json` for the
8000-byte `tools/list` pages to hold on the wire.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pibuddy.tools.registry import Tool, ToolRegistry, compact_json

_LOGGER = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = "2024-11-05"
# Largest `tools/list` result, in bytes of compact UTF-8 JSON (firmware `max_payload_size`).
MAX_PAGE_BYTES: Final = 8000

Reply = dict[str, Any]


@dataclass(frozen=True, slots=True)
class VisionEndpoint:
    """Where the server wants photos explained (`initialize` `capabilities.vision`)."""

    url: str
    token: str = field(default="", repr=False)  # a secret: never logged


class McpError(Exception):
    """A request we answer with a JSON-RPC error; the message is sent as is."""


class McpServer:
    """Answers the MCP requests a xiaozhi server (or gateway) sends to the device."""

    def __init__(self, registry: ToolRegistry, *, server_name: str, server_version: str,
                 source: str = "xiaozhi") -> None:
        """Args:
        registry: the tools to offer.
        source: who calls through this server, as the history and the log name it.
        server_name: `serverInfo.name` (the firmware sends its board name).
        server_version: `serverInfo.version` (the firmware sends its version).
        """
        self._registry = registry
        self._source = source
        self._server_info = {"name": server_name, "version": server_version}
        self.vision: VisionEndpoint | None = None
        self._methods: dict[str, Callable[[Mapping[str, Any] | None], Awaitable[Any]]] = {
            "initialize": self._initialize,
            "tools/list": self._tools_list,
            "tools/call": self._tools_call,
        }

    async def handle(self, payload: Mapping[str, Any]) -> Reply | None:
        """Answer one JSON-RPC message; None means the firmware would send nothing back."""
        if not isinstance(payload, Mapping) or payload.get("jsonrpc") != "2.0":
            _LOGGER.warning("MCP message dropped: jsonrpc is not \"2.0\"")
            return None
        method = payload.get("method")
        if not isinstance(method, str):
            _LOGGER.debug("MCP message without a method (a response?) ignored")
            return None
        if method.startswith("notifications"):
            return None
        params = payload.get("params")
        if "params" in payload and not isinstance(params, Mapping):  # `"params": null` too, like cJSON
            _LOGGER.warning("MCP %s dropped: params is not an object", method)
            return None
        request_id = _request_id(payload.get("id"))
        if request_id is None:
            _LOGGER.warning("MCP %s dropped: id is not a number", method)
            return None
        answer = self._methods.get(method)
        if answer is None:
            _LOGGER.warning("MCP method not implemented: %s", method)
            return _error(request_id, f"Method not implemented: {method}")
        try:
            return {"jsonrpc": "2.0", "id": request_id, "result": await answer(params)}
        except McpError as exc:
            return _error(request_id, str(exc))

    async def _initialize(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        capabilities = (params or {}).get("capabilities")
        vision = capabilities.get("vision") if isinstance(capabilities, Mapping) else None
        if isinstance(vision, Mapping) and isinstance(vision.get("url"), str):
            token = vision.get("token")
            self.vision = VisionEndpoint(vision["url"], token if isinstance(token, str) else "")
        return {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {"tools": {}},
            "serverInfo": dict(self._server_info),
        }

    async def _tools_list(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        params = params or {}
        return tools_page(self._registry, params.get("cursor"), with_user_tools=params.get("withUserTools") is True)

    async def _tools_call(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        if params is None:
            raise McpError("Missing params")
        name = params.get("name")
        if not isinstance(name, str):
            raise McpError("Missing name")
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, Mapping):
            raise McpError("Invalid arguments")
        result = await self._registry.call(name, arguments, source=self._source)
        if result.is_error:
            raise McpError(result.text)  # the firmware answers every failure with a JSON-RPC error
        return {"content": [{"type": "text", "text": result.text}], "isError": False}


def tools_page(registry: ToolRegistry, cursor: Any, *, with_user_tools: bool = False) -> dict[str, Any]:
    """One `tools/list` result starting at `cursor` (the MCP endpoint bridge shares this paging).

    Like the firmware, a non-string or empty cursor means "from the start"; an unknown one raises McpError.
    """
    tools = registry.list(with_user_tools=with_user_tools)
    start = _position(tools, registry, cursor) if isinstance(cursor, str) and cursor else 0
    return _page(tools[start:])


def _position(tools: list[Tool], registry: ToolRegistry, cursor: str) -> int:
    """Index in `tools` where the page named by `cursor` starts.

    The firmware starts at the tool with that name, or at the next listed one if it is hidden (user-only).
    For a name it does not know it ends up answering "Failed to add tool  because of payload size limit";
    we choose a clear error instead of starting over, so a client following cursors never loops or
    collects duplicates when the tool set changed between pages.
    """
    ordered = registry.list(with_user_tools=True)
    names = [t.name for t in ordered]
    if cursor not in names:
        raise McpError(f"Invalid cursor: {cursor}")
    after = set(names[names.index(cursor):])
    return next((i for i, t in enumerate(tools) if t.name in after), len(tools))


def _page(tools: list[Tool]) -> dict[str, Any]:
    """As many tools as fit in MAX_PAGE_BYTES of compact JSON, counting the `nextCursor` key exactly.

    Each tool is admitted only if the page holding it, plus the cursor naming the tool after it, fits; so
    the page we stop on was already measured with the right cursor. An empty tail gives `{"tools":[]}`
    (the firmware would answer with the payload-size error there, a quirk nobody relies on).
    """
    sizes = [len(compact_json(t.to_mcp()).encode()) for t in tools]
    frame = len(b'{"tools":[]}')
    used = frame
    count = 0
    for index, size in enumerate(sizes):
        tools_bytes = used - frame + size + (1 if index else 0)  # the comma between tools
        cursor_bytes = _cursor_bytes(tools[index + 1].name) if index + 1 < len(tools) else 0
        if frame + tools_bytes + cursor_bytes > MAX_PAGE_BYTES:
            break
        used = frame + tools_bytes
        count += 1
    if count == 0 and tools:
        raise McpError(f"Failed to add tool {tools[0].name} because of payload size limit")
    page: dict[str, Any] = {"tools": [t.to_mcp() for t in tools[:count]]}
    if count < len(tools):
        page["nextCursor"] = tools[count].name
    return page


def _cursor_bytes(name: str) -> int:
    return len(b',"nextCursor":') + len(compact_json(name).encode())


def _request_id(value: Any) -> int | None:
    """The firmware accepts any JSON number and handles it as an int (cJSON `valueint` truncates);
    a bool is not a number. Non-finite floats (Python's json accepts NaN) are dropped."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    return value


def _error(request_id: int, message: str) -> Reply:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"message": message}}
