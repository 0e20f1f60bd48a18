"""The MCP endpoint bridge against a test WebSocket endpoint on 127.0.0.1 that plays the broker's side
(the message sequence of docs/protocol.md §10.5: initialize id 0, notifications/initialized,
tools/list ids 1.., tools/call, ping id 10)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.asyncio.server import ServerConnection

from pibuddy.backoff import Backoff
from pibuddy.errors import ConnectionLost
from pibuddy.events import EventBus
from pibuddy.supervisor import Supervisor
from pibuddy.tools.arguments import integer, string
from pibuddy.tools.mcp_endpoint import McpEndpointBridge
from pibuddy.tools.registry import Tool, ToolRegistry, tool

_TOKEN = "broker-secret-token-1234"


def _registry() -> ToolRegistry:
    registry = ToolRegistry()

    @tool("echo", "Echoes its text.", params={"text": string()})
    async def echo(arguments: dict[str, Any]) -> str:
        return arguments["text"]

    @tool("slow", "Sleeps, then answers.", params={"seconds": integer(0, 5)})
    async def slow(arguments: dict[str, Any]) -> str:
        await asyncio.sleep(arguments["seconds"])
        return "slept"

    registry.register(echo)
    registry.register(slow)
    for number in range(40):  # enough schema text for several 8000-byte pages
        registry.register(Tool(f"filler_{number:02d}", "A tool that exists to fill pages. " * 8,
                               {"type": "object", "properties": {}}, echo.handler))
    return registry


class Broker:
    """The endpoint's side: accepts the bridge's WebSocket and lets the test send and receive JSON-RPC."""

    def __init__(self) -> None:
        self.connections: asyncio.Queue[ServerConnection] = asyncio.Queue()
        self.paths: list[str] = []
        self.port = 0

    async def handler(self, conn: ServerConnection) -> None:
        self.paths.append(conn.request.path if conn.request else "")
        await self.connections.put(conn)
        await conn.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/mcp/?token={_TOKEN}"


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    broker = Broker()
    async with websockets.serve(broker.handler, "127.0.0.1", 0) as server:
        broker.port = server.sockets[0].getsockname()[1]
        yield broker


@pytest.fixture
async def bridged(broker: Broker) -> AsyncIterator[ServerConnection]:
    """A bridge connected to the broker, serving under the real supervisor; yields the broker's connection."""
    bridge = McpEndpointBridge(broker.url, _registry())
    supervisor = Supervisor([bridge], bus=EventBus(), backoff_factory=lambda: Backoff(initial=0.05, maximum=0.1))
    running = asyncio.create_task(supervisor.run())
    conn = await asyncio.wait_for(broker.connections.get(), 5)
    yield conn
    supervisor.request_stop()
    await asyncio.wait_for(running, 5)


async def _rpc(conn: ServerConnection, message: dict[str, Any] | str) -> dict[str, Any]:
    await conn.send(message if isinstance(message, str) else json.dumps(message))
    return dict(json.loads(await asyncio.wait_for(conn.recv(), 5)))


async def test_broker_sequence(bridged: ServerConnection, broker: Broker) -> None:
    assert broker.paths == [f"/mcp/?token={_TOKEN}"]
    reply = await _rpc(bridged, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "xz-mcp-broker", "version": "0.0.1"}}})
    assert reply["id"] == 0
    assert reply["result"]["protocolVersion"] == "2024-11-05"
    assert reply["result"]["capabilities"] == {"tools": {"listChanged": False}}
    assert reply["result"]["serverInfo"]["name"] == "pibuddy"
    await bridged.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))  # no reply

    names: list[str] = []
    cursor: str | None = None
    for request_id in range(1, 10):
        params = {"cursor": cursor} if cursor else {}
        page = await _rpc(bridged, {"jsonrpc": "2.0", "id": request_id, "method": "tools/list", "params": params})
        assert page["id"] == request_id
        assert len(json.dumps(page["result"], ensure_ascii=False, separators=(",", ":")).encode()) <= 8000
        names += [t["name"] for t in page["result"]["tools"]]
        cursor = page["result"].get("nextCursor")
        if cursor is None:
            break
    assert request_id > 1, "the tools should need more than one page"
    assert names == ["echo", "slow", *(f"filler_{n:02d}" for n in range(40))]

    reply = await _rpc(bridged, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                 "params": {"name": "echo", "arguments": {"text": "你好"}}})
    assert reply == {"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": "你好"}],
                                                            "isError": False}}
    assert await _rpc(bridged, {"jsonrpc": "2.0", "id": 10, "method": "ping"}) == {"jsonrpc": "2.0", "id": 10,
                                                                                   "result": {}}


