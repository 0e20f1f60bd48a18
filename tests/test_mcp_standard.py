"""The standard MCP server, driven by the official SDK's own client: streamable HTTP in-process, and stdio
through `pibuddy mcp` in a subprocess whose tools control the real test Home Assistant, or go through a running
`pibuddy run` into its history."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from pibuddy.config import load_config
from pibuddy.errors import ConfigError
from pibuddy.events import EventBus
from pibuddy.tools.arguments import integer, string
from pibuddy.tools.mcp_standard import McpHttpServer
from pibuddy.tools.registry import ToolRegistry, tool
from pibuddy.wiring.services import build_services
from tests.audio.test_control_run import cli, pibuddy_run
from tests.peers.homeassistant import HomeAssistantPeer

_TOKEN = "http-bearer-token-5678"


def _registry() -> ToolRegistry:
    registry = ToolRegistry()

    @tool("echo", "Echoes its text.", params={"text": string()})
    async def echo(arguments: dict[str, Any]) -> str:
        return arguments["text"]

    @tool("double", "Doubles a number.", params={"n": integer(0, 10)})
    async def double(arguments: dict[str, Any]) -> int:
        return arguments["n"] * 2

    registry.register(echo)
    registry.register(double)
    return registry


async def _server(token: str | None) -> McpHttpServer:
    server = McpHttpServer(_registry(), host="127.0.0.1", port=0, token=token)
    await server.start()
    return server


@pytest.fixture
async def open_server() -> AsyncIterator[McpHttpServer]:
    server = await _server(None)
    yield server
    await server.stop()


@pytest.fixture
async def guarded_server() -> AsyncIterator[McpHttpServer]:
    server = await _server(_TOKEN)
    yield server
    await server.stop()


async def _use(url: str, headers: dict[str, str] | None = None) -> tuple[list[str], str, bool, str]:
    async with (httpx.AsyncClient(headers=headers, timeout=10) as http,
                streamable_http_client(url, http_client=http) as (read, write, _),
                ClientSession(read, write) as session):
        info = await session.initialize()
        listed = await session.list_tools()
        good = await session.call_tool("double", {"n": 4})
        bad = await session.call_tool("double", {"n": 40})
    assert info.serverInfo.name == "pibuddy"
    assert not good.isError
    return ([t.name for t in listed.tools], good.content[0].text,  # type: ignore[union-attr]
            bool(bad.isError), bad.content[0].text)  # type: ignore[union-attr]


async def test_http_with_the_sdk_client(open_server: McpHttpServer) -> None:
    names, doubled, bad_is_error, bad_text = await _use(f"http://127.0.0.1:{open_server.port}/mcp")
    assert names == ["echo", "double"]
    assert doubled == "8"
    assert bad_is_error
    assert bad_text == "Value exceeds maximum allowed: 10"
    assert open_server.health().ok


async def test_http_bearer_token(guarded_server: McpHttpServer) -> None:
    url = f"http://127.0.0.1:{guarded_server.port}/mcp"
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.post(url, json=initialize, headers=headers)).status_code == 401
        wrong = {**headers, "Authorization": "Bearer nope"}
        assert (await http.post(url, json=initialize, headers=wrong)).status_code == 401
    names, doubled, _, _ = await _use(url, {"Authorization": f"Bearer {_TOKEN}"})
    assert names == ["echo", "double"]
    assert doubled == "8"


async def test_http_on_loopback_refuses_foreign_host_headers(open_server: McpHttpServer) -> None:
    """DNS-rebinding protection: a page served from evil.example that resolves to 127.0.0.1 gets nothing."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"http://127.0.0.1:{open_server.port}/mcp", json={},
                                   headers={"Host": "evil.example", "Accept": "application/json, text/event-stream"})
    assert response.status_code in (400, 421)


