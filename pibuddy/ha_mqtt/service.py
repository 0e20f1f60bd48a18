"""The Home Assistant MQTT service: discovery, availability, states on change, commands through the control layer.

Connected, it publishes (retained) the discovery configs, "online" on the availability topic and every state;
the broker publishes the retained "offline" last will when PiBuddy vanishes. After that it publishes a state
only when its payload changes (the control layer says when the snapshot changed), the wake word as it is
heard, and re-publishes everything when Home Assistant's birth message ("online" on `<prefix>/status`) says
Home Assistant (re)started. Commands act through `Control`, with source "homeassistant", exactly as the CLI's.

A lost broker ends `serve()` with `ConnectionLost`; the supervisor reconnects with backoff. A bad command is
one warning line and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import aiomqtt

from pibuddy.backoff import Backoff
from pibuddy.config import HomeAssistantMqttConfig
from pibuddy.control import Control, ControlError
from pibuddy.errors import ConnectionLost, PiBuddyError
from pibuddy.events import EventBus, WakeDetected
from pibuddy.ha_mqtt.broker import broker_client, broker_name
from pibuddy.ha_mqtt.commands import Announce, BadCommand, SetMuted, SetVolume, parse_command
from pibuddy.ha_mqtt.entities import (
    OFFLINE,
    ONLINE,
    DeviceInfo,
    Topics,
    discovery_messages,
    state_messages,
    wake_message,
)
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)
SOURCE: Final = "homeassistant"
"""How commands from Home Assistant show in the history and the log."""
_MAX_QUEUED_MESSAGES: Final = 64  # incoming commands waiting; aiomqtt drops (and logs) beyond this
_STOP_SECONDS: Final = 2.0
_BIRTH: Final = ONLINE.encode()


class LoginRefused(PiBuddyError):
    """The broker refused the user name or password; retrying will not help until the user fixes them."""

    log_level = logging.ERROR


class HomeAssistantMqttService(Service):
    """Args:
    settings: the homeassistant.mqtt section (its broker is set).
    control: the control layer: snapshots in, commands out.
    bus: the event bus (for the wake word).
    device: the Home Assistant device this PiBuddy is.
    timeout: seconds for connecting and for each publish.
    """

    name = "homeassistant-mqtt"

    def __init__(self, settings: HomeAssistantMqttConfig, *, control: Control, bus: EventBus, device: DeviceInfo,
                 timeout: float = 10.0) -> None:
        self._settings = settings
        self._control = control
        self._bus = bus
        self.device = device
        self._timeout = timeout
        self.topics = Topics(settings.base_topic or "pibuddy/" + device.node_id.removeprefix("pibuddy_"),
                             settings.discovery_prefix)
        self._where = broker_name(settings)
        self._client: aiomqtt.Client | None = None
        self._published: dict[str, bytes] = {}
        self.backoff = Backoff(initial=1.0, maximum=30.0)

    async def start(self) -> None:
        client = broker_client(
            self._settings, identifier=self.device.node_id, timeout=self._timeout, logger=_LOGGER,
            will=aiomqtt.Will(self.topics.availability, OFFLINE.encode(), qos=1, retain=True),
            max_queued_incoming_messages=_MAX_QUEUED_MESSAGES)
        try:
            await client.__aenter__()
        except aiomqtt.MqttCodeError as exc:
            raise LoginRefused(f"the MQTT broker at {self._where} refused PiBuddy's login: {exc} (check "
                               "homeassistant.mqtt.username and password)") from exc
        except aiomqtt.MqttError as exc:
            raise ConnectionLost(f"cannot connect to the MQTT broker at {self._where}: {exc} (is it running? "
                                 "check homeassistant.mqtt.broker)") from exc
        self._client = client
        try:
            for status in self.topics.ha_status:
                await client.subscribe(status, qos=1)
            await client.subscribe(self.topics.command_filter, qos=1)
            await self._publish_device()
        except aiomqtt.MqttError as exc:
            await self.stop()
            raise ConnectionLost(f"MQTT broker at {self._where} dropped the connection: {exc}") from exc
        _LOGGER.info("Home Assistant MQTT: %s is online at %s (discovery under %s/, topics under %s/)",
                     self.device.name, self._where, self.topics.prefix, self.topics.base)

    async def serve(self) -> None:
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._states_to_ha())
                tasks.create_task(self._wakes_to_ha())
                tasks.create_task(self._commands_from_ha())
        except* aiomqtt.MqttError as group:
            raise ConnectionLost(f"lost the MQTT broker at {self._where}: {group.exceptions[0]}") from None

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):  # gone already: the broker sends the will
            async with asyncio.timeout(_STOP_SECONDS):
                await client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)

    def health(self) -> Health:
        return Health(self._client is not None, f"broker {self._where}")

    # --- to Home Assistant --------------------------------------------------------------------------

    async def _publish_device(self) -> None:
        """Discovery configs, then "online", then every state (also after Home Assistant's birth message)."""
        client = self._need_client()
        for topic, payload in discovery_messages(self.device, self.topics).items():
            await client.publish(topic, payload, qos=1, retain=True)
        await client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        self._published.clear()
        await self._publish_states()

    async def _publish_states(self) -> None:
        """Every state whose payload differs from what was last published."""
        client = self._need_client()
        for topic, payload in state_messages(self._control.snapshot(), self.topics).items():
            if self._published.get(topic) != payload:
                self._published[topic] = payload
                await client.publish(topic, payload, qos=0, retain=True)

    async def _states_to_ha(self) -> None:
        async for _snapshot in self._control.changes():
            await self._publish_states()

    async def _wakes_to_ha(self) -> None:
        with self._bus.subscribe() as events:
            async for event in events:
                if isinstance(event, WakeDetected):
                    topic, payload = wake_message(event.wake_word, event.score, self.topics)
                    await self._need_client().publish(topic, payload, qos=0, retain=False)

    # --- from Home Assistant ------------------------------------------------------------------------

    async def _commands_from_ha(self) -> None:
        client = self._need_client()
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
            topic = message.topic.value
            if topic in self.topics.ha_status:
                if payload == _BIRTH:
                    _LOGGER.info("Home Assistant (re)started: publishing the device again")
                    await self._publish_device()
                continue
            key = self.topics.command_key(topic)
            if key is not None:
                await self._act(key, bytes(payload))

    async def _act(self, key: str, payload: bytes) -> None:
        try:
            match parse_command(key, payload):
                case SetVolume(percent):
                    await self._control.set_volume(percent, source=SOURCE)
                case SetMuted(muted):
                    await self._control.set_muted(muted, source=SOURCE)
                case Announce(text):
                    await self._control.announce(text, source=SOURCE)
        except (BadCommand, ControlError) as exc:
            _LOGGER.warning("Home Assistant asked for %s, refused: %s", key, exc)
        except (PiBuddyError, TimeoutError) as exc:
            _LOGGER.warning("Home Assistant asked for %s, failed: %s", key, str(exc) or type(exc).__name__)

    def _need_client(self) -> aiomqtt.Client:
        if self._client is None:
            raise ConnectionLost("not connected to the MQTT broker")
        return self._client
