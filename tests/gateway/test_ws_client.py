"""The gateway's WebSocket client against a real websockets server (strict about masking and framing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from pibuddy.gateway.ws_client import WsClient, WsConnectFailed

Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[Server] = []

    async def start(handler: Handler, **options: Any) -> str:
        running = await serve(handler, "127.0.0.1", 0, **options)
        servers.append(running)
        port = next(iter(running.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/xiaozhi/v1/?from=mqtt_gateway"

    yield start
    for running in servers:
        running.close()
        await running.wait_closed()


class Received:
    def __init__(self) -> None:
        self.texts: asyncio.Queue[str] = asyncio.Queue()
        self.binaries: asyncio.Queue[bytes] = asyncio.Queue()

    async def connect(self, url: str, headers: dict[str, str] | None = None, max_size: int = 1 << 17) -> WsClient:
        return await WsClient.connect(url, headers or {}, on_text=self.texts.put_nowait,
                                      on_binary=self.binaries.put_nowait, max_size=max_size)


async def test_binary_frames_of_every_length_class_arrive_intact(server: Any) -> None:
    async def echo(ws: ServerConnection) -> None:
        assert ws.request is not None
        assert ws.request.path == "/xiaozhi/v1/?from=mqtt_gateway"
        assert ws.request.headers["device-id"] == "aa:bb:cc:dd:ee:ff"
        async for message in ws:
            await ws.send(message)

    received = Received()
    client = await received.connect(await server(echo, max_size=None), {"device-id": "aa:bb:cc:dd:ee:ff"})
    sizes = [0, 1, 125, 126, 127, 4000, 65535, 65536, 70000]
    payloads = [bytes(i % 251 for i in range(size)) for size in sizes]
    for payload in payloads:
        assert client.send_binary(payload)
    assert [await asyncio.wait_for(received.binaries.get(), 2) for _ in sizes] == payloads
    assert client.send_text("{\"type\":\"hello\"}")
    assert await asyncio.wait_for(received.texts.get(), 2) == '{"type":"hello"}'
    client.close()
    await asyncio.wait_for(client.wait_closed(), 3)
    assert not client.send_binary(b"late")  # closed: dropped, no exception


async def test_fragments_are_reassembled_and_pings_answered(server: Any) -> None:
    pong = asyncio.Event()

    async def talk(ws: ServerConnection) -> None:
        await ws.send([b"ab", b"cd", b"ef"])  # one message in three frames
        await ws.send(["你", "好"])
        await (await ws.ping())
        pong.set()
        await ws.wait_closed()

    received = Received()
    client = await received.connect(await server(talk))
    assert await asyncio.wait_for(received.binaries.get(), 2) == b"abcdef"
    assert await asyncio.wait_for(received.texts.get(), 2) == "你好"
    await asyncio.wait_for(pong.wait(), 2)
    client.close()


async def test_oversized_message_closes_with_1009(server: Any) -> None:
    codes: asyncio.Queue[int | None] = asyncio.Queue()

    async def flood(ws: ServerConnection) -> None:
        await ws.send(b"x" * 5000)
        await ws.wait_closed()
        codes.put_nowait(ws.close_code)

    received = Received()
    client = await received.connect(await server(flood), max_size=4096)
    await asyncio.wait_for(client.wait_closed(), 3)
    assert await asyncio.wait_for(codes.get(), 2) == 1009
    assert received.binaries.empty()


async def test_refused_handshake_and_dead_port_raise_connect_failed(server: Any) -> None:
    async def never(ws: ServerConnection) -> None:
        raise AssertionError("the handshake must not succeed")

    def refuse(connection: ServerConnection, request: Any) -> Any:
        return connection.respond(HTTPStatus.FORBIDDEN, "no\n")

    url = await server(never, process_request=refuse)
    with pytest.raises(WsConnectFailed, match="handshake refused"):
        await Received().connect(url)
    with pytest.raises(WsConnectFailed, match="cannot connect"):
        await Received().connect("ws://127.0.0.1:9/")
    with pytest.raises(WsConnectFailed, match="not a WebSocket URL"):
        await Received().connect("http://127.0.0.1:9/")
