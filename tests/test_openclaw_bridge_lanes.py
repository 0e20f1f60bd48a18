"""The OpenClaw bridge over a real mosquitto: one client's slow gateway WebSocket holds up no other client.

The gateway is a small websockets server that stalls the handshake of its first connection until told
to go on, and otherwise behaves like a gateway before auth: it sends `connect.challenge` and answers
every request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request

from pibuddy.config import Config, OpenClawConfig
from pibuddy.openclaw.bridge import OpenClawBridge
from tests.peers.mosquitto import MosquittoBroker, mosquitto_fixture  # noqa: F401
from tests.peers.openclaw_frames import CHALLENGE_V3
from tests.peers.ports import free_port

_PREFIX = "moltbot/gw"
_SOON = 2.0  # well under the bridge's 10 s open timeout, which a stalled lane would wait out


class StallingGateway:
    """Stalls the first WebSocket handshake until `release` is set; `stalled` says it is holding one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.stalled = asyncio.Event()
        self.release = asyncio.Event()
        self._first = True

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def process_request(self, connection: ServerConnection, request: Request) -> None:
        if self._first:
            self._first = False
            self.stalled.set()
            await self.release.wait()

    async def handler(self, connection: ServerConnection) -> None:
        await connection.send(json.dumps(CHALLENGE_V3))
        async for text in connection:
            request = json.loads(text)
            await connection.send(json.dumps({"type": "res", "id": request["id"], "ok": True, "payload": {}}))


@pytest.fixture
async def gateway() -> AsyncIterator[StallingGateway]:
    fake = StallingGateway()
    async with serve(fake.handler, "127.0.0.1", fake.port, process_request=fake.process_request):
        yield fake
        fake.release.set()


@pytest.fixture
async def bridge(mosquitto: MosquittoBroker, gateway: StallingGateway) -> AsyncIterator[OpenClawBridge]:
    config = Config(openclaw=OpenClawConfig(gateway_url=gateway.url, mqtt_host=mosquitto.host,
                                            mqtt_port=mosquitto.port, bridge_forwarded_for="192.0.2.10"))
    service = OpenClawBridge(config)
    await service.start()
    serving = asyncio.create_task(service.serve())
    yield service
    serving.cancel()
    await service.stop()


async def _next(messages: AsyncIterator[aiomqtt.Message], within: float) -> tuple[str, dict[str, Any]]:
    message = await asyncio.wait_for(anext(messages), within)
    assert isinstance(message.payload, bytes)
    return str(message.topic), json.loads(message.payload)


async def test_a_slow_gateway_connection_holds_up_only_its_own_client(
        mosquitto: MosquittoBroker, gateway: StallingGateway, bridge: OpenClawBridge) -> None:
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="lanes-test-clients") as clients:
        await clients.subscribe([(f"{_PREFIX}/+/node/{kind}", 1) for kind in ("res", "evt", "closed")])
        messages = aiter(clients.messages)
        await clients.publish(f"{_PREFIX}/slowclient/node/announce", b"", qos=1)
        await asyncio.wait_for(gateway.stalled.wait(), _SOON)

        # The fast client's announce and its request right behind it: the request waits for its own
        # WebSocket (same lane), not for the stalled one.
        await clients.publish(f"{_PREFIX}/fastclient/node/announce", b"", qos=1)
        request = {"type": "req", "id": "fast-1", "method": "connect", "params": {}}
        await clients.publish(f"{_PREFIX}/fastclient/node/req", json.dumps(request).encode(), qos=1)
        assert await _next(messages, _SOON) == (f"{_PREFIX}/fastclient/node/evt", CHALLENGE_V3)
        topic, response = await _next(messages, _SOON)
        assert (topic, response["id"], response["ok"]) == (f"{_PREFIX}/fastclient/node/res", "fast-1", True)

        gateway.release.set()  # the slow client is served once its gateway answers
        assert await _next(messages, _SOON) == (f"{_PREFIX}/slowclient/node/evt", CHALLENGE_V3)
