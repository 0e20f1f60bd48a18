"""Device MCP discovery and cache (§10.4) without the reference's bugs, and host tools served on the Pi."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from pibuddy.gateway.mcp_cache import DeviceMcp, HostTools, McpRequestFailed
from pibuddy.tools.arguments import integer
from pibuddy.tools.registry import ToolRegistry, tool
from tests.gateway.conftest import GatewayFactory, connect_device, gateway_url
from tests.peers.xiaozhi_server import XiaozhiTestServer


def device_tools(count: int) -> list[dict[str, Any]]:
    return [{"name": f"self.tool_{i}", "description": f"Tool {i}.", "inputSchema": {"type": "object"}}
            for i in range(count)]


async def test_max_tools_count_is_honoured_across_pages(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer
) -> None:
    gateway = await start_gateway([gateway_url(upstream)], max_tools_count=3)
    device = await connect_device(gateway, 1, connect=False)
    device.tools, device.page_size = device_tools(5), 2
    assert await device.connect() == 0
    await device.hello()
    await asyncio.wait_for(upstream.tools_listed.wait(), 3)
    assert [t["name"] for t in upstream.mcp_tools] == ["self.tool_0", "self.tool_1", "self.tool_2"]
    await device.close()


async def test_server_tools_list_waits_for_discovery(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer
) -> None:
    gateway = await start_gateway([gateway_url(upstream)])
    device = await connect_device(gateway, 1, connect=False)
    device.tools, device.page_size, device.mcp_delay = device_tools(4), 2, 0.3  # a slow device
    assert await device.connect() == 0
    await device.hello()  # at once: the server asks for tools while discovery is still running
    await asyncio.wait_for(upstream.tools_listed.wait(), 5)
    assert [t["name"] for t in upstream.mcp_tools] == [t["name"] for t in device.tools]
    await device.close()


async def test_host_tools_are_listed_and_served_on_the_pi(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer
) -> None:
    calls: list[dict[str, Any]] = []

    @tool("lights.set_level", "Set the living-room light level.", params={"level": integer(0, 100)})
    async def set_level(arguments: dict[str, Any]) -> str:
        calls.append(arguments)
        return f"level {arguments['level']}"

    registry = ToolRegistry()
    registry.register(set_level)
    gateway = await start_gateway([gateway_url(upstream)], host_tools=True, registry=registry)
    device = await connect_device(gateway, 1)
    await device.hello()
    await asyncio.wait_for(upstream.tools_listed.wait(), 3)
    listed = {t["name"]: t for t in upstream.mcp_tools}
    assert list(listed) == ["self.get_device_status", "pibuddy.lights.set_level"]
    assert listed["pibuddy.lights.set_level"]["description"].startswith("[PiBuddy hub] ")
    result = await upstream.call_tool("pibuddy.lights.set_level", {"level": 40})
    assert result == {"content": [{"type": "text", "text": "level 40"}], "isError": False}
    assert calls == [{"level": 40}]
    bad = await upstream.call_tool("pibuddy.lights.set_level", {"level": 400})
    assert bad["isError"] is True
    assert calls == [{"level": 40}]  # checked against the schema on the Pi, the handler never ran
    await device.close()


async def test_discovery_timeout_releases_a_waiting_server_list() -> None:
    sent: list[dict[str, Any]] = []
    mcp = DeviceMcp(lambda text: sent.append(json.loads(text)), max_tools=128, timeout=0.2, host_tools=None)
    discovery = asyncio.create_task(mcp.discover())
    started = time.monotonic()
    tools = await asyncio.wait_for(mcp.server_tools(), 2)  # a device that never answers
    assert tools == []
    assert 0.15 < time.monotonic() - started < 1.0
    assert sent[0]["payload"]["method"] == "initialize"
    assert sent[0]["payload"]["id"] == 10000
    await discovery


async def test_closed_connection_fails_pending_requests_and_errors_carry_the_device_message() -> None:
    mcp = DeviceMcp(lambda text: None, max_tools=128, timeout=5, host_tools=None)
    pending = asyncio.create_task(mcp.request("tools/call", {"name": "x"}))
    await asyncio.sleep(0)
    assert not mcp.response_from_device({"jsonrpc": "2.0", "id": 5, "result": {}})  # not ours: forwarded
    assert mcp.response_from_device({"jsonrpc": "2.0", "id": 10000, "error": {"message": "Unknown tool: x"}})
    with pytest.raises(McpRequestFailed, match=r"^Unknown tool: x$"):
        await pending
    pending = asyncio.create_task(mcp.request("tools/list", {}))
    await asyncio.sleep(0)
    mcp.close()
    with pytest.raises(McpRequestFailed, match=r"^Connection closed$"):
        await pending


def test_host_tool_names_do_not_collide_with_device_tools() -> None:
    @tool("self.get_device_status", "The hub's own status.")
    async def status(arguments: dict[str, Any]) -> str:
        return "ok"

    registry = ToolRegistry()
    registry.register(status)
    host = HostTools(registry)
    assert [t["name"] for t in host.listed()] == ["pibuddy.get_device_status"]
    assert host.owns("pibuddy.get_device_status")
    assert not host.owns("self.get_device_status")
