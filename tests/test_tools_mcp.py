"""The device-side MCP server, message by message against docs/protocol.md §10.2."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from pibuddy.errors import DeviceUnreachable
from pibuddy.tools import McpServer, Tool, ToolRegistry, VisionEndpoint, compact_json, integer, tool
from pibuddy.tools.mcp import MAX_PAGE_BYTES


async def _no_op(arguments: dict[str, Any]) -> bool:
    return True


def _plain(name: str, description: str = "d", *, user_only: bool = False) -> Tool:
    return Tool(name, description, {"type": "object", "properties": {}}, _no_op, user_only=user_only)


def _server(*tools: Tool) -> McpServer:
    registry = ToolRegistry()
    for t in tools:
        registry.register(t)
    return McpServer(registry, server_name="pibuddy", server_version="0.1.0")


def _request(method: str, params: Any = None, request_id: Any = 7) -> dict[str, Any]:
    payload: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        payload["params"] = params
    return payload


def _error(message: str, request_id: int = 7) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"message": message}}


def _size(value: Any) -> int:
    return len(compact_json(value).encode())


# --- envelope rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [
    {"id": 1, "method": "tools/list"},
    {"jsonrpc": "1.0", "id": 1, "method": "tools/list"},
    {"jsonrpc": 2.0, "id": 1, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}},
    {"jsonrpc": "2.0", "id": 1, "method": 5},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 3, "method": "notifications/cancelled", "params": {}},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": ["cursor"]},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "self.x"},
    {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": None},
    {"jsonrpc": "2.0", "method": "tools/list"},
    {"jsonrpc": "2.0", "id": "1", "method": "tools/list"},
    {"jsonrpc": "2.0", "id": True, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": None, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": float("nan"), "method": "tools/list"},
    {"jsonrpc": "2.0", "id": [1], "method": "ping"},
])
async def test_messages_the_firmware_drops_get_no_reply(payload: dict[str, Any]) -> None:
    assert await _server(_plain("self.x")).handle(payload) is None


async def test_a_payload_that_is_not_an_object_is_dropped() -> None:
    assert await _server().handle(["jsonrpc", "2.0"]) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("request_id", "echoed"), [(0, 0), (10001, 10001), (-3, -3), (3.0, 3), (2.9, 2)])
async def test_numeric_ids_are_answered_as_integers(request_id: float, echoed: int) -> None:
    reply = await _server().handle(_request("tools/list", request_id=request_id))
    assert reply == {"jsonrpc": "2.0", "id": echoed, "result": {"tools": []}}
    assert type(reply["id"]) is int


async def test_unknown_methods_get_an_error_without_a_code() -> None:
    reply = await _server().handle(_request("ping"))
    assert reply == _error("Method not implemented: ping")  # exactly: {"message"} and no "code"


# --- initialize ---------------------------------------------------------------------------------------


async def test_initialize_replies_like_the_firmware_and_stores_vision() -> None:
    server = _server()
    params = {"protocolVersion": "2024-11-05",
              "capabilities": {"roots": {"listChanged": True}, "sampling": {},
                               "vision": {"url": "http://127.0.0.1:8003/mcp/vision/explain",
                                          "token": "secret-jwt"}},
              "clientInfo": {"name": "XiaozhiClient", "version": "1.0.0"}}
    reply = await server.handle(_request("initialize", params, request_id=1))
    assert reply == {"jsonrpc": "2.0", "id": 1, "result": {
        "protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
        "serverInfo": {"name": "pibuddy", "version": "0.1.0"}}}
    assert server.vision == VisionEndpoint("http://127.0.0.1:8003/mcp/vision/explain", "secret-jwt")
    assert "secret-jwt" not in repr(server.vision)


@pytest.mark.parametrize(("params", "vision"), [
    (None, None),
    ({}, None),
    ({"capabilities": []}, None),
    ({"capabilities": {"vision": "http://x"}}, None),
    ({"capabilities": {"vision": {"url": 5, "token": "t"}}}, None),
    ({"capabilities": {"vision": {"url": "http://x", "token": 5}}}, VisionEndpoint("http://x", "")),
    ({"capabilities": {"vision": {"url": "http://x"}}}, VisionEndpoint("http://x", "")),
])
async def test_initialize_tolerates_odd_capabilities(params: Any, vision: VisionEndpoint | None) -> None:
    server = _server()
    reply = await server.handle(_request("initialize", params, request_id=10000))
    assert reply is not None
    assert reply["result"]["protocolVersion"] == "2024-11-05"
    assert server.vision == vision


# --- tools/call ---------------------------------------------------------------------------------------


@tool("self.audio_speaker.set_volume", "Set the volume.", params={"volume": integer(0, 100)})
async def _set_volume(arguments: dict[str, Any]) -> bool:
    return arguments["volume"] >= 0


@tool("self.lamp.on", "Turn the lamp on.")
async def _lamp_on(arguments: dict[str, Any]) -> bool:
    raise DeviceUnreachable("The lamp does not answer.")


@tool("self.status", "Status.")
async def _status(arguments: dict[str, Any]) -> dict[str, Any]:
    return {"audio_speaker": {"volume": 40}, "名字": "小智"}


@pytest.mark.parametrize(("params", "message"), [
    (None, "Missing params"),
    ({}, "Missing name"),
    ({"name": 5}, "Missing name"),
    ({"name": "self.audio_speaker.set_volume", "arguments": [50]}, "Invalid arguments"),
    ({"name": "self.audio_speaker.set_volume", "arguments": "volume=50"}, "Invalid arguments"),
    ({"name": "self.nope"}, "Unknown tool: self.nope"),
    ({"name": "self.audio_speaker.set_volume"}, "Missing valid argument: volume"),
    ({"name": "self.audio_speaker.set_volume", "arguments": {"volume": "50"}}, "Missing valid argument: volume"),
    ({"name": "self.audio_speaker.set_volume", "arguments": {"volume": -5}}, "Value is below minimum allowed: 0"),
    ({"name": "self.audio_speaker.set_volume", "arguments": {"volume": 101}},
     "Value exceeds maximum allowed: 100"),
    ({"name": "self.lamp.on", "arguments": {}}, "The lamp does not answer."),
])
async def test_tools_call_errors(params: Any, message: str) -> None:
    reply = await _server(_set_volume, _lamp_on).handle(_request("tools/call", params))
    assert reply == _error(message)


@pytest.mark.parametrize(("params", "text"), [
    ({"name": "self.audio_speaker.set_volume", "arguments": {"volume": 50}}, "true"),
    ({"name": "self.status"}, '{"audio_speaker":{"volume":40},"名字":"小智"}'),
])
async def test_tools_call_results(params: dict[str, Any], text: str) -> None:
    reply = await _server(_set_volume, _status).handle(_request("tools/call", params, request_id=3))
    assert reply == {"jsonrpc": "2.0", "id": 3,
                     "result": {"content": [{"type": "text", "text": text}], "isError": False}}


# --- tools/list and its pagination --------------------------------------------------------------------


def _many_tools(count: int) -> list[Tool]:
    """Tools with long, partly Chinese descriptions (3 UTF-8 bytes per character) and varied sizes."""
    return [_plain(f"self.device_{i:02d}.turn_on",
                   f"打开第{i}号设备，然后确认它的状态。Turns device {i} on. " + "说明" * (i * 7 % 90))
            for i in range(count)]


async def _all_pages(server: McpServer, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        request = dict(params or {}) | ({"cursor": cursor} if cursor is not None else {})
        reply = await server.handle(_request("tools/list", request, request_id=2))
        assert reply is not None
        assert "error" not in reply, reply
        pages.append(reply["result"])
        cursor = reply["result"].get("nextCursor")
        if cursor is None:
            return pages
    raise AssertionError("pagination did not end")


async def test_pages_stay_within_8000_bytes_and_lose_or_repeat_nothing() -> None:
    tools = _many_tools(60)
    assert _size({"tools": [t.to_mcp() for t in tools]}) > 3 * MAX_PAGE_BYTES
    pages = await _all_pages(_server(*tools))
    assert len(pages) >= 4
    listed = [t["name"] for page in pages for t in page["tools"]]
    assert listed == [t.name for t in tools]
    for page, following in itertools.pairwise(pages):
        assert _size(page) <= MAX_PAGE_BYTES
        assert page["nextCursor"] == following["tools"][0]["name"]
        assert list(page) == ["tools", "nextCursor"]
        # Filled to the brim: the next tool would not have fitted.
        fuller = {"tools": [*page["tools"], following["tools"][0]]}
        if len(following["tools"]) > 1:
            fuller["nextCursor"] = following["tools"][1]["name"]
        assert _size(fuller) > MAX_PAGE_BYTES
    assert list(pages[-1]) == ["tools"]
    assert _size(pages[-1]) <= MAX_PAGE_BYTES
    assert [t.to_mcp() for t in tools] == [t for page in pages for t in page["tools"]]


def _sized_tool(name: str, total: int) -> Tool:
    """A tool whose one-tool page `{"tools":[…]}` is exactly `total` bytes, padded with 3-byte characters."""
    base = _size({"tools": [_plain(name, "").to_mcp()]})
    threes, ones = divmod(total - base, 3)
    return _plain(name, "中" * threes + "a" * ones)


async def test_a_page_of_exactly_8000_bytes_is_sent() -> None:
    reply = await _server(_sized_tool("self.big", MAX_PAGE_BYTES)).handle(_request("tools/list"))
    assert reply is not None
    assert _size(reply["result"]) == MAX_PAGE_BYTES


async def test_a_tool_that_cannot_fit_is_an_error() -> None:
    reply = await _server(_sized_tool("self.big", MAX_PAGE_BYTES + 1)).handle(_request("tools/list"))
    assert reply == _error("Failed to add tool self.big because of payload size limit")


async def test_the_next_cursor_is_counted_in_the_page_size() -> None:
    cursor_bytes = _size({"tools": [], "nextCursor": "self.small"}) - _size({"tools": []})
    # Fits alone, but not together with the nextCursor that must follow it.
    server = _server(_sized_tool("self.big", MAX_PAGE_BYTES - cursor_bytes + 1), _plain("self.small"))
    assert await server.handle(_request("tools/list")) == _error(
        "Failed to add tool self.big because of payload size limit")
    server = _server(_sized_tool("self.big", MAX_PAGE_BYTES - cursor_bytes), _plain("self.small"))
    reply = await server.handle(_request("tools/list"))
    assert reply is not None
    assert reply["result"]["nextCursor"] == "self.small"
    assert _size(reply["result"]) == MAX_PAGE_BYTES


async def test_user_only_tools_are_listed_only_when_asked() -> None:
    server = _server(_plain("self.a"), _plain("self.get_system_info", user_only=True), _plain("self.b"))
    default = await server.handle(_request("tools/list", {"cursor": ""}))
    assert default is not None
    assert [t["name"] for t in default["result"]["tools"]] == ["self.a", "self.b"]
    for not_a_bool in ({"withUserTools": "true"}, {"withUserTools": 1}):
        reply = await server.handle(_request("tools/list", not_a_bool))
        assert reply == default
    everything = await server.handle(_request("tools/list", {"withUserTools": True}))
    assert everything is not None
    assert everything["result"]["tools"][1] == {
        "name": "self.get_system_info", "description": "d",
        "inputSchema": {"type": "object", "properties": {}}, "annotations": {"audience": ["user"]}}


async def test_user_only_tools_paginate_too() -> None:
    tools = [_plain(t.name, t.description, user_only=i % 3 == 0) for i, t in enumerate(_many_tools(40))]
    server = _server(*tools)
    everything = await _all_pages(server, {"withUserTools": True})
    assert [t["name"] for p in everything for t in p["tools"]] == [t.name for t in tools]
    visible = await _all_pages(server)
    assert [t["name"] for p in visible for t in p["tools"]] == [t.name for t in tools if not t.user_only]


async def test_cursors() -> None:
    server = _server(_plain("self.a"), _plain("self.hidden", user_only=True), _plain("self.b"))
    from_b = await server.handle(_request("tools/list", {"cursor": "self.b"}))
    assert from_b == {"jsonrpc": "2.0", "id": 7, "result": {"tools": [_plain("self.b").to_mcp()]}}
    # A cursor naming a hidden tool starts at the next visible one, as the firmware does.
    assert await server.handle(_request("tools/list", {"cursor": "self.hidden"})) == from_b
    # UNCONFIRMED-by-design: an unknown cursor is a clear error rather than a restart.
    assert await server.handle(_request("tools/list", {"cursor": "self.gone"})) == _error(
        "Invalid cursor: self.gone")
    # A non-string cursor is ignored like the firmware does: the list starts over.
    whole = await server.handle(_request("tools/list", {"cursor": 3}))
    assert whole is not None
    assert [t["name"] for t in whole["result"]["tools"]] == ["self.a", "self.b"]


async def test_a_tail_of_hidden_tools_is_an_empty_last_page() -> None:
    server = _server(_plain("self.a"), _plain("self.hidden", user_only=True))
    reply = await server.handle(_request("tools/list", {"cursor": "self.hidden"}))
    assert reply == {"jsonrpc": "2.0", "id": 7, "result": {"tools": []}}


async def test_replies_survive_a_json_round_trip() -> None:
    server = _server(*_many_tools(5), _status)
    for request in (_request("initialize", {}), _request("tools/list"),
                    _request("tools/call", {"name": "self.status"}), _request("nope")):
        reply = await server.handle(json.loads(json.dumps(request)))
        assert json.loads(compact_json(reply)) == reply
