"""The MCP endpoint bridge: dial out to an MCP endpoint (xiaozhi's 接入点 or a self-hosted one) over WebSocket
and serve the tool registry there as a standard MCP server (docs/protocol.md §10.5).

Each WebSocket text message is one JSON-RPC message. The broker is the MCP client: `initialize`,
`notifications/initialized`, `tools/list` (cursor pages, shared with the device-side server), `tools/call`,
`ping`. Unlike the device channel this is standard JSON-RPC: ids may be strings (the self-hosted endpoint
rewrites them to `<uuid>_n_<int>`), errors carry codes, and a failed tool is a result with `isError:true`.
A dropped link raises `ConnectionLost`; the supervisor reconnects with `backoff` (1 s up to 10 min).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection

from pibuddy import __version__
from pibuddy.backoff import Backoff
from pibuddy.errors import ConnectionLost
from pibuddy.jsonvalues import is_int
from pibuddy.supervisor import Health, Service
from pibuddy.tools.mcp import PROTOCOL_VERSION, McpError, tools_page
from pibuddy.tools.registry import ToolRegistry, compact_json

_LOGGER = logging.getLogger(__name__)

SUPPORTED_PROTOCOL_VERSIONS: Final = ("2024-11-05", "2025-03-26", "2025-06-18")
_MAX_MESSAGE_BYTES: Final = 1024 * 1024
_MAX_CALLS_IN_FLIGHT: Final = 8
_OPEN_TIMEOUT_SECONDS: Final = 15.0
_PING_SECONDS: Final = 30.0
PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
SERVER_BUSY: Final = -32000

Message = dict[str, Any]


class MalformedMessage(Exception):
    """A message that is not a JSON object; `reply` is the JSON-RPC error to send back."""

    def __init__(self, reply: Message) -> None:
        super().__init__(reply["error"]["message"])
        self.reply = reply


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class McpRequestHandler:
    """Standard MCP over JSON-RPC for one connection: text in, reply (or nothing) out. No I/O."""

    def __init__(self, registry: ToolRegistry, *, server_name: str = "pibuddy", server_version: str = __version__
                 ) -> None:
        """Args:
        registry: the tools to offer.
        server_name: `serverInfo.name`.
        server_version: `serverInfo.version`.
        """
        self._registry = registry
        self._server_info = {"name": server_name, "version": server_version}

    def decode(self, text: str | bytes) -> Message:
        """One JSON-RPC message as an object; raises `MalformedMessage` carrying the error reply."""
        try:
            message = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise MalformedMessage(_error(None, PARSE_ERROR, "Parse error")) from None
        if not isinstance(message, dict):
            raise MalformedMessage(_error(None, INVALID_REQUEST, "Invalid Request: batches and non-objects are "
                                                                 "not supported"))
        return message

    async def handle(self, message: Message) -> Message | None:
        """Answer one decoded message; None for notifications and responses."""
        if "method" not in message:
            return None  # a response or an error reply sent to us: nothing to answer
        method = message.get("method")
        request_id = message.get("id")
        is_notification = "id" not in message
        if message.get("jsonrpc") != "2.0" or not isinstance(method, str) or not _valid_id(request_id):
            return None if is_notification else _error(request_id if _valid_id(request_id) else None,
                                                       INVALID_REQUEST, "Invalid Request")
        if is_notification:
            return None  # notifications/initialized, notifications/cancelled ...: nothing to answer
        params = message.get("params", {})
        try:
            if not isinstance(params, Mapping):
                raise _RpcError(INVALID_PARAMS, "params must be an object")
            result = await self._answer(method, params)
        except _RpcError as exc:
            return _error(request_id, exc.code, str(exc))
        return {"jsonrpc": "2.0", "id": request_id, "result": result}

    async def _answer(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        match method:
            case "initialize":
                asked = params.get("protocolVersion")
                version = asked if asked in SUPPORTED_PROTOCOL_VERSIONS else PROTOCOL_VERSION
                return {"protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
                        "serverInfo": dict(self._server_info)}
            case "ping":
                return {}
            case "tools/list":
                try:
                    return tools_page(self._registry, params.get("cursor"))
                except McpError as exc:
                    raise _RpcError(INVALID_PARAMS, str(exc)) from None
            case "tools/call":
                name, arguments = params.get("name"), params.get("arguments", {})
                if not isinstance(name, str):
                    raise _RpcError(INVALID_PARAMS, "Missing name")
                if not isinstance(arguments, Mapping):
                    raise _RpcError(INVALID_PARAMS, "Invalid arguments")
                result = await self._registry.call(name, arguments, source="mcp-endpoint")
                return {"content": [{"type": "text", "text": result.text}], "isError": result.is_error}
        raise _RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or is_int(value)


def _error(request_id: Any, code: int, message: str) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def redact_url(url: str) -> str:
    """The endpoint URL without its query (the token lives there), for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class McpEndpointBridge(Service):
    """Keeps one outgoing WebSocket to the MCP endpoint and answers the broker's requests on it.

    Args:
        url: ws(s)://…/mcp/?token=… (a secret: only its redacted form is logged).
        registry: the tools to serve.
        server_name: `serverInfo.name` reported on `initialize`.
    """

    name = "mcp-endpoint"

    def __init__(self, url: str, registry: ToolRegistry, *, server_name: str = "pibuddy") -> None:
        self._url = url
        self._handler = McpRequestHandler(registry, server_name=server_name)
        self._conn: ClientConnection | None = None
        self._calls: set[asyncio.Task[None]] = set()
        # The reconnect schedule the reference's bridge uses (1 s doubling up to 10 min); see supervisor.py.
        self.backoff = Backoff(initial=1.0, maximum=600.0)

    async def start(self) -> None:
        try:
            self._conn = await websockets.connect(self._url, open_timeout=_OPEN_TIMEOUT_SECONDS,
                                                  max_size=_MAX_MESSAGE_BYTES, ping_interval=_PING_SECONDS,
                                                  ping_timeout=_PING_SECONDS)
        except websockets.InvalidStatus as exc:
            raise ConnectionLost(f"the MCP endpoint {redact_url(self._url)} refused the connection "
                                 f"(HTTP {exc.response.status_code})") from None
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise ConnectionLost(f"cannot reach the MCP endpoint {redact_url(self._url)}: "
                                 f"{type(exc).__name__}") from None
        _LOGGER.info("connected to the MCP endpoint %s", redact_url(self._url))

    async def serve(self) -> None:
        conn = self._conn
        if conn is None:
            raise ConnectionLost("not connected to the MCP endpoint")
        with contextlib.suppress(websockets.ConnectionClosed):  # either way the link is gone: say so below
            async for text in conn:
                await self._receive(conn, text)
        reason = f" (code {conn.close_code})" if conn.close_code else ""
        raise ConnectionLost(f"the MCP endpoint closed the connection{reason}")

    async def stop(self) -> None:
        for task in self._calls:
            task.cancel()
        await asyncio.gather(*self._calls, return_exceptions=True)
        self._calls.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    def health(self) -> Health:
        return Health(self._conn is not None, "connected" if self._conn is not None else "not connected")

    async def _receive(self, conn: ClientConnection, text: str | bytes) -> None:
        try:
            message = self._handler.decode(text)
        except MalformedMessage as exc:
            _LOGGER.warning("MCP endpoint sent a malformed message (%s); answered with an error", exc)
            await _send(conn, exc.reply)
            return
        if message.get("method") == "tools/call" and "id" in message:
            if len(self._calls) >= _MAX_CALLS_IN_FLIGHT:
                await _send(conn, _error(message.get("id"), SERVER_BUSY, "too many tool calls in flight"))
                return
            task = asyncio.create_task(self._answer(conn, message))  # long calls must not block ping
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
            return
        await self._answer(conn, message)

    async def _answer(self, conn: ClientConnection, message: Message) -> None:
        reply = await self._handler.handle(message)
        if reply is not None:
            await _send(conn, reply)


async def _send(conn: ClientConnection, reply: Message) -> None:
    try:
        await conn.send(compact_json(reply))
    except websockets.ConnectionClosed:
        _LOGGER.info("MCP endpoint closed before reply %s could be sent", reply.get("id"))