async def test_string_ids_errors_and_garbage(bridged: ServerConnection) -> None:
    # The self-hosted endpoint rewrites ids to strings; they come back unchanged.
    reply = await _rpc(bridged, {"jsonrpc": "2.0", "id": "c0ffee_n_7", "method": "tools/call",
                                 "params": {"name": "echo", "arguments": {}}})
    assert reply["id"] == "c0ffee_n_7"
    assert reply["result"] == {"content": [{"type": "text", "text": "Missing valid argument: text"}], "isError": True}
    reply = await _rpc(bridged, {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "nope"}})
    assert reply["result"]["isError"] is True
    assert reply["result"]["content"][0]["text"] == "Unknown tool: nope"
    assert (await _rpc(bridged, {"jsonrpc": "2.0", "id": 4, "method": "resources/list"}))["error"] == {
        "code": -32601, "message": "Method not found: resources/list"}
    assert (await _rpc(bridged, {"jsonrpc": "2.0", "id": 5, "method": "tools/list",
                                 "params": {"cursor": "gone"}}))["error"]["code"] == -32602
    assert (await _rpc(bridged, {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": [1]}))["error"][
        "code"] == -32602
    assert (await _rpc(bridged, "{not json"))["error"] == {"code": -32700, "message": "Parse error"}
    assert (await _rpc(bridged, "[1, 2]"))["error"]["code"] == -32600
    assert (await _rpc(bridged, {"jsonrpc": "1.0", "id": 7, "method": "ping"}))["error"]["code"] == -32600
    # A response sent to us and an unknown notification get no answer; the next request still does.
    await bridged.send(json.dumps({"jsonrpc": "2.0", "id": 99, "result": {}}))
    await bridged.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}}))
    assert (await _rpc(bridged, {"jsonrpc": "2.0", "id": 8, "method": "ping"}))["id"] == 8


async def test_a_slow_call_does_not_block_ping(bridged: ServerConnection) -> None:
    await bridged.send(json.dumps({"jsonrpc": "2.0", "id": 20, "method": "tools/call",
                                   "params": {"name": "slow", "arguments": {"seconds": 1}}}))
    assert (await _rpc(bridged, {"jsonrpc": "2.0", "id": 21, "method": "ping"}))["id"] == 21
    late = json.loads(await asyncio.wait_for(bridged.recv(), 5))
    assert late["id"] == 20
    assert late["result"]["content"][0]["text"] == "slept"


async def test_reconnects_after_the_endpoint_drops(bridged: ServerConnection, broker: Broker,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await bridged.close()
    again = await asyncio.wait_for(broker.connections.get(), 5)
    assert (await _rpc(again, {"jsonrpc": "2.0", "id": 1, "method": "ping"}))["result"] == {}
    assert "the MCP endpoint closed the connection" in caplog.text
    assert _TOKEN not in caplog.text  # the URL's token is never logged


async def test_unreachable_endpoint_is_a_connection_error_without_the_token() -> None:
    async with websockets.serve(lambda conn: conn.close(), "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
    bridge = McpEndpointBridge(f"ws://127.0.0.1:{port}/mcp/?token={_TOKEN}", _registry())
    with pytest.raises(ConnectionLost) as caught:
        await bridge.start()
    assert _TOKEN not in str(caught.value)
    assert f"127.0.0.1:{port}/mcp/" in str(caught.value)


def test_backoff_runs_from_one_second_to_ten_minutes() -> None:
    bridge = McpEndpointBridge("ws://127.0.0.1:1/mcp/", ToolRegistry())
    delays = [bridge.backoff.next_delay() for _ in range(14)]
    assert 0.5 <= delays[0] <= 1.0
    assert 300 <= delays[-1] <= 600
    assert max(delays) <= 600
