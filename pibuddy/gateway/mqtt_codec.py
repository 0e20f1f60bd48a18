"""A sans-I/O MQTT 3.1.1 codec for the server side of the firmware's dialect (docs/protocol.md §3.2).

Written here rather than borrowed: amqtt's codec reads packets from an asyncio stream field by field (not
bytes in, packets out), allocates whatever remaining length the peer announces, and pins an old
`websockets`. This one is small, checks the packet size cap before buffering a body, and is fuzzed
(tests/gateway/test_mqtt_codec.py with hypothesis, scripts/fuzz_mqtt_codec.py with atheris).

`MqttParser.feed(bytes) -> list[Packet]` decodes what a QoS 0 client sends (CONNECT, PUBLISH, SUBSCRIBE,
UNSUBSCRIBE, PINGREQ, DISCONNECT); any other type is a protocol error, as in the reference gateway. The
`encode_*` functions build what a server sends. Refusing QoS > 0 PUBLISHes is the server's policy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from pibuddy.xiaozhi.errors import RemoteProtocolError

_MAX_REMAINING_LENGTH_BYTES: Final = 4
_U16: Final = struct.Struct(">H")
_PROTOCOL_NAMES: Final = {4: b"MQTT", 3: b"MQIsdp"}  # level -> name (3.1.1, 3.1)
_CONNECT_RESERVED_FLAG: Final = 0x01
_SUBSCRIBE_FLAGS: Final = 0x02  # fixed by the spec for SUBSCRIBE and UNSUBSCRIBE


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnackCode(IntEnum):
    """CONNACK return codes of MQTT 3.1.1."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USERNAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


class MqttProtocolError(RemoteProtocolError):
    """The client sent bytes that are not a well-formed MQTT packet; the connection must be closed.

    `hint` is the CONNACK code to answer with when the error is in a CONNECT, else 0 (just close).
    """

    default_hint = 0


class PacketTooLarge(MqttProtocolError):
    """A packet (fixed header included) is over the size cap; rejected before its body is buffered."""


