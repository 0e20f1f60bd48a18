"""The tool registry as a standard MCP server, with the official `mcp` SDK: stdio (`pibuddy mcp`) and
streamable HTTP (`tools.mcp_http_*`, a supervised service, off by default).

The HTTP server binds 127.0.0.1 unless configured otherwise. Off loopback a bearer token is required (the
config refuses to load without one); on loopback the SDK's DNS-rebinding protection checks Host/Origin so a
web page cannot reach it through a rebound name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final, Protocol

import uvicorn
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pibuddy import __version__
from pibuddy.config import is_loopback
from pibuddy.httpserve import serve_http
from pibuddy.ports import binding
from pibuddy.supervisor import Health, Service
from pibuddy.tools.registry import ToolRegistry, ToolResult

_LOGGER = logging.getLogger(__name__)
MCP_PATH: Final = "/mcp"
_START_TIMEOUT_SECONDS: Final = 10.0
_LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "[::1]")


class McpTools(Protocol):
    """What an MCP server serves: the tools as `tools/list` lists them, and calls to them."""

    async def list_tools(self) -> list[dict[str, Any]]: ...

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult: ...


@dataclass(frozen=True, slots=True)
class RegistryTools:
    """The registry in this process; each call is recorded with `source` ("mcp-http", "mcp-stdio")."""

    registry: ToolRegistry
    source: str

    async def list_tools(self) -> list[dict[str, Any]]:
        return [t.to_mcp() for t in self.registry.list()]

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        return await self.registry.call(name, arguments, source=self.source)


def build_mcp_server(tools: McpTools, *, name: str = "pibuddy") -> Server[Any, Any]:
    """An SDK server whose tools are `tools` (validation and error text stay the registry's)."""
    server: Server[Any, Any] = Server(name, version=__version__)

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return [types.Tool(name=t["name"], description=t.get("description"), inputSchema=t["inputSchema"])
                for t in await tools.list_tools()]

    @server.call_tool(validate_input=False)  # the registry checks, with the messages the LLM already knows
    async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        result = await tools.call_tool(name, arguments)
        return types.CallToolResult(content=[types.TextContent(type="text", text=result.text)],
                                    isError=result.is_error)

    return server


async def serve_stdio(tools: McpTools) -> None:
    """Serve MCP on stdin/stdout until stdin closes (stdout carries only protocol messages)."""
    server = build_mcp_server(tools)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling (the supervisor owns SIGTERM and SIGINT) and without its own
    listening socket: connections come through `listener`, bound before uvicorn starts (PiBuddy's HTTP policy,
    `httpserve`: caps and deadlines)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listener = serve_http("MCP HTTP", self._protocol)

    def _protocol(self) -> asyncio.Protocol:
        config = self.config
        return config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=self.server_state, app_state=self.lifespan.state)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        del sockets
        await super().startup(sockets=[])  # the app's lifespan and uvicorn's state, no socket of its own

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.listener.close()
        await super().shutdown(sockets)
        await self.listener.stop()


async def _contained(server: _EmbeddedUvicorn) -> None:
    """uvicorn's serve(), with a SystemExit it raises (its startup failures call sys.exit) turned into an error:
    raised out of a task, it would end the event loop and the process with it."""
    try:
        await server.serve()
    except SystemExit as exc:
        raise RuntimeError(f"uvicorn gave up (exit code {exc.code})") from None


class _BearerGate:
    """ASGI: requests without `Authorization: Bearer <token>` get 401; the rest go to the SDK."""

    def __init__(self, manager: StreamableHTTPSessionManager, token: str | None) -> None:
        self._manager = manager
        self._expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._expected is not None:
            given = dict(scope.get("headers", ())).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                response = JSONResponse({"error": "unauthorized"}, status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self._manager.handle_request(scope, receive, send)


class McpHttpServer(Service):
    """Streamable HTTP MCP server at http://<host>:<port>/mcp.

    Args:
        registry: the tools to serve.
        host: address to bind; off loopback `token` must be set.
        port: TCP port (0: any free one, see `port` after start).
        token: bearer token clients must send, or None (loopback only).
    """

    name = "mcp-http"

    def __init__(self, registry: ToolRegistry, *, host: str, port: int, token: str | None) -> None:
        if token is None and not is_loopback(host):
            raise ValueError("an MCP HTTP server off loopback needs a bearer token")
        self._registry = registry
        self._host = host
        self.port = port
        self._token = token
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        manager = StreamableHTTPSessionManager(
            build_mcp_server(RegistryTools(self._registry, "mcp-http")), stateless=True, json_response=True,
            security_settings=self._security())

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            del app
            async with manager.run():
                yield

        app = Starlette(routes=[Route(MCP_PATH, endpoint=_BearerGate(manager, self._token))], lifespan=lifespan)
        config = uvicorn.Config(app, host=self._host, port=self.port, log_level="warning", access_log=False,
                                lifespan="on")
        server = _EmbeddedUvicorn(config)
        with binding(self.port, "tcp", "tools.mcp_http_port"):
            await server.listener.start(self._host, self.port)
        self._server = server
        self._task = asyncio.create_task(_contained(server), name="mcp-http")
        async with asyncio.timeout(_START_TIMEOUT_SECONDS):
            while not server.started:
                if self._task.done():
                    await self._task  # its error, if it has one
                    raise RuntimeError("the MCP HTTP server stopped while starting")
                await asyncio.sleep(0.02)
        self.port = server.listener.port
        _LOGGER.info("MCP HTTP server listening on http://%s:%d%s%s", self._host, self.port, MCP_PATH,
                     " (bearer token required)" if self._token else "")

    async def serve(self) -> None:
        assert self._task is not None
        await asyncio.shield(self._task)
        raise RuntimeError("the MCP HTTP server stopped")

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is not None:
            server.should_exit = True
        if task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
        if server is not None:
            await server.listener.stop()  # uvicorn closes it on shutdown, but not after a failed startup

    def health(self) -> Health:
        return Health(self._server is not None and self._server.started, f"port {self.port}")

    def _security(self) -> TransportSecuritySettings | None:
        if not is_loopback(self._host):
            return None  # reachable by name from the LAN: the bearer token is the protection
        hosts = [f"{h}:*" for h in _LOOPBACK_HOSTS] + list(_LOOPBACK_HOSTS)
        origins = [f"http://{h}:*" for h in _LOOPBACK_HOSTS]
        return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                         allowed_origins=origins)
