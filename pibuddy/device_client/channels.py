"""The two ways a device reaches its server, behind one shape: MQTT+UDP and WebSocket.

A channel moves bytes only; the protocol lives in `pibuddy.xiaozhi.Session`. What arrives is handed to a
`ChannelSink` from the channel's own reader tasks; sends are awaited by the caller.

- MQTT+UDP: the MQTT control link is up from `connect()` until `close()` (the firmware stays connected
  between conversations); each conversation adds a UDP socket connected to the server's advertised address.
- WebSocket: nothing is open between conversations; `begin()` dials the server for one conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, Protocol

from pibuddy.device_client.mqtt_link import MqttLink
from pibuddy.device_client.udp_link import UdpLink
from pibuddy.device_client.ws_link import WsLink, handshake_headers
from pibuddy.errors import ConnectionLost
from pibuddy.xiaozhi import AudioTransport, UdpParams, WsProtocolVersion
from pibuddy.xiaozhi.ota_response import MqttSettings, WebsocketSettings

_LOGGER = logging.getLogger(__name__)


class ChannelSink(Protocol):
    """Where a channel delivers what arrives (the device client)."""

    async def json_received(self, data: bytes | str) -> None: ...

    async def audio_received(self, data: bytes) -> None: ...

    def conversation_lost(self, reason: str) -> None:
        """The per-conversation link (UDP socket or WebSocket) dropped; the control link may live on."""

    def control_lost(self, error: ConnectionLost) -> None:
        """The control link dropped: the client is finished and must be restarted."""


class Channel(ABC):
    """One device's link to its server."""

    transport: AudioTransport
    ws_version: WsProtocolVersion = WsProtocolVersion.V1

    def __init__(self) -> None:
        self._sink: ChannelSink | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self, sink: ChannelSink) -> None:
        """Bring up whatever stays up between conversations."""
        self._sink = sink

    @abstractmethod
    async def begin(self) -> None:
        """Make sure JSON can flow for a new conversation (before the hello)."""

    @abstractmethod
    async def open_audio(self, udp: UdpParams | None) -> None:
        """The server's hello arrived: open what audio needs (MQTT: the UDP socket)."""

    @abstractmethod
    async def end(self) -> None:
        """The conversation is over: release its per-conversation links."""

    @abstractmethod
    async def send_json(self, text: str) -> None: ...

    @abstractmethod
    async def send_audio(self, data: bytes) -> None: ...

    async def close(self) -> None:
        await self.end()
        await self._cancel_tasks()

    def describe(self) -> str:
        return self.transport.value

    @property
    def sink(self) -> ChannelSink:
        if self._sink is None:
            raise RuntimeError("channel used before connect()")
        return self._sink

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class MqttChannel(Channel):
    """MQTT control link for JSON, plus one UDP socket per conversation for audio."""

    transport = AudioTransport.UDP

    def __init__(self, settings: MqttSettings, *, timeout: float = 10.0) -> None:
        super().__init__()
        self.settings = settings
        self._mqtt = MqttLink(settings, timeout=timeout)
        self._udp: UdpLink | None = None
        self._udp_reader: asyncio.Task[None] | None = None

    async def connect(self, sink: ChannelSink) -> None:
        await super().connect(sink)
        await self._mqtt.__aenter__()
        self._spawn(self._read_mqtt(), "mqtt-reader")

    async def begin(self) -> None:
        """Nothing to open: the MQTT control link has been up since `connect()`."""

    async def open_audio(self, udp: UdpParams | None) -> None:
        await self.end()
        if udp is None:
            raise ConnectionLost("server hello without UDP parameters")
        self._udp = await UdpLink.open(udp.server, udp.port)
        self._udp_reader = self._spawn(self._read_udp(self._udp), "udp-reader")

    async def end(self) -> None:
        if self._udp_reader is not None:
            self._udp_reader.cancel()
            self._udp_reader = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    async def send_json(self, text: str) -> None:
        await self._mqtt.publish(text)

    async def send_audio(self, data: bytes) -> None:
        if self._udp is None:
            raise ConnectionLost("no UDP audio channel open")
        self._udp.send(data)

    async def close(self) -> None:
        await super().close()
        await self._mqtt.__aexit__(None, None, None)

    def describe(self) -> str:
        return f"MQTT {self.settings.host}:{self.settings.port} + UDP"

    async def _read_mqtt(self) -> None:
        try:
            async for payload in self._mqtt.messages():
                await self.sink.json_received(payload)
        except ConnectionLost as exc:
            self.sink.control_lost(exc)

    async def _read_udp(self, link: UdpLink) -> None:
        with contextlib.suppress(ConnectionLost):
            while True:
                await self.sink.audio_received(await link.receive())


class WsChannel(Channel):
    """One WebSocket per conversation carrying JSON (text) and audio (binary)."""

    transport = AudioTransport.WEBSOCKET

    def __init__(
        self,
        settings: WebsocketSettings,
        *,
        device_id: str,
        client_id: str,
        protocol_version: int,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.settings = settings
        # The OTA answer's `version` wins over config, like the firmware's NVS websocket.version.
        self.ws_version = WsProtocolVersion(settings.version or protocol_version)
        self._headers = handshake_headers(token=settings.token, protocol_version=int(self.ws_version),
                                          device_id=device_id, client_id=client_id)
        self._timeout = timeout
        self._link: WsLink | None = None
        self._reader: asyncio.Task[None] | None = None

    async def begin(self) -> None:
        if self._link is not None:
            return  # still open from the previous turn (manual mode keeps the channel)
        link = WsLink(self.settings.url, self._headers, timeout=self._timeout)
        await link.__aenter__()
        self._link = link
        self._reader = self._spawn(self._read(link), "ws-reader")

    async def open_audio(self, udp: UdpParams | None) -> None:
        del udp  # audio shares the WebSocket

    async def end(self) -> None:
        link, self._link = self._link, None
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
        self._reader = None
        if link is not None:
            await link.__aexit__(None, None, None)

    async def send_json(self, text: str) -> None:
        await self._open_link().send_text(text)

    async def send_audio(self, data: bytes) -> None:
        await self._open_link().send_binary(data)

    def describe(self) -> str:
        return f"WebSocket {self.settings.url}"

    def _open_link(self) -> WsLink:
        if self._link is None:
            raise ConnectionLost("WebSocket is not connected")
        return self._link

    async def _read(self, link: WsLink) -> None:
        try:
            async for message in link.messages():
                if isinstance(message, str):
                    await self.sink.json_received(message)
                else:
                    await self.sink.audio_received(message)
        except ConnectionLost as exc:
            if self._link is link:
                self._link = None
                self._reader = None
                self.sink.conversation_lost(str(exc))