@dataclass(frozen=True, slots=True)
class Connect:
    protocol_level: int
    clean_session: bool
    keepalive: int
    """Seconds; 0 disables the keep-alive check."""
    client_id: str
    username: str | None
    password: bytes | None


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    topics: tuple[tuple[str, int], ...]
    """(topic filter, requested QoS) pairs."""


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PingReq:
    """PINGREQ: no fields."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """DISCONNECT: no fields."""


Packet = Connect | Publish | Subscribe | Unsubscribe | PingReq | Disconnect


class MqttParser:
    """Incremental decoder of the client-to-server byte stream.

    Args:
        max_packet_size: largest whole packet (fixed header included) accepted, in bytes.
    """

    def __init__(self, *, max_packet_size: int) -> None:
        self._max = max_packet_size
        self._buffer = bytearray()

    @property
    def idle(self) -> bool:
        """True when no partial packet is buffered (EOF here is clean; elsewhere it truncates a packet)."""
        return not self._buffer

    def feed(self, data: bytes) -> list[Packet]:
        """Decode every complete packet in `data` plus what was buffered; keep the incomplete rest.

        Raises `MqttProtocolError` at the first malformed packet; the parser is useless afterwards.
        """
        self._buffer += data
        packets: list[Packet] = []
        while True:
            framed = self._next_frame()
            if framed is None:
                return packets
            first, body = framed
            packets.append(_decode(first >> 4, first & 0x0F, body))

    def _next_frame(self) -> tuple[int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        remaining, header_size = 0, 1
        for shift in range(0, 7 * _MAX_REMAINING_LENGTH_BYTES, 7):
            if header_size >= len(buffer):
                return None
            byte = buffer[header_size]
            header_size += 1
            remaining |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
        else:
            raise MqttProtocolError("remaining length longer than 4 bytes")
        total = header_size + remaining
        if total > self._max:
            raise PacketTooLarge(f"packet of {total} bytes exceeds the {self._max}-byte limit")
        if len(buffer) < total:
            return None
        first, body = buffer[0], bytes(buffer[header_size:total])
        del buffer[:total]
        return first, body


class _Reader:
    """Reads MQTT fields from one packet body; running past its end is a malformed packet."""

    __slots__ = ("_body", "_pos")

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._body) - self._pos

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def take(self, size: int) -> bytes:
        if size > self.remaining:
            raise MqttProtocolError(f"field of {size} bytes runs past the end of the packet")
        chunk = self._body[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        raw = self.binary()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MqttProtocolError("string field is not valid UTF-8") from None

    def rest(self) -> bytes:
        return self.take(self.remaining)

    def end(self, what: str) -> None:
        if self.remaining:
            raise MqttProtocolError(f"{self.remaining} unexpected bytes after {what}")


def _decode(kind: int, flags: int, body: bytes) -> Packet:
    reader = _Reader(body)
    match kind:
        case PacketType.CONNECT:
            _require_flags(kind, flags, 0)
            return _decode_connect(reader)
        case PacketType.PUBLISH:
            return _decode_publish(reader, flags)
        case PacketType.SUBSCRIBE:
            _require_flags(kind, flags, _SUBSCRIBE_FLAGS)
            packet_id = reader.u16()
            topics = []
            while reader.remaining:
                topic = reader.text()
                qos = reader.u8()
                if qos > 2:
                    raise MqttProtocolError(f"SUBSCRIBE requests QoS {qos}")
                topics.append((topic, qos))
            if not topics:
                raise MqttProtocolError("SUBSCRIBE without a topic")
            return Subscribe(packet_id, tuple(topics))
        case PacketType.UNSUBSCRIBE:
            _require_flags(kind, flags, _SUBSCRIBE_FLAGS)
            packet_id = reader.u16()
            names = []
            while reader.remaining:
                names.append(reader.text())
            if not names:
                raise MqttProtocolError("UNSUBSCRIBE without a topic")
            return Unsubscribe(packet_id, tuple(names))
        case PacketType.PINGREQ | PacketType.DISCONNECT:
            _require_flags(kind, flags, 0)
            reader.end(PacketType(kind).name)
            return PingReq() if kind == PacketType.PINGREQ else Disconnect()
    try:
        name = PacketType(kind).name
    except ValueError:  # 0 and 15 are reserved
        name = str(kind)
    raise MqttProtocolError(f"packet type {name} is not accepted (QoS 0 only)")


def _require_flags(kind: int, flags: int, expected: int) -> None:
    if flags != expected:
        raise MqttProtocolError(f"{PacketType(kind).name} with fixed-header flags {flags:#x}")


def _decode_connect(reader: _Reader) -> Connect:
    name = reader.binary()
    level = reader.u8()
    if _PROTOCOL_NAMES.get(level) != name:
        raise MqttProtocolError(f"unsupported protocol {name!r} level {level}",
                                hint=ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION)
    flags = reader.u8()
    if flags & _CONNECT_RESERVED_FLAG:
        raise MqttProtocolError("CONNECT reserved flag is set")
    has_username, has_password, has_will = bool(flags & 0x80), bool(flags & 0x40), bool(flags & 0x04)
    will_qos = (flags >> 3) & 0x03
    if will_qos > 2 or (not has_will and (will_qos or flags & 0x20)):
        raise MqttProtocolError("CONNECT has inconsistent will flags")
    if has_password and not has_username:
        raise MqttProtocolError("CONNECT has a password without a user name")
    keepalive = reader.u16()
    client_id = reader.text()
    if has_will:
        reader.text()  # will topic and message: the gateway keeps no will
        reader.binary()
    username = reader.text() if has_username else None
    password = reader.binary() if has_password else None
    reader.end("the CONNECT payload")
    return Connect(level, bool(flags & 0x02), keepalive, client_id, username, password)


def _decode_publish(reader: _Reader, flags: int) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MqttProtocolError("PUBLISH with QoS 3")
    topic = reader.text()
    if not topic or "+" in topic or "#" in topic:
        raise MqttProtocolError(f"PUBLISH to invalid topic {topic!r}")
    packet_id = reader.u16() if qos else None
    return Publish(topic, reader.rest(), qos, bool(flags & 0x01), bool(flags & 0x08), packet_id)


def _fixed_header(kind: PacketType, flags: int, remaining: int) -> bytes:
    encoded = bytearray([kind << 4 | flags])
    while True:
        byte, remaining = remaining & 0x7F, remaining >> 7
        encoded.append(byte | (0x80 if remaining else 0))
        if not remaining:
            return bytes(encoded)


def encode_connack(code: ConnackCode, *, session_present: bool = False) -> bytes:
    return bytes([PacketType.CONNACK << 4, 2, int(session_present), code])


def encode_publish(topic: str, payload: bytes) -> bytes:
    """A QoS 0, non-retained PUBLISH (the only kind the gateway sends)."""
    name = topic.encode("utf-8")
    body_size = 2 + len(name) + len(payload)
    return b"".join((_fixed_header(PacketType.PUBLISH, 0, body_size), _U16.pack(len(name)), name, payload))


def encode_suback(packet_id: int, granted: list[int]) -> bytes:
    return _fixed_header(PacketType.SUBACK, 0, 2 + len(granted)) + _U16.pack(packet_id) + bytes(granted)


def encode_unsuback(packet_id: int) -> bytes:
    return _fixed_header(PacketType.UNSUBACK, 0, 2) + _U16.pack(packet_id)


PINGRESP: Final = bytes([PacketType.PINGRESP << 4, 0])
