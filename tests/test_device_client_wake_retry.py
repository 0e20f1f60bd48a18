"""A wake while the server is away: the device client tries at once instead of waiting out its backoff; the
server back, that wake is answered; still away, PiBuddy says so within 3 s. Real MQTT (mosquitto), real OTA
and UDP against the xiaozhi test server, the device client under the supervisor as `pibuddy run` runs it."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

from pibuddy.backoff import Backoff
from pibuddy.device_client.service import DeviceClientService
from pibuddy.events import (
    ErrorOccurred,
    EventBus,
    Say,
    ServiceStatus,
    Subscription,
    UpstreamLink,
    WakeDetected,
    WakeHandedOver,
)
from pibuddy.supervisor import Supervisor
from pibuddy.wiring.tools import build_registry
from tests.device_client_helpers import ScriptedAudio, device_config
from tests.peers.mosquitto import MosquittoBroker, mosquitto_fixture  # noqa: F401
from tests.peers.xiaozhi_server import MqttBrokerInfo, XiaozhiTestServer

_WAKE = "你好小智"
_LONG_BACKOFF = 30.0  # the supervisor's next retry is 15-30 s away: only a wake can bring the link back sooner


async def _next(subscription: Subscription, wanted: type, within: float = 15.0, **fields: object) -> object:
    async with asyncio.timeout(within):
        while True:
            event = await subscription.get()
            if isinstance(event, wanted) and all(getattr(event, k) == v for k, v in fields.items()):
                return event


def _delivered(subscription: Subscription) -> list[object]:
    delivered = []
    while not subscription.queue.empty():
        delivered.append(subscription.queue.get_nowait())
    return delivered


@contextlib.asynccontextmanager
async def _server_gone_away(mosquitto: MosquittoBroker, tmp_path: Path, *, microphone: bool = False
                            ) -> AsyncIterator[tuple[XiaozhiTestServer, EventBus, Subscription]]:
    """The device client connected, then the server and its broker stopped; yields once the client is waiting
    out its (long) backoff. microphone: `brain.mode: auto` with audio on, so a local brain listens."""
    bus = EventBus()
    events = bus.subscribe(maxsize=1024)
    server = XiaozhiTestServer(mqtt=MqttBrokerInfo(mosquitto.host, mosquitto.port), tts_frames=3,
                               tts_frame_interval=0.01)
    await server.start()
    await asyncio.wait_for(server.mqtt_ready.wait(), 5)
    config = device_config(tmp_path, server.ota_url, microphone=microphone)
    service = DeviceClientService(config, bus=bus, registry=build_registry(config), audio=ScriptedAudio())
    supervisor = Supervisor([service], bus=bus, backoff_factory=lambda: Backoff(
        initial=_LONG_BACKOFF, maximum=_LONG_BACKOFF, rng=random.Random(5)))
    running = asyncio.create_task(supervisor.run())
    try:
        await _next(events, UpstreamLink, connected=True)
        await server.stop()
        await mosquitto.stop()
        await _next(events, UpstreamLink, connected=False)
        await _next(events, ServiceStatus, service="upstream", status="restarting")
        server.reset_milestones()
        yield server, bus, events
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(running, 10)
        await server.stop()


async def test_a_wake_after_the_server_came_back_is_answered_at_once(
        mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    async with _server_gone_away(mosquitto, tmp_path) as (server, bus, _):
        await mosquitto.start()
        await server.start()
        await asyncio.wait_for(server.mqtt_ready.wait(), 10)
        loop = asyncio.get_running_loop()
        woke = loop.time()
        bus.publish(WakeDetected(_WAKE))
        await asyncio.wait_for(server.listen_detect.wait(), _LONG_BACKOFF / 4)
        answered = loop.time() - woke
        await asyncio.wait_for(server.tts_started.wait(), 5)
    assert answered < 2.0, "reconnected and the same wake reached the server"
    assert [m.get("text") for m in server.messages_of_type("listen") if m.get("state") == "detect"] == [_WAKE]


async def test_a_wake_while_the_server_is_still_away_is_told_so_within_3_seconds(
        mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    async with _server_gone_away(mosquitto, tmp_path) as (server, bus, events):
        loop = asyncio.get_running_loop()
        woke = loop.time()
        bus.publish(WakeDetected(_WAKE))
        error = await _next(events, ErrorOccurred, within=3.0)  # the error light, then the spoken line
        said = await _next(events, Say, within=0.1)
        told = loop.time() - woke
    assert told < 3.0
    assert isinstance(said, Say)
    assert said.text == "Sorry, I can't reach the server right now."
    assert isinstance(error, ErrorOccurred)
    assert error.source == "upstream"
    assert not server.hello_received.is_set()


async def test_a_wake_while_the_server_is_away_goes_to_the_local_brain_in_auto_mode(
        mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    """The router still gives wakes to the server (its deadline has not run out), so the device client takes
    this one; unanswered, it is handed to the local brain instead of being dropped."""
    async with _server_gone_away(mosquitto, tmp_path, microphone=True) as (server, bus, events):
        loop = asyncio.get_running_loop()
        woke = loop.time()
        bus.publish(WakeDetected(_WAKE))
        await _next(events, ErrorOccurred, within=3.0)  # the error light
        handed = await _next(events, WakeHandedOver, within=0.1)
        told = loop.time() - woke
        said = [e for e in _delivered(events) if isinstance(e, Say)]
    assert told < 3.0
    assert handed == WakeHandedOver(_WAKE)
    assert said == [], "the local brain answers; the line is not said over it"
    assert not server.hello_received.is_set()


async def test_a_wake_while_the_client_is_still_connecting_is_told_so_within_3_seconds(tmp_path: Path) -> None:
    """Neither backing off nor connected (the OTA request is under way): the wake was lost, nobody answered."""
    asked = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.set()
        await reader.read()  # holds the request until the client gives up
        writer.close()

    ota = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = ota.sockets[0].getsockname()[1]
    config = device_config(tmp_path, f"http://127.0.0.1:{port}/xiaozhi/ota/")
    bus = EventBus()
    service = DeviceClientService(config, bus=bus, registry=build_registry(config), audio=ScriptedAudio())
    with bus.subscribe() as events:
        starting = asyncio.create_task(service.start())
        try:
            await asyncio.wait_for(asked.wait(), 5)
            loop = asyncio.get_running_loop()
            woke = loop.time()
            bus.publish(WakeDetected(_WAKE))
            await _next(events, ErrorOccurred, within=3.0)
            said = await _next(events, Say, within=0.1)
            told = loop.time() - woke
        finally:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            ota.close()
    assert said == Say("Sorry, I can't reach the server right now.")
    assert 2.0 <= told < 3.0
