"""A deliberately minimal firmware-like xiaozhi device: MQTT and UDP bytes built by hand (docs/protocol.md §3, §4).

It imports nothing from ``pibuddy`` (and no MQTT library), so a misunderstanding shared by PiBuddy's codec
and its tests cannot pass unnoticed. It behaves like the ESP32 firmware where that matters to a gateway:
MQTT 3.1.1, clean session, never subscribes, publishes JSON with QoS 0 to ``device-server``; the UDP header
is the hello's nonce with length, timestamp and sequence written in; the UDP socket is ``connect()``ed to
the advertised address; downlink needs ``len == 16 + payload_len`` and a sequence above the last one.

Its dialect settings make it another client of the field: ``mqtt_level`` 3 (MQTT 3.1, ``MQIsdp``),
``frame_duration``, ``subscribe_qos`` (py-xiaozhi subscribes to its topic with QoS 1), ``answer_mcp``
False (py-xiaozhi never answers the gateway's MCP requests) and ``disconnect_on_goodbye`` (py-xiaozhi
ends its MQTT connection when a session ends).
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass, field
from typing import Any, Final

from .xiaozhi_wire import aes_ctr, reply_topic

PUBLISH_TOPIC: Final = "device-server"
_U16 = struct.Struct(">H")
_HEADER = struct.Struct(">BBHIII")


def _mqtt_string(value: bytes) -> bytes:
    return _U16.pack(len(value)) + value


def _remaining_length(size: int) -> bytes:
    out = bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        out.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(out)


def mqtt_packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + _remaining_length(len(body)) + body


def connect_packet(client_id: str, username: str | None, password: str | None, *, keepalive: int = 240,
                   level: int = 4) -> bytes:
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    name = b"MQTT" if level == 4 else b"MQIsdp"
    body = _mqtt_string(name) + bytes([level, flags]) + _U16.pack(keepalive) + _mqtt_string(client_id.encode())
    if username is not None:
        body += _mqtt_string(username.encode())
    if password is not None:
        body += _mqtt_string(password.encode())
    return mqtt_packet(0x10, body)


def publish_packet(topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 1) -> bytes:
    body = _mqtt_string(topic.encode()) + (_U16.pack(packet_id) if qos else b"") + payload
    return mqtt_packet(0x30 | qos << 1, body)


def subscribe_packet(topic: str, *, packet_id: int = 1, qos: int = 1) -> bytes:
    return mqtt_packet(0x82, _U16.pack(packet_id) + _mqtt_string(topic.encode()) + bytes([qos]))


PINGREQ: Final = bytes([0xC0, 0])
DISCONNECT: Final = bytes([0xE0, 0])


@dataclass
class Downlink:
    """One accepted downlink packet."""

    timestamp: int
    sequence: int
    opus: bytes


@dataclass(frozen=True)
class Alert:
    """What the firmware's `Alert(status, message, emotion)` shows (with its vibration sound)."""

    status: str
    message: str
    emotion: str


@dataclass
class _UdpChannel(asyncio.DatagramProtocol):
    key: bytes
    nonce: bytes
    received: asyncio.Queue[Downlink] = field(default_factory=asyncio.Queue)
    rejected: list[str] = field(default_factory=list)
    remote_sequence: int = 0
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 16 or data[0] != 0x01:
            self.rejected.append("short or wrong type")
            return
        _, _, size, _, timestamp, sequence = _HEADER.unpack_from(data)
        if len(data) != 16 + size:
            self.rejected.append("length mismatch")
            return
        if sequence <= self.remote_sequence:
            self.rejected.append("old sequence")
            return
        self.remote_sequence = sequence
        self.received.put_nowait(Downlink(timestamp, sequence, aes_ctr(self.key, data[:16], data[16:])))


def hello_message(frame_duration: int = 60, **extra: Any) -> dict[str, Any]:
    """The firmware's MQTT hello (the device opens a session with it)."""
    return {"type": "hello", "version": 3, "transport": "udp", "features": {"mcp": True},
            "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1,
                             "frame_duration": frame_duration}} | extra


