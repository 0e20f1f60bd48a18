"""The MQTT control channel to a xiaozhi server or gateway: JSON text out, JSON text in.

Like the firmware: MQTT 3.1.1, clean session, the OTA-issued client id/username/password verbatim, QoS 0
publishes to `publish_topic`, TLS only on port 8883. Unlike the firmware it also SUBSCRIBEs to
`subscribe_topic` (as py-xiaozhi does): a xiaozhi gateway pushes without it, but a standard broker needs it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Final, Self

import aiomqtt

from pibuddy.errors import ConnectionLost
from pibuddy.xiaozhi.const import MQTT_MAX_PACKET_SIZE
from pibuddy.xiaozhi.errors import LocalProtocolError
from pibuddy.xiaozhi.ota_response import MqttSettings

_LOGGER = logging.getLogger(__name__)
_NO_TOPIC: Final = frozenset({"", "null"})  # old gateways send the literal "null"


def publish_packet_size(topic: str, payload: bytes) -> int:
    """Bytes of a QoS 0 PUBLISH on the wire: fixed header, topic, payload (no packet id at QoS 0)."""
    remaining = 2 + len(topic.encode()) + len(payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining


class MqttLink:
    """An open MQTT session. `async with MqttLink(endpoint) as link:` connects; leaving disconnects.

    Args:
        endpoint: where and who to connect as.
        timeout: seconds for connect and subscribe.
    """

    def __init__(self, endpoint: MqttSettings, *, timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        tls_context = ssl.create_default_context() if endpoint.tls else None
        self._client = aiomqtt.Client(
            endpoint.host,
            endpoint.port,
            identifier=endpoint.client_id,
            username=endpoint.username or None,
            password=endpoint.password or None,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,
            keepalive=endpoint.keepalive,
            timeout=timeout,
            tls_context=tls_context,
            # listen detect and listen start go out back to back: with Nagle the second waits for the
            # broker's delayed ACK (~40 ms) before the server hears that the user is talking.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            logger=_LOGGER,
        )

    async def __aenter__(self) -> Self:
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        try:
            await self._client.__aenter__()
            if self.endpoint.subscribe_topic not in _NO_TOPIC:
                await self._client.subscribe(self.endpoint.subscribe_topic, qos=0)
        except aiomqtt.MqttError as exc:
            raise ConnectionLost(f"MQTT connection to {where} failed: {exc}") from exc
        _LOGGER.info("MQTT connected to %s%s", where, " (TLS)" if self.endpoint.tls else "")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # already gone; nothing left to release
            await self._client.__aexit__(None, None, None)

    async def publish(self, text: str) -> None:
        payload = text.encode()
        size = publish_packet_size(self.endpoint.publish_topic, payload)
        if size >= MQTT_MAX_PACKET_SIZE:
            raise LocalProtocolError(f"MQTT message of {size} bytes exceeds the {MQTT_MAX_PACKET_SIZE}-byte limit")
        try:
            await self._client.publish(self.endpoint.publish_topic, payload, qos=0, retain=False)
        except aiomqtt.MqttError as exc:
            raise ConnectionLost(f"MQTT publish failed: {exc}") from exc

    async def messages(self) -> AsyncIterator[bytes]:
        """Every incoming payload, from any topic; raises ConnectionLost when the link drops."""
        try:
            async for message in self._client.messages:
                if isinstance(message.payload, bytes | bytearray):
                    yield bytes(message.payload)
                else:
                    _LOGGER.warning("ignoring non-binary MQTT payload on %s", message.topic)
        except aiomqtt.MqttError as exc:
            raise ConnectionLost(f"MQTT connection lost: {exc}") from exc
        raise ConnectionLost("MQTT connection closed")
