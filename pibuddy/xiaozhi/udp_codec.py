"""The encrypted UDP audio packet (§4) and its re-framing for the gateway's WebSocket leg (§8.2).

Packet: a 16-byte big-endian header (type u8 = 0x01, flags u8, payload_len u16, ssrc u32, timestamp u32,
sequence u32) followed by one Opus frame encrypted with AES-128-CTR whose initial counter block is the
header itself. There is no MAC: a forged packet decrypts to noise and fails Opus decoding later.

This module is the hot path of both the device and the gateway, and the API a C fast path will mirror:
plain functions on bytes, one small frozen result type, errors as `MalformedPacket` with a short reason.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pibuddy.xiaozhi.const import (
    AES_KEY_SIZE,
    UDP_ENCRYPTION,
    UDP_HEADER_SIZE,
    UDP_NONCE_SIZE,
    UDP_PACKET_TYPE_AUDIO,
    Role,
)
from pibuddy.xiaozhi.errors import InvalidMessage, LocalProtocolError, MalformedPacket
from pibuddy.xiaozhi.framing import AudioFrame, decode_gateway_frame, encode_gateway_frame

_HEADER: Final = struct.Struct(">BBHIII")
_CIPHER_CACHE_SIZE: Final = 512  # live keys: one per session; a gateway with more just rebuilds on a miss
_HEX16: Final = re.compile(r"[0-9A-Fa-f]{32}")


@dataclass(frozen=True, slots=True)
class AudioPacket:
    """A decrypted UDP audio packet."""

    ssrc: int
    timestamp: int
    sequence: int
    payload: bytes
    type: int = UDP_PACKET_TYPE_AUDIO
    flags: int = 0


def pack_header(
    payload_len: int, ssrc: int, timestamp: int, sequence: int, *, type: int = 1, flags: int = 0
) -> bytes:
    """The 16-byte header, which is also the packet's AES-CTR initial counter block."""
    try:
        return _HEADER.pack(type, flags, payload_len, ssrc, timestamp, sequence)
    except struct.error as exc:
        raise LocalProtocolError(f"UDP header field out of range: {exc}") from exc


def seal(key: bytes, ssrc: int, timestamp: int, sequence: int, payload: bytes) -> bytes:
    """Build the datagram carrying `payload` (one Opus frame), encrypted under the 16-byte `key`."""
    header = pack_header(len(payload), ssrc, timestamp, sequence)
    return header + _ctr(key, header, payload)


def open_packet(key: bytes, datagram: bytes, *, exact_length: bool = True) -> AudioPacket:
    """Check and decrypt one datagram.

    `exact_length=True` is the firmware's rule (datagram length == 16 + payload_len); False is the
    gateway's (trailing bytes after the payload are tolerated and ignored).
    """
    size = len(datagram)
    if size < UDP_HEADER_SIZE:
        raise MalformedPacket(f"UDP packet too short: {size} bytes")
    ptype, flags, length, ssrc, timestamp, sequence = _HEADER.unpack_from(datagram)
    if ptype != UDP_PACKET_TYPE_AUDIO:
        raise MalformedPacket(f"UDP packet has wrong type 0x{ptype:02x}")
    end = UDP_HEADER_SIZE + length
    if size < end or (exact_length and size != end):
        raise MalformedPacket(f"UDP length mismatch: header says {length} bytes, packet carries {size - 16}")
    header = bytes(datagram[:UDP_HEADER_SIZE])
    payload = _ctr(key, header, memoryview(datagram)[UDP_HEADER_SIZE:end])
    return AudioPacket(ssrc, timestamp, sequence, payload, ptype, flags)


def udp_to_ws(key: bytes, datagram: bytes) -> tuple[AudioPacket, bytes]:
    """Gateway uplink in one call: a device datagram (gateway length rule) -> the chat-server frame.

    The frame is 8 zero bytes, the device's timestamp unchanged, the Opus length, then the Opus data.
    """
    packet = open_packet(key, datagram, exact_length=False)
    return packet, encode_gateway_frame(AudioFrame(packet.timestamp, packet.payload))


def ws_to_udp(key: bytes, ws_frame: bytes, ssrc: int, sequence: int) -> bytes:
    """Gateway downlink in one call: a chat-server frame -> the device datagram.

    Reads the timestamp at offset 8 and the length at offset 12 (bytes 0..7 are ignored); the datagram
    carries the server's timestamp and the gateway's own `ssrc` and `sequence`.
    """
    frame = decode_gateway_frame(ws_frame)
    return seal(key, ssrc, frame.timestamp, sequence, frame.payload)


