"""The MQTT+UDP side of the xiaozhi test server: xiaozhi-mqtt-gateway and xiaozhi-server in one.

A real broker (mosquitto) carries the MQTT; this side is an MQTT *client* of it that subscribes
to the OTA-issued ``publish_topic`` and publishes to ``devices/p2p/<mac_>``. A plain broker only
delivers what a device subscribed to, so the device must subscribe to its ``subscribe_topic``.
Because every device publishes to the same topic, the side serves one device: the one that
fetched OTA most recently (or was named with ``set_device``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import aiomqtt

from .xiaozhi_conversation import Conversation, SessionHub, hello_fields, server_hello
from .xiaozhi_ota import MqttBrokerInfo
from .xiaozhi_record import ServerRecord
from .xiaozhi_wire import WireError, open_udp_gateway, reply_topic, seal_udp, udp_nonce_hex

_LOG = logging.getLogger("tests.peers.xiaozhi")
_MQTT_RETRY_SECONDS: Final = 0.2
_MQTT_READY_TIMEOUT: Final = 5.0
_MAX_MQTT_PAYLOAD: Final = 8192  # the gateway's whole-packet limit; the payload bound is close enough


@dataclass(eq=False)
class _UdpSession:
    session_id: str
    key: bytes
    conversation: Conversation | None = None
    remote_sequence: int = 0
    local_sequence: int = 0
    address: tuple[str, int] | None = None


class _MqttUdpChannel:
    """Session output: JSON over MQTT, audio as AES-CTR UDP datagrams."""

    def __init__(self, side: MqttUdpSide, session: _UdpSession) -> None:
        self._side = side
        self._session = session

    async def send_json(self, message: dict[str, Any]) -> None:
        # The gateway re-serializes server JSON the way JavaScript's JSON.stringify does.
        await self._side.publish(json.dumps(message, ensure_ascii=False, separators=(",", ":")))

    async def send_text(self, text: str) -> None:
        await self._side.publish(text)

    async def send_audio(self, opus: bytes, sentence_seq: int) -> None:
        self._side.send_audio(self._session, opus)

    async def send_raw_binary(self, data: bytes) -> None:
        self._side.send_datagram(self._session, data)

    async def close(self) -> None:
        await self._side.end_session(self._session)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, side: MqttUdpSide) -> None:
        self._side = side

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._side.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        _LOG.warning("xiaozhi test server UDP error: %s", exc)


class MqttUdpSide:
    """MQTT control via a broker plus the UDP audio socket (docs/protocol.md §3.4, §4, §5)."""

    def __init__(self, info: MqttBrokerInfo, record: ServerRecord, hub: SessionHub, *, udp_host: str) -> None:
        self._info = info
        self._record = record
        self._hub = hub
        self._udp_host = udp_host
        # The gateway picks this per MQTT connection; a broker hides connections, so it is per server.
        self.connection_id = secrets.randbits(32)
        self._device_topic: str | None = None
        self._client: aiomqtt.Client | None = None
        self._session: _UdpSession | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def udp_port(self) -> int:
        assert self._udp is not None, "MqttUdpSide is not started"
        return self._udp.get_extra_info("sockname")[1]

    def set_device(self, client_id: str) -> None:
        """Route replies to the device with this MQTT client id."""
        self._device_topic = reply_topic(client_id)

    async def start(self, udp_port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self._udp_host, udp_port)
        )
        self._loop_task = asyncio.create_task(self._mqtt_loop())
        try:
            await asyncio.wait_for(self._record.mqtt_ready.wait(), _MQTT_READY_TIMEOUT)
        except TimeoutError:
            await self.stop()
            where = f"{self._info.host}:{self._info.port}"
            raise RuntimeError(f"xiaozhi test server could not subscribe at {where}") from None

    async def stop(self) -> None:
        if self._session is not None:
            await self._hub.end(self._session.conversation)
            self._session = None
        if self._loop_task is not None:
            # aiomqtt on Python 3.11 can swallow a cancel that races with its own wait_for; the loop then
            # reconnects. So: say we stop, and cancel until the task is really done.
            self._stopping = True
            while not self._loop_task.done():
                self._loop_task.cancel()
                await asyncio.wait([self._loop_task], timeout=0.5)
        if self._udp is not None:
            self._udp.close()

    async def publish(self, text: str) -> None:
        client, topic = self._client, self._device_topic
        if client is None or topic is None:
            _LOG.warning("xiaozhi test server cannot publish (broker link %s, device topic %s)", client, topic)
            return
        try:
            await client.publish(topic, text.encode(), qos=0)
        except aiomqtt.MqttError as err:
            _LOG.warning("xiaozhi test server publish failed: %s", err)

    async def end_session(self, session: _UdpSession) -> None:
        """Close a session and tell the device, as the gateway does when its WS leg closes."""
        if self._session is session:
            self._session = None
        await self._hub.end(session.conversation)
        goodbye = {"type": "goodbye"}
        if session.conversation is not None:
            goodbye = session.conversation.stamped(goodbye)
        await self.publish(json.dumps(goodbye, separators=(",", ":")))
        self._record.goodbye_sent.set()

    # --- MQTT ----------------------------------------------------------------------------------

    async def _mqtt_loop(self) -> None:
        """Stay subscribed across broker restarts, until stopped."""
        while not self._stopping:
            try:
                async with aiomqtt.Client(
                    self._info.host, self._info.port, identifier=f"xiaozhi-test-server-{uuid.uuid4().hex[:8]}"
                ) as client:
                    await client.subscribe(self._info.publish_topic, qos=0)
                    self._client = client
                    self._record.mqtt_ready.set()
                    async for message in client.messages:
                        await self._on_publish(message.payload)
            except aiomqtt.MqttError as err:
                _LOG.info("xiaozhi test server broker link down: %s", err)
            finally:
                self._client = None
                self._record.mqtt_ready.clear()
                self._record.mqtt_lost.set()
            await asyncio.sleep(_MQTT_RETRY_SECONDS)

    async def _on_publish(self, payload: object) -> None:
        if not isinstance(payload, bytes | bytearray):
            self._record.note_bad_input(f"mqtt payload of type {type(payload).__name__}")
            return
        if len(payload) > _MAX_MQTT_PAYLOAD:
            self._record.note_bad_input(f"mqtt payload of {len(payload)} bytes exceeds {_MAX_MQTT_PAYLOAD}")
            return
        try:
            message = json.loads(payload)
        except ValueError:
            self._record.note_bad_input(f"mqtt payload is not JSON: {payload[:100]!r}")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self._record.note_bad_input(f"mqtt message without a string type: {payload[:100]!r}")
            return
        self._record.device_messages.append(message)
        msg_type = message["type"]
        if msg_type == "hello":
            await self._on_hello(message)
            return
        session = self._session
        if msg_type in ("goodbye", "udp_timeout"):
            self._record.goodbye_received.set()
            if session is not None:
                await self.end_session(session)
        elif session is None or session.conversation is None:
            if msg_type == "mcp":
                self._record.note_bad_input("mqtt mcp message with no session")
            else:
                # The gateway's answer to a message for a session it does not have (§5.2).
                reply = {"type": "goodbye", "session_id": message.get("session_id")}
                await self.publish(json.dumps(reply, separators=(",", ":")))
        else:
            await session.conversation.on_message(message)

    async def _on_hello(self, hello: dict[str, Any]) -> None:
        if hello.get("version") != 3:
            # The gateway drops the whole MQTT connection; with a broker in between we can only ignore it.
            self._record.note_bad_input(f"mqtt hello with version {hello.get('version')!r}, gateway needs 3")
            return
        if not self._hub.settings.answer_hello:
            self._record.hello_received.set()
            return
        if self._session is not None:
            old, self._session = self._session, None
            await self._hub.end(old.conversation)
        session = _UdpSession(session_id=str(uuid.uuid4()), key=os.urandom(16))
        audio_params, features = hello_fields(hello)
        conversation = self._hub.open(
            session_id=session.session_id, channel=_MqttUdpChannel(self, session), features=features
        )
        session.conversation = conversation
        self._session = session
        udp = {
            "server": self._udp_host,
            "port": self.udp_port,
            "encryption": "aes-128-ctr",
            "key": session.key.hex(),
            "nonce": udp_nonce_hex(self.connection_id),
        }
        await conversation.send_json(
            server_hello(self._hub.settings, session.session_id, version=3, transport="udp", udp=udp,
                         audio_params=audio_params)
        )
        self._record.hello_received.set()
        conversation.start()

    # --- UDP -----------------------------------------------------------------------------------

    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        """Gateway receive rules (§4.3): validate, learn the address, drop old sequences, decrypt."""
        session = self._session
        if session is None or session.conversation is None:
            self._record.note_bad_input(f"udp datagram of {len(data)} bytes with no session")
            return
        try:
            header, opus = open_udp_gateway(session.key, data, ssrc=self.connection_id)
        except WireError as err:
            self._record.note_bad_input(str(err))
            return
        session.address = addr
        if header.sequence < session.remote_sequence:
            self._record.note_bad_input(f"udp sequence {header.sequence} < {session.remote_sequence}")
            return
        session.remote_sequence = header.sequence
        session.conversation.on_audio(opus, header.timestamp)

    def send_audio(self, session: _UdpSession, opus: bytes) -> None:
        if session.address is None:
            # Downlink is impossible until the device has sent a packet (issue 78/xiaozhi-esp32#503).
            self._record.downlink_frames_dropped += 1
            _LOG.warning("xiaozhi test server drops downlink audio: device UDP address not learned yet")
            return
        session.local_sequence += 1
        datagram = seal_udp(
            session.key,
            ssrc=self.connection_id,
            timestamp=int(time.time() * 1000),
            sequence=session.local_sequence,
            opus=opus,
        )
        self.send_datagram(session, datagram)
        self._record.downlink_frames_sent += 1

    def send_datagram(self, session: _UdpSession, data: bytes) -> None:
        if self._udp is None or session.address is None:
            _LOG.warning("xiaozhi test server cannot send a datagram: no device address")
            return
        self._udp.sendto(data, session.address)
