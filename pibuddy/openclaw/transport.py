"""The two links a gateway session runs over: a direct WebSocket, or MQTT through PiBuddy's bridge.

Both move whole JSON text frames and nothing else; `connection.GatewayConnection` does the protocol.
Foreign errors (OSError, websockets, aiomqtt) become `ConnectionLost` here, once.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

import aiomqtt
import websockets
from websockets.asyncio.client import ClientConnection, connect

from pibuddy.errors import ConnectionLost
from pibuddy.openclaw.topics import Kind, SessionTopics

_LOGGER = logging.getLogger(__name__)
_MQTT_KEEPALIVE_SECONDS: Final = 60
_MQTT_INCOMING_QUEUE: Final = 256


class FrameTransport(Protocol):
    """One open link carrying text frames. `receive()` raises `ConnectionLost` when the link ends."""

    description: str

    async def send(self, text: str) -> None: ...

    async def receive(self) -> str: ...

    async def close(self) -> None: ...


TransportFactory = Callable[[], Awaitable[FrameTransport]]


class WebSocketTransport:
    """A WebSocket to the gateway. Frames above `max_size` close it with 1009 (see `ConnectionLost`)."""

    def __init__(self, connection: ClientConnection, url: str) -> None:
        self._connection = connection
        self.description = url

    @classmethod
    async def open(cls, url: str, *, open_timeout: float, max_size: int,
                   headers: dict[str, str] | None = None) -> WebSocketTransport:
        try:
            connection = await connect(url, open_timeout=open_timeout, max_size=max_size, compression=None,
                                       additional_headers=headers, ping_interval=None)
        except websockets.InvalidStatus as exc:
            body = exc.response.body.decode("utf-8", "replace")[:200] if exc.response.body else ""
            raise ConnectionLost(f"{url} refused the WebSocket: HTTP {exc.response.status_code} {body}") from exc
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise ConnectionLost(f"cannot open a WebSocket to {url}: {exc or type(exc).__name__}") from exc
        return cls(connection, url)

    async def send(self, text: str) -> None:
        try:
            await self._connection.send(text)
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"the gateway WebSocket closed: {describe_close(exc)}") from exc

    async def receive(self) -> str:
        try:
            message = await self._connection.recv()
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"the gateway WebSocket closed: {describe_close(exc)}") from exc
        if isinstance(message, bytes):
            return message.decode("utf-8", "replace")  # the gateway sends text; parse_frame rejects garbage
        return message

    async def close(self) -> None:
        await self._connection.close()

    @property
    def close_code(self) -> int | None:
        return self._connection.close_code


def describe_close(exc: websockets.ConnectionClosed) -> str:
    close = exc.rcvd or exc.sent
    if close is None:
        return "dropped without a close frame"
    return f"code {close.code}" + (f" ({close.reason})" if close.reason else "")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int
    prefix: str  # openclaw.mqtt_topic_prefix
    username: str | None = None
    password: str | None = None


class MqttTransport:
    """One client session over MQTT: publishes requests on `req`, reads `res` and `evt`.

    Opening subscribes first and then publishes `announce`, so the bridge's forwarded challenge cannot be
    missed. The MQTT will (and a clean close) publish `close`, so the bridge drops the gateway WebSocket.
    """

    def __init__(self, stack: contextlib.AsyncExitStack, client: aiomqtt.Client, topics: SessionTopics,
                 description: str) -> None:
        self._stack = stack
        self._client = client
        self._topics = topics
        self._messages = client.messages.__aiter__()
        self.description = description

    @classmethod
    async def open(cls, settings: MqttSettings, *, client_id: str, role: str, open_timeout: float) -> MqttTransport:
        topics = SessionTopics(settings.prefix, client_id, role)
        client = aiomqtt.Client(
            settings.host, settings.port, username=settings.username, password=settings.password,
            identifier=f"{client_id}_{role}", will=aiomqtt.Will(topics.topic(Kind.CLOSE), b"", qos=1),
            clean_session=True, keepalive=_MQTT_KEEPALIVE_SECONDS, timeout=open_timeout,
            max_queued_incoming_messages=_MQTT_INCOMING_QUEUE)
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(client)
            await client.subscribe([(topics.topic(Kind.RES), 1), (topics.topic(Kind.EVT), 1),
                                    (topics.topic(Kind.CLOSED), 1)])
            await client.publish(topics.topic(Kind.ANNOUNCE), b"", qos=1)
        except aiomqtt.MqttError as exc:
            await stack.aclose()
            raise ConnectionLost(f"MQTT broker {settings.host}:{settings.port}: {exc}") from exc
        return cls(stack, client, topics, f"mqtt://{settings.host}:{settings.port}/{topics.topic(Kind.REQ)}")

    async def send(self, text: str) -> None:
        try:
            await self._client.publish(self._topics.topic(Kind.REQ), text.encode("utf-8"), qos=1)
        except aiomqtt.MqttError as exc:
            raise ConnectionLost(f"MQTT publish failed: {exc}") from exc

    async def receive(self) -> str:
        try:
            message = await self._messages.__anext__()
        except aiomqtt.MqttError as exc:
            raise ConnectionLost(f"MQTT connection lost: {exc}") from exc
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        if message.topic.matches(self._topics.topic(Kind.CLOSED)):
            raise ConnectionLost(f"the bridge's gateway WebSocket closed: {_closed_reason(payload)}")
        return payload.decode("utf-8", "replace")

    async def close(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.publish(self._topics.topic(Kind.CLOSE), b"", qos=1)
        with contextlib.suppress(aiomqtt.MqttError):
            await self._stack.aclose()


def _closed_reason(payload: bytes) -> str:
    try:
        data = json.loads(payload)
        return f"code {int(data['code'])}" + (f" ({data['reason']})" if data.get("reason") else "")
    except (ValueError, KeyError, TypeError):
        return "no reason given"