def decode_hex16(text: object, name: str) -> bytes:
    """A hello's `udp.key` / `udp.nonce`: exactly 32 hex digits (either case), as the firmware requires."""
    if not isinstance(text, str) or not _HEX16.fullmatch(text):
        raise InvalidMessage(f"{name} must be 32 hex digits")
    return bytes.fromhex(text)


def ssrc_from_nonce(nonce: bytes) -> int:
    """The ssrc (the gateway's connection id) a device copies from nonce bytes 4..7 into every packet."""
    return int.from_bytes(nonce[4:8], "big")


def make_nonce(ssrc: int) -> bytes:
    """The gateway's nonce: the header template type=1, flags=0, len=0, ssrc, timestamp=0, sequence=0."""
    return pack_header(0, ssrc, 0, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class UdpParams:
    """The server hello's `udp` object; `key` and `nonce` are the raw 16 bytes (hex on the wire)."""

    server: str
    port: int
    key: bytes = field(repr=False)  # a secret: never in logs
    nonce: bytes
    encryption: str | None = UDP_ENCRYPTION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.server, str) or not self.server:
            raise LocalProtocolError("udp.server must be a non-empty string")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise LocalProtocolError("udp.port must be an integer 1..65535")
        if not isinstance(self.key, bytes) or len(self.key) != AES_KEY_SIZE:
            raise LocalProtocolError(f"udp.key must be {AES_KEY_SIZE} bytes")
        if not isinstance(self.nonce, bytes) or len(self.nonce) != UDP_NONCE_SIZE:
            raise LocalProtocolError(f"udp.nonce must be {UDP_NONCE_SIZE} bytes")
        if self.encryption is not None and not isinstance(self.encryption, str):
            raise LocalProtocolError("udp.encryption must be a string")

    @property
    def ssrc(self) -> int:
        return ssrc_from_nonce(self.nonce)

    @classmethod
    def from_dict(cls, obj: object) -> UdpParams:
        """Validate like the firmware's ParseServerHello (§3.4); `encryption` is kept but not checked."""
        if not isinstance(obj, Mapping):
            raise InvalidMessage("hello.udp must be an object")
        known = {"server", "port", "key", "nonce", "encryption"}
        try:
            return cls(
                server=obj.get("server"), port=obj.get("port"),
                key=decode_hex16(obj.get("key"), "udp.key"), nonce=decode_hex16(obj.get("nonce"), "udp.nonce"),
                encryption=obj.get("encryption"), extra={k: v for k, v in obj.items() if k not in known},
            )
        except LocalProtocolError as exc:
            raise InvalidMessage(exc.reason) from exc

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"server": self.server, "port": self.port}
        if self.encryption is not None:
            out["encryption"] = self.encryption
        out.update(key=self.key.hex(), nonce=self.nonce.hex())
        out.update(self.extra)
        return out


class SequenceVerdict(StrEnum):
    ACCEPT = "accept"
    GAP = "gap"
    """Accepted, but sequence numbers were skipped since the last packet (the firmware warns)."""
    STALE = "stale"
    """Dropped: a duplicate or an old packet."""


@dataclass(slots=True)
class ReceiveWindow:
    """The incoming sequence rule of §4.3, pure: feed it sequence numbers, act on the verdicts.

    A DEVICE drops `seq <= last`; the gateway (SERVER role) drops only `seq < last`, so a repeated
    sequence number passes. `reset()` on every hello; there is no 32-bit wrap handling on either side.
    """

    role: Role
    last: int = 0
    stale: int = 0
    """Packets dropped by the rule, across resets."""
    lost: int = 0
    """Sequence numbers skipped over by gaps, across resets."""

    def admit(self, sequence: int) -> SequenceVerdict:
        if sequence < self.last or (sequence == self.last and self.role is Role.DEVICE):
            self.stale += 1
            return SequenceVerdict.STALE
        skipped = sequence - self.last - 1
        self.last = sequence
        if skipped > 0:
            self.lost += skipped
            return SequenceVerdict.GAP
        return SequenceVerdict.ACCEPT

    def reset(self) -> None:
        self.last = 0


@lru_cache(maxsize=_CIPHER_CACHE_SIZE)
def _aes(key: bytes) -> algorithms.AES:
    if len(key) != AES_KEY_SIZE:
        raise LocalProtocolError(f"AES-128 key must be {AES_KEY_SIZE} bytes, got {len(key)}")
    return algorithms.AES(key)


def _ctr(key: bytes, header: bytes, data: bytes | memoryview) -> bytes:
    # CTR is symmetric: the same call encrypts and decrypts, and finalize() would add nothing.
    return Cipher(_aes(key), modes.CTR(header)).encryptor().update(data)
