"""The Home Assistant driver under the real supervisor survives Home Assistant stopping and coming back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from pibuddy.backoff import Backoff
from pibuddy.config import HomeAssistantConfig
from pibuddy.drivers.homeassistant import HomeAssistantService, homeassistant_tools
from pibuddy.errors import Cause, Failure, Party
from pibuddy.events import EventBus, ServiceStatus
from pibuddy.supervisor import Supervisor
from pibuddy.tools.registry import ToolRegistry, ToolResult
from tests.peers.homeassistant import HomeAssistantPeer

pytestmark = pytest.mark.peer


async def _eventually(check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_driver_recovers_when_home_assistant_restarts(homeassistant_peer: HomeAssistantPeer) -> None:
    peer = homeassistant_peer
    peer.start()
    config = HomeAssistantConfig.model_validate({"enabled": True, "url": peer.url, "token": peer.token,
                                                 "timeout": 3})
    service = HomeAssistantService(config)
    registry = ToolRegistry()
    for tool in homeassistant_tools(service):
        registry.register(tool)
    bus = EventBus()
    statuses: list[str] = []
    supervisor = Supervisor([service], bus=bus, backoff_factory=lambda: Backoff(initial=0.2, maximum=0.5))
    running = asyncio.create_task(supervisor.run())
    try:
        with bus.subscribe() as events:
            async def record() -> None:
                async for event in events:
                    if isinstance(event, ServiceStatus):
                        statuses.append(event.status)
            recorder = asyncio.create_task(record())
            await _eventually(lambda: service.health().ok, 10)

            peer.stop()  # from this thread: the peer's death signal follows the thread that started it
            await _eventually(lambda: not service.health().ok, 10)
            assert await registry.call("ha_get_device_state", {"target": "floor lamp"}) == ToolResult(
                "Home Assistant is not reachable, check it is running", is_error=True,
                cause=Cause(Failure.UNREACHABLE, Party.HOME_ASSISTANT))

            peer.start()
            await _eventually(lambda: service.health().ok, 30)
            result = await registry.call("ha_control_device", {"target": "台灯", "action": "turn_on"})
            assert result == ToolResult("台灯 is on.")
            assert peer.state("light.desk_lamp")["state"] == "on"
            recorder.cancel()
        assert "restarting" in statuses
        assert statuses[-1] == "running"
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(running, 10)
        peer.start()
        peer.call("input_boolean", "turn_off", {"entity_id": "input_boolean.desk_lamp_power"})