class FirmwareDevice:
    """Args:
    host, port: the gateway's MQTT endpoint.
    client_id, username, password: as an OTA answer gives them.
    keepalive: CONNECT keep-alive seconds (firmware: 240).
    """

    def __init__(self, host: str, port: int, *, client_id: str, username: str | None, password: str | None,
                 keepalive: int = 240, mqtt_level: int = 4, frame_duration: int = 60,
                 subscribe_qos: int | None = None, disconnect_on_goodbye: bool = False,
                 answer_mcp: bool = True) -> None:
        self.host, self.port = host, port
        self.client_id, self.username, self.password = client_id, username, password
        self.keepalive = keepalive
        self.mqtt_level = mqtt_level
        self.frame_duration = frame_duration
        self.subscribe_qos = subscribe_qos
        self.disconnect_on_goodbye = disconnect_on_goodbye
        self.messages: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.alerts: asyncio.Queue[Alert] = asyncio.Queue()
        """Alerts shown: the firmware shows one whenever its MQTT link is up, in a session or not (it connects
        at boot and passes every message but hello and goodbye to the application), and only with all three
        of status, message and emotion as strings."""
        self.session_id = ""
        self.udp: _UdpChannel | None = None
        self.local_sequence = 0
        self.connack: asyncio.Future[int] | None = None
        self.closed = asyncio.Event()
        self.acks: list[tuple[int, bytes]] = []
        """(packet type, body) of every packet other than CONNACK and PUBLISH (SUBACK, PINGRESP, ...)."""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.answer_mcp = answer_mcp
        """False: the device never answers MCP requests (they stay in `messages`)."""
        self.mcp_delay = 0.0
        """Seconds before each MCP answer (a slow device)."""
        self.page_size = 100
        """Tools per tools/list page; more get a nextCursor (the first left-out tool's name)."""
        self.tools: list[dict[str, Any]] = [
            {"name": "self.get_device_status", "description": "Device status.",
             "inputSchema": {"type": "object", "properties": {}}},
        ]

    # --- MQTT --------------------------------------------------------------------------------------

    async def connect(self) -> int:
        """Open TCP, send CONNECT (and SUBSCRIBE, if this dialect does), return the CONNACK return code."""
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self.connack = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._read_loop())
        self.send_raw(connect_packet(self.client_id, self.username, self.password, keepalive=self.keepalive,
                                     level=self.mqtt_level))
        code = await asyncio.wait_for(self.connack, 5)
        if code == 0 and self.subscribe_qos is not None:
            self.send_raw(subscribe_packet(reply_topic(self.client_id), qos=self.subscribe_qos))
        return code

    def send_raw(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    def publish(self, message: dict[str, Any], *, qos: int = 0) -> None:
        self.send_raw(publish_packet(PUBLISH_TOPIC, json.dumps(message, ensure_ascii=False).encode(), qos=qos))

    async def next_message(self, within: float = 5.0, *, of_type: str | None = None) -> dict[str, Any]:
        """The next JSON message from the gateway (optionally skipping other types)."""
        async with asyncio.timeout(within):
            while True:
                _, message = await self.messages.get()
                if of_type is None or message.get("type") == of_type:
                    return message

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                first = (await self._reader.readexactly(1))[0]
                size, shift = 0, 0
                while True:
                    byte = (await self._reader.readexactly(1))[0]
                    size |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                body = await self._reader.readexactly(size)
                self._on_packet(first >> 4, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self.connack is not None and not self.connack.done():
                self.connack.set_exception(ConnectionError("closed before CONNACK"))
            self.closed.set()

    def _on_packet(self, kind: int, body: bytes) -> None:
        if kind == 2:  # CONNACK
            assert self.connack is not None
            self.connack.set_result(body[1])
        elif kind == 3:  # PUBLISH, QoS 0
            (topic_size,) = _U16.unpack_from(body)
            topic = body[2 : 2 + topic_size].decode()
            message = json.loads(body[2 + topic_size :])
            if message.get("type") == "mcp" and self.answer_mcp and self._answer_mcp(message["payload"]):
                return
            if message.get("type") == "alert" and all(isinstance(message.get(k), str)
                                                      for k in ("status", "message", "emotion")):
                self.alerts.put_nowait(Alert(message["status"], message["message"], message["emotion"]))
            self.messages.put_nowait((topic, message))
            if message.get("type") == "goodbye" and self.disconnect_on_goodbye:
                self.send_raw(DISCONNECT)
                assert self._writer is not None
                self._writer.close()
        else:
            self.acks.append((kind, body))

    def _answer_mcp(self, payload: dict[str, Any]) -> bool:
        """The firmware's MCP server, reduced to what a gateway exercises (§10.2)."""
        method, request_id = payload.get("method"), payload.get("id")
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            return method is not None  # notifications and non-numeric ids: no reply
        if method == "initialize":
            result: dict[str, Any] = {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
                                      "serverInfo": {"name": "firmware-test", "version": "2.4.4"}}
        elif method == "tools/list":
            names = [t["name"] for t in self.tools]
            cursor = (payload.get("params") or {}).get("cursor")
            start = names.index(cursor) if cursor in names else 0
            result = {"tools": self.tools[start : start + self.page_size]}
            if start + self.page_size < len(self.tools):
                result["nextCursor"] = names[start + self.page_size]
        elif method == "tools/call" and payload["params"]["name"] == "self.get_device_status":
            result = {"content": [{"type": "text", "text": '{"audio_speaker":{"volume":70}}'}], "isError": False}
        else:
            self._reply_mcp({"jsonrpc": "2.0", "id": request_id, "error": {"message": f"Unknown {method}"}})
            return True
        self._reply_mcp({"jsonrpc": "2.0", "id": request_id, "result": result})
        return True

    def _reply_mcp(self, payload: dict[str, Any]) -> None:
        message = {"session_id": self.session_id, "type": "mcp", "payload": payload}
        if self.mcp_delay:
            asyncio.get_running_loop().call_later(self.mcp_delay, self.publish, message)
        else:
            self.publish(message)

    async def close(self) -> None:
        if self.udp is not None and self.udp.transport is not None:
            self.udp.transport.close()
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- a session ------------------------------------------------------------------------------

    async def hello(self, within: float = 10.0, **extra: Any) -> dict[str, Any]:
        """Publish the firmware's hello, validate the reply like ParseServerHello, open the UDP socket."""
        self.publish(hello_message(self.frame_duration, **extra))
        reply = await self.next_message(within, of_type="hello")
        udp = reply["udp"]
        assert reply["transport"] == "udp"
        key, nonce = bytes.fromhex(udp["key"]), bytes.fromhex(udp["nonce"])
        assert len(key) == 16
        assert len(nonce) == 16
        if self.udp is not None and self.udp.transport is not None:
            self.udp.transport.close()
        loop = asyncio.get_running_loop()
        _, self.udp = await loop.create_datagram_endpoint(lambda: _UdpChannel(key, nonce),
                                                         remote_addr=(udp["server"], udp["port"]))
        # ParseServerHello takes a string session id and otherwise keeps its own ("" after a close).
        self.session_id = reply["session_id"] if isinstance(reply.get("session_id"), str) else ""
        self.local_sequence = 0
        return reply

    def seal(self, opus: bytes, *, timestamp: int = 0, sequence: int | None = None) -> bytes:
        """The firmware's packet: nonce bytes 0,1 and 4..7 kept; length, timestamp and sequence written in."""
        assert self.udp is not None
        if sequence is None:
            self.local_sequence += 1
            sequence = self.local_sequence
        nonce = self.udp.nonce
        header = nonce[:2] + _U16.pack(len(opus)) + nonce[4:8] + struct.pack(">II", timestamp, sequence)
        return header + aes_ctr(self.udp.key, header, opus)

    def send_audio(self, opus: bytes, *, timestamp: int = 0) -> bytes:
        datagram = self.seal(opus, timestamp=timestamp)
        self.send_datagram(datagram)
        return datagram

    def send_datagram(self, datagram: bytes) -> None:
        assert self.udp is not None
        assert self.udp.transport is not None
        self.udp.transport.sendto(datagram)

    async def next_audio(self, within: float = 5.0) -> Downlink:
        assert self.udp is not None
        return await asyncio.wait_for(self.udp.received.get(), within)
