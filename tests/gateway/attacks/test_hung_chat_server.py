"""Finding 2: device text to a chat server that stopped reading (hung, not closed) was buffered without limit.

Seen: one device sent 500 MB of 8 KB JSON messages; gateway RSS went 90 -> 850 MB, freed only when that
device left. Here a real WebSocket server answers hello and then never reads again (websockets stops
reading its socket once 16 messages wait unread), so TCP back-pressure reaches the gateway. Device audio
on the same path is dropped past its cap instead (relay policy in `bridge.py`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from pibuddy.gateway.bridge import MAX_UNSENT_TEXT
from pibuddy.gateway.ws_client import MAX_WRITE_BUFFER
from tests.gateway.attacks.helpers import bounded_log, rss_mb
from tests.gateway.conftest import GatewayFactory, connect_device, gateway_url
from tests.gateway.test_bad_input import FRAME, still_serving
from tests.peers.xiaozhi_server import XiaozhiTestServer
from tests.polling import eventually

MESSAGE = json.dumps({"type": "listen", "state": "detect", "text": "x" * 8000})
MAX_MESSAGES = 2500  # 20 MB: far over the cap, bounded in time
FLOOD_FRAME = bytes(1000)  # opaque to the gateway, which relays any payload as it is
FLOOD_FRAMES = 32_000  # 32 MB: far over the cap and the kernel's socket buffers, bounded in time
BURST = 32  # then the event loop turns, so the gateway reads every datagram (no loss in the kernel)


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


async def test_audio_to_a_hung_chat_server_is_dropped_past_the_cap(
    start_gateway: GatewayFactory, hung_server: str, upstream: XiaozhiTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = await start_gateway([hung_server, gateway_url(upstream)])
    assert gateway.relay is not None
    device = await connect_device(gateway, 1)
    await device.hello()  # both servers idle: the first, hung one
    legit = await connect_device(gateway, 2)
    await legit.hello()  # the hung server has a session: the healthy one
    bridge = gateway.sessions[device.client_id].bridge
    assert bridge is not None
    assert bridge.server.url == hung_server
    legit_sent, legit_before = 0, len(upstream.uplink_frames)
    most_unsent, rss_before = 0, rss_mb()
    with bounded_log(caplog):
        for burst in range(FLOOD_FRAMES // BURST):
            for _ in range(BURST):
                device.send_audio(FLOOD_FRAME)
            await asyncio.sleep(0)
            most_unsent = max(most_unsent, bridge.unsent)
            if burst % 25 == 0:  # the legitimate device talks all along
                legit.send_audio(FRAME)
                legit_sent += 1
        await eventually(lambda: len(upstream.uplink_frames) >= legit_before + legit_sent)
    grown = rss_mb() - rss_before
    assert len(upstream.uplink_frames) == legit_before + legit_sent  # 0 loss for the legitimate device
    # Every flood frame was written to the chat server's socket or dropped and counted, none held elsewhere.
    assert sum(gateway.relay.drops.values()) == 0
    assert bridge.frames_up + bridge.uplink_drops.total == FLOOD_FRAMES
    assert bridge.uplink_drops.total > FLOOD_FRAMES // 2
    ws_frame = 16 + len(FLOOD_FRAME) + 8  # the gateway's uplink header, the masked WebSocket frame's header
    assert MAX_WRITE_BUFFER <= most_unsent <= MAX_WRITE_BUFFER + ws_frame
    assert grown < 8, f"RSS grew {grown:.1f} MB for {FLOOD_FRAMES * len(FLOOD_FRAME) >> 20} MB of audio"
    assert gateway.sessions[device.client_id].bridge is bridge  # audio is dropped, the session goes on
    await still_serving(legit, upstream)
    await device.close()
    await legit.close()
