"""The upstream service as `pibuddy run` uses it: activation, and reconnecting forever under the supervisor."""

from __future__ import annotations

import asyncio
import random
import subprocess
from pathlib import Path

from pibuddy.backoff import Backoff
from pibuddy.device_client.ota_client import ActivationTimings
from pibuddy.device_client.service import DeviceClientService
from pibuddy.events import ActivationCode, EventBus, Say, UpstreamLink
from pibuddy.supervisor import Supervisor
from pibuddy.wiring.tools import build_registry
from pibuddy.xiaozhi import State
from tests.device_client_helpers import ScriptedAudio, device_config
from tests.peers.mosquitto import MosquittoBroker, mosquitto_fixture  # noqa: F401
from tests.peers.xiaozhi_server import MqttBrokerInfo, XiaozhiTestServer

_FAST_ACTIVATION = ActivationTimings(polls=5, pending_delay=0.05, retry_delay=0.05, rounds=3)


async def test_activation_then_conversation_over_mqtt(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    bus = EventBus()
    events = bus.subscribe(maxsize=256)
    mqtt = MqttBrokerInfo(mosquitto.host, mosquitto.port)
    async with XiaozhiTestServer(mqtt=mqtt, activation=True, activation_polls=2, activation_code="246810",
                                 tts_frames=3, tts_frame_interval=0.01) as server:
        await asyncio.wait_for(server.mqtt_ready.wait(), 5)
        config = device_config(tmp_path, server.ota_url)
        service = DeviceClientService(config, bus=bus, registry=build_registry(config), audio=ScriptedAudio(),
                                  timings=_FAST_ACTIVATION)
        await asyncio.wait_for(service.start(), 10)
        try:
            assert [r.path for r in server.activate_requests] == ["/xiaozhi/ota/activate"] * 2
            assert service.client is not None
            assert await service.client.wake("你好小智")
            await asyncio.wait_for(server.tts_done.wait(), 5)
        finally:
            await service.stop()
    seen = []
    while not events.queue.empty():
        seen.append(events.queue.get_nowait())
    codes = [e for e in seen if isinstance(e, ActivationCode)]
    assert [c.code for c in codes] == ["246810"]
    assert any(isinstance(e, Say) and "2 4 6 8 1 0" in e.text for e in seen), "the code is spoken digit by digit"


async def test_reconnects_after_the_broker_dies_and_comes_back(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    bus = EventBus()
    links = bus.subscribe(maxsize=256)
    mqtt = MqttBrokerInfo(mosquitto.host, mosquitto.port)
    async with XiaozhiTestServer(mqtt=mqtt, tts_frames=3, tts_frame_interval=0.01) as server:
        await asyncio.wait_for(server.mqtt_ready.wait(), 5)
        config = device_config(tmp_path, server.ota_url)
        service = DeviceClientService(config, bus=bus, registry=build_registry(config), audio=ScriptedAudio())
        supervisor = Supervisor([service], bus=bus,
                                backoff_factory=lambda: Backoff(initial=0.1, maximum=0.4, rng=random.Random(3)))
        running = asyncio.create_task(supervisor.run())
        try:
            await _next_link(links, connected=True)
            await mosquitto.restart(downtime=0.5)
            await _next_link(links, connected=False)
            await _next_link(links, connected=True)
            await asyncio.wait_for(server.mqtt_ready.wait(), 10)
            server.reset_milestones()
            assert service.client is not None
            assert await service.client.wake("你好小智")
            await asyncio.wait_for(server.tts_done.wait(), 5)
            assert service.client.session.state in (State.LISTENING, State.SPEAKING)
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(running, 10)


async def _next_link(subscription: object, *, connected: bool) -> UpstreamLink:
    async with asyncio.timeout(15):
        while True:
            event = await subscription.get()  # type: ignore[attr-defined]
            if isinstance(event, UpstreamLink) and event.connected is connected:
                return event


def test_pibuddy_activate_command_shows_the_code_and_the_transport(
    tmp_path: Path, pibuddy_env: dict[str, str], python: str
) -> None:
    async def serve_and_activate() -> subprocess.CompletedProcess[str]:
        async with XiaozhiTestServer(activation=True, activation_polls=1, activation_code="135790") as server:
            config = tmp_path / "config.yaml"
            config.write_text(f"audio: {{enabled: false}}\nupstream:\n  ota_url: {server.ota_url}\n")
            process = await asyncio.create_subprocess_exec(
                python, "-m", "pibuddy", "activate", "--config", str(config), env=pibuddy_env,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
            return subprocess.CompletedProcess([], process.returncode or 0, stdout.decode(), stderr.decode())

    result = asyncio.run(serve_and_activate())
    assert result.returncode == 0, result.stderr
    assert "Activation code: 135790" in result.stdout
    assert "activated; PiBuddy will connect over WebSocket ws://127.0.0.1:" in result.stdout
