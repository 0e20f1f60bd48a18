"""xiaozhi-server's MCP client towards the device (docs/protocol.md §10.4), one per session."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from .xiaozhi_record import ServerRecord

_LOG = logging.getLogger("tests.peers.xiaozhi")
_INITIALIZE_ID: Final = 1
_TOOLS_LIST_ID: Final = 2
_MAX_TOOL_PAGES: Final = 64

SendPayload = Callable[[dict[str, Any]], Awaitable[None]]


class McpCallError(Exception):
    """The device answered a JSON-RPC request with an ``error`` object."""

    def __init__(self, error: Any) -> None:
        message = error.get("message") if isinstance(error, dict) else None
        super().__init__(message if isinstance(message, str) else repr(error))
        self.error = error


class DeviceMcpClient:
    """Runs initialize → tools/list discovery and tool calls over one xiaozhi session.

    Like xiaozhi-server, responses are matched against pending tool calls first (call ids count
    from 1), and only then against the fixed discovery ids 1 (initialize) and 2 (tools/list).
    """

    def __init__(
        self,
        send: SendPayload,
        record: ServerRecord,
        *,
        vision_url: str,
        vision_token: str,
        list_delay: float,
        timeout: float,
    ) -> None:
        self._send = send
        self._record = record
        self._vision = {"url": vision_url, "token": vision_token}
        self._list_delay = list_delay
        self._timeout = timeout
        self._call_ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._discovery: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def discover(self) -> None:
        """initialize (id 1), wait, pause, then tools/list (id 2) following ``nextCursor``."""
        init = await self._discovery_request(
            _INITIALIZE_ID,
            "initialize",
            {
                "protocolVersion": "2024-11-05",
                "capabilities": {"roots": {"listChanged": True}, "sampling": {}, "vision": self._vision},
                "clientInfo": {"name": "XiaozhiClient", "version": "1.0.0"},
            },
        )
        _LOG.info("device MCP server: %s", init.get("serverInfo"))
        self._record.mcp_initialized.set()
        await asyncio.sleep(self._list_delay)
        self._record.mcp_tools.clear()
        params: dict[str, Any] | None = None
        for _ in range(_MAX_TOOL_PAGES):
            page = await self._discovery_request(_TOOLS_LIST_ID, "tools/list", params)
            tools = page.get("tools")
            if not isinstance(tools, list):
                self._record.note_bad_input(f"mcp tools/list result without a tools list: {page!r:.200}")
                return
            self._record.mcp_tools.extend(t for t in tools if isinstance(t, dict))
            cursor = page.get("nextCursor")
            if not cursor:
                self._record.tools_listed.set()
                return
            params = {"cursor": cursor}
        self._record.note_bad_input(f"mcp tools/list did not end within {_MAX_TOOL_PAGES} pages")

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Send ``tools/call`` and return the JSON-RPC ``result`` (raises McpCallError on ``error``).

        Waits at most the configured MCP timeout; wrap in ``asyncio.timeout`` for a shorter one.
        """
        call_id = next(self._call_ids)
        future = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        try:
            await self._send(
                {
                    "jsonrpc": "2.0",
                    "id": call_id,
                    "method": "tools/call",
                    "params": {"name": name, "arguments": arguments},
                }
            )
            return await asyncio.wait_for(future, self._timeout)
        finally:
            self._calls.pop(call_id, None)

    def on_payload(self, payload: Any) -> None:
        """Route one ``mcp`` payload from the device."""
        if not isinstance(payload, dict) or payload.get("jsonrpc") != "2.0":
            self._record.note_bad_input(f"mcp payload is not a JSON-RPC 2.0 object: {payload!r:.200}")
            return
        if "method" in payload:
            # Stock firmware never sends requests; note it so a test can see it happened.
            _LOG.info("device sent MCP %s (ignored, as xiaozhi-server does)", payload["method"])
            return
        msg_id = payload.get("id")
        if not isinstance(msg_id, int) or isinstance(msg_id, bool):
            self._record.note_bad_input(f"mcp response id is not an integer: {msg_id!r}")
            return
        future = self._calls.get(msg_id) or self._discovery.get(msg_id)
        if future is None or future.done():
            self._record.note_bad_input(f"mcp response id {msg_id} matches no pending request")
            return
        if "error" in payload:
            future.set_exception(McpCallError(payload["error"]))
        elif isinstance(payload.get("result"), dict):
            future.set_result(payload["result"])
        else:
            future.set_exception(McpCallError({"message": f"malformed response: {payload!r:.200}"}))

    def cancel(self) -> None:
        for future in [*self._calls.values(), *self._discovery.values()]:
            if not future.done():
                future.cancel()

    async def _discovery_request(self, msg_id: int, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            payload["params"] = params
        future = asyncio.get_running_loop().create_future()
        self._discovery[msg_id] = future
        try:
            await self._send(payload)
            return await asyncio.wait_for(future, self._timeout)
        finally:
            self._discovery.pop(msg_id, None)
