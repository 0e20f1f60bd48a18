"""A PiBuddy for the Home Assistant MQTT tests: the real control layer, bus, supervisor and MQTT service.

Doubles stand only for what the control layer drives and that needs hardware here: the speaker's mixer, the
audio pipeline's answer to a mute command, and by default the gateway's device list (as `pibuddy status` reads
it; a test may pass the real gateway). The timers are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pibuddy import __version__
from pibuddy.backoff import Backoff
from pibuddy.config import HomeAssistantMqttConfig
from pibuddy.control import Control, GatewayDevice, History
from pibuddy.control.center import GatewayView
from pibuddy.events import Command, CommandName, DeviceState, EventBus, GatewayDevicesChanged, Muted, UpstreamLink
from pibuddy.gateway.service import GatewayService
from pibuddy.ha_mqtt.entities import DeviceInfo
from pibuddy.ha_mqtt.service import HomeAssistantMqttService
from pibuddy.supervisor import Supervisor
from pibuddy.timers.service import TimerService
from tests.peers.mosquitto import MosquittoBroker


class Mixer:
    """The speaker's mixer (the real one needs a sound card)."""

    def __init__(self, percent: int) -> None:
        self.percent = percent

    async def get_volume(self) -> int:
        return self.percent

    async def set_volume(self, percent: int) -> None:
        self.percent = percent


class DeviceList:
    """The gateway's connected devices as the control layer reads them; a change is published on the bus as the
    real gateway publishes it."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self.connected: list[GatewayDevice] = []

    def connect(self, device: GatewayDevice) -> None:
        self.connected.append(device)
        self._bus.publish(GatewayDevicesChanged())

    def devices(self) -> list[GatewayDevice]:
        return self.connected

    def alert(self, device: str, text: str) -> str:
        raise AssertionError("nothing is announced on gateway devices here")


async def answer_mute_commands(bus: EventBus) -> None:
    """What the audio pipeline, which owns the mute, does with MUTE and UNMUTE."""
    with bus.subscribe() as events:
        async for event in events:
            if isinstance(event, Command) and event.name in (CommandName.MUTE, CommandName.UNMUTE):
                bus.publish(Muted(event.name == CommandName.MUTE))


@dataclass
class Buddy:
    bus: EventBus
    control: Control
    mixer: Mixer
    gateway: GatewayView
    timers: TimerService
    service: HomeAssistantMqttService
    supervisor: Supervisor
    entities: dict[str, str] = field(default_factory=dict)
    """entity key (volume, mute ...) -> Home Assistant entity id."""


@contextlib.asynccontextmanager
async def running_buddy(broker: MosquittoBroker, device_id: str, name: str, *, username: str | None = None,
                        password: str | None = None, bus: EventBus | None = None,
                        gateway: GatewayService | None = None) -> AsyncIterator[Buddy]:
    """A PiBuddy that is idle, unmuted, linked to its server, at volume 40, served by a supervisor (with
    `gateway` among its services: a real one, built on `bus`)."""
    bus = bus or EventBus()
    bus.publish(Muted(False))
    bus.set_state(DeviceState.IDLE)
    bus.publish(UpstreamLink(True, "mqtt", "connected"))
    mixer, timers = Mixer(40), TimerService(bus, None)
    devices: GatewayView = gateway if gateway is not None else DeviceList(bus)
    control = Control(bus, history=History(None), volume=mixer, gateway=devices, timers=timers)
    settings = HomeAssistantMqttConfig(broker=f"mqtt://{broker.host}:{broker.port}", username=username,
                                       password=password)
    service = HomeAssistantMqttService(settings, control=control, bus=bus,
                                       device=DeviceInfo.for_buddy(device_id, name, __version__))
    service.backoff = Backoff(initial=0.2, maximum=0.5)
    supervisor = Supervisor([*([gateway] if gateway is not None else []), service], bus=bus)
    tasks = [asyncio.create_task(coro) for coro in (answer_mute_commands(bus), control.serve(), supervisor.run())]
    try:
        yield Buddy(bus, control, mixer, devices, timers, service, supervisor)
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(tasks[2], 10)
        for task in tasks[:2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
