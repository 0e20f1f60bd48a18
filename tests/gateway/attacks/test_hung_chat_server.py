"""Finding 2: device text to a chat server that stopped reading (hung, not closed) was buffered without limit.

Seen: one device sent 500 MB of 8 KB JSON messages; gateway RSS went 90 -> 850 MB, freed only when that
device left. Here a real WebSocket server answers hello and then never reads again (websockets stops
reading its socket once 16 messages wait unread), so TCP back-pressure reaches the gateway.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from pibuddy.gateway.bridge import MAX_UNSENT_TEXT
from tests.gateway.attacks.helpers import bounded_log
from tests.gateway.conftest import GatewayFactory, connect_device, gateway_url
from tests.gateway.test_bad_input import still_serving
from tests.peers.xiaozhi_server import XiaozhiTestServer

MESSAGE = json.dumps({"type": "listen", "state": "detect", "text": "x" * 8000})
MAX_MESSAGES = 2500  # 20 MB: far over the cap, bounded in time


@pytest.fixture
async def hung_server() -> AsyncIterator[str]:
    released = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # the gateway's hello
        await ws.send(json.dumps({"type": "hello", "transport": "websocket", "session_id": "hung-1",
                                  "audio_params": {"format": "opus", "sample_rate": 24000, "channels": 1,
                                                   "frame_duration": 60}}))
        await asyncio.wait_for(released.wait(), 60)  # hung: never reads again, until the test ends

    async with serve(handler, "127.0.0.1", 0, max_queue=16, close_timeout=0.5) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/xiaozhi/v1/?from=mqtt_gateway"
        released.set()


async def test_text_to_a_hung_chat_server_is_bounded_and_ends_that_session(
    start_gateway: GatewayFactory, hung_server: str, upstream: XiaozhiTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hung_gateway = await start_gateway([hung_server])
    device = await connect_device(hung_gateway, 1)
    await device.hello()
    bridge = hung_gateway.sessions[device.client_id].bridge
    assert bridge is not None
    most_unsent = sent = 0
    with bounded_log(caplog):
        while sent < MAX_MESSAGES and hung_gateway.sessions[device.client_id].bridge is bridge:
            device.publish(json.loads(MESSAGE))
            sent += 1
            if sent % 20 == 0:
                await asyncio.sleep(0.001)
                most_unsent = max(most_unsent, bridge.unsent)
        goodbye = await device.next_message(5, of_type="goodbye")
    assert goodbye["session_id"] == "hung-1"
    assert sent < MAX_MESSAGES
    assert most_unsent <= MAX_UNSENT_TEXT + 2 * len(MESSAGE)
    # The device keeps working on a healthy chat server, and other devices never noticed.
    healthy = await start_gateway([gateway_url(upstream)])
    other = await connect_device(healthy, 2)
    await still_serving(other, upstream)
    await device.close()
    await other.close()