def test_off_loopback_needs_a_token(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("tools:\n  mcp_http_enabled: true\n  mcp_http_host: 0.0.0.0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.problems == [
        "tools.mcp_http_token: required when mcp_http_host is not a loopback address (got None)"]
    assert load_config(path, {"PIBUDDY_TOOLS_MCP_HTTP_TOKEN": "s3cret-token"}).tools.mcp_http_enabled
    with pytest.raises(ValueError, match="needs a bearer token"):
        McpHttpServer(ToolRegistry(), host="0.0.0.0", port=1, token=None)


def test_run_wires_the_enabled_tool_services(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("homeassistant:\n  enabled: true\n  token: abcd1234\n"
                    "tools:\n  mcp_endpoint_url: wss://example.invalid/mcp/?token=x\n  mcp_http_enabled: true\n")
    services = build_services(load_config(path, {}), EventBus())
    assert [s.name for s in services][:3] == ["homeassistant", "mcp-endpoint", "mcp-http"]
    path.write_text("tools:\n  builtin: true\n")
    names = {s.name for s in build_services(load_config(path, {}), EventBus())}
    assert not names & {"homeassistant", "mcp-endpoint", "mcp-http"}


@pytest.mark.peer
async def test_stdio_pibuddy_mcp_controls_home_assistant(
        homeassistant_peer: HomeAssistantPeer, tmp_path: Path, pibuddy_env: dict[str, str]) -> None:
    peer = homeassistant_peer
    peer.start()
    peer.call("input_boolean", "turn_off", {"entity_id": "input_boolean.kitchen_fan"})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"homeassistant": {"enabled": True, "url": peer.url, "token": peer.token},
                                      "tools": {"builtin": False}, "logging": {"level": "WARNING"}}))
    params = StdioServerParameters(command=sys.executable, args=["-m", "pibuddy", "mcp", "-c", str(config)],
                                   env=pibuddy_env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = [t.name for t in (await session.list_tools()).tools]
        result = await session.call_tool("ha_control_device", {"target": "厨房的风扇", "action": "turn_on"})
    assert names == ["ha_list_devices", "ha_get_device_state", "ha_control_device", "ha_run_scene",
                     "ha_run_script", "ha_assist"]
    assert not result.isError, result.content
    assert result.content[0].text == "Kitchen Fan is on."  # type: ignore[union-attr]
    assert peer.state("input_boolean.kitchen_fan")["state"] == "on"
    peer.call("input_boolean", "turn_off", {"entity_id": "input_boolean.kitchen_fan"})


@pytest.mark.peer
async def test_stdio_pibuddy_mcp_calls_go_through_the_running_service_into_its_history(
        tmp_path: Path, pibuddy_env: dict[str, str]) -> None:
    """`pibuddy mcp` is a process of its own; with `pibuddy run` up, an MCP client's calls are the service's: the
    service's own tools are listed (its timers), a timer set lands in its timers, and its history has the call
    with the source mcp-stdio."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"audio": {"enabled": False}, "upstream": {"enabled": False},
                                      "gateway": {"enabled": False},
                                      "control": {"socket": str(tmp_path / "control.sock")}}))
    params = StdioServerParameters(command=sys.executable, args=["-m", "pibuddy", "mcp", "-c", str(config)],
                                   env=pibuddy_env)
    log: list[str] = []
    async with pibuddy_run(config, pibuddy_env, log):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = [t.name for t in (await session.list_tools()).tools]
            result = await session.call_tool("timer_start", {"minutes": 8, "name": "pasta"})
            refused = await session.call_tool("timer_start", {"minutes": -1})
        status = json.loads((await cli(config, pibuddy_env, "status", "--json")).stdout)
        history = [json.loads(line) for line in (await cli(config, pibuddy_env, "history", "--json")).stdout
                   .splitlines()]
    assert {"timer_start", "timer_cancel", "timer_status"} <= set(names), "the service's tools, not only the builtins"
    assert not result.isError, result.content
    assert result.content[0].text == "The pasta timer is set for 8 minutes."  # type: ignore[union-attr]
    assert refused.isError
    assert [t["name"] for t in status["timers"]] == ["pasta"], "the timer runs in the service"
    calls = [(e["source"], e["name"], e["arguments"], e["is_error"]) for e in history if e["kind"] == "action"]
    assert calls == [("mcp-stdio", "timer_start", {"minutes": 8, "name": "pasta"}, False),
                     ("mcp-stdio", "timer_start", {"minutes": -1}, True)]
    assert "tool timer_start called by mcp-stdio" in "".join(log), "one INFO line in the service's journal"
