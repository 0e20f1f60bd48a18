"""The peer's own xiaozhi wire codec (docs/protocol.md §2.3, §4, §6.2, §6.3, §8.2).

Written independently of ``pibuddy.xiaozhi`` on purpose: the test peers check PiBuddy's codec
against this one, so it must never import PiBuddy code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

UDP_HEADER_SIZE: Final = 16
UDP_PACKET_TYPE_AUDIO: Final = 0x01
_UDP_HEADER = struct.Struct(">BBHIII")  # type, flags, payload_len, ssrc, timestamp, sequence
_WS_V2_HEADER = struct.Struct(">HHIII")  # version, type, reserved, timestamp, payload_size
_WS_V3_HEADER = struct.Struct(">BBH")  # type, reserved, payload_size
_GATEWAY_DOWN_HEADER = struct.Struct(">BBHIII")  # 0x01, 0x00, len16, sentence seq, timestamp, len32
_U32: Final = 1 << 32


class WireError(ValueError):
    """A malformed frame or packet; ``str(err)`` is the one-line reason the peer logs."""


# --- UDP audio packets (§4) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UdpHeader:
    """The 16-byte UDP header, which is also the AES-CTR IV of its payload."""

    payload_len: int
    ssrc: int
    timestamp: int
    sequence: int
    packet_type: int = UDP_PACKET_TYPE_AUDIO
    flags: int = 0

    def pack(self) -> bytes:
        return _UDP_HEADER.pack(
            self.packet_type, self.flags, self.payload_len, self.ssrc, self.timestamp, self.sequence
        )

    @classmethod
    def parse(cls, data: bytes) -> UdpHeader:
        if len(data) < UDP_HEADER_SIZE:
            raise WireError(f"udp datagram of {len(data)} bytes is shorter than the 16-byte header")
        ptype, flags, plen, ssrc, ts, seq = _UDP_HEADER.unpack_from(data)
        return cls(payload_len=plen, ssrc=ssrc, timestamp=ts, sequence=seq, packet_type=ptype, flags=flags)


def aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CTR with the full 16-byte block as big-endian counter (encrypt == decrypt)."""
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor().update(data)


def seal_udp(key: bytes, *, ssrc: int, timestamp: int, sequence: int, opus: bytes) -> bytes:
    """Build one datagram: clear header followed by the payload encrypted with the header as IV."""
    if len(opus) > 0xFFFF:
        raise WireError(f"opus frame of {len(opus)} bytes does not fit the u16 length field")
    header = UdpHeader(len(opus), ssrc, timestamp % _U32, sequence % _U32).pack()
    return header + aes_ctr(key, header, opus)


def open_udp_gateway(key: bytes, datagram: bytes, *, ssrc: int) -> tuple[UdpHeader, bytes]:
    """Decrypt an uplink datagram with the gateway's receive rules of §4.3 (trailing bytes tolerated).

    The sequence rule needs session state and is left to the caller.
    """
    header = UdpHeader.parse(datagram)
    if header.packet_type != UDP_PACKET_TYPE_AUDIO:
        raise WireError(f"udp packet type {header.packet_type:#04x} is not audio (0x01)")
    if len(datagram) < UDP_HEADER_SIZE + header.payload_len:
        raise WireError(f"udp datagram of {len(datagram)} bytes is shorter than 16 + {header.payload_len}")
    if header.ssrc != ssrc:
        raise WireError(f"udp connection id {header.ssrc:#010x} is unknown")
    payload = datagram[UDP_HEADER_SIZE : UDP_HEADER_SIZE + header.payload_len]
    return header, aes_ctr(key, datagram[:UDP_HEADER_SIZE], payload)


def udp_nonce_hex(connection_id: int) -> str:
    """The hello's nonce: the header template 01 00 0000 <connId> 00000000 00000000."""
    return UdpHeader(0, connection_id, 0, 0).pack().hex()


# --- OTA-issued MQTT credentials (§2.3) and WS auth tokens (§6.2) ------------------------------


def mqtt_client_id(group: str, mac: str, uuid: str) -> str:
    return f"{group}@@@{mac.replace(':', '_').replace('-', '_')}@@@{uuid}"


def reply_topic(client_id: str) -> str:
    """``devices/p2p/<mac_>``: where the gateway publishes to a device (second client-id part)."""
    return f"devices/p2p/{client_id.split('@@@')[1]}"


def mqtt_username(user_data: dict[str, Any]) -> str:
    """Standard padded Base64 of the compact JSON user data."""
    raw = json.dumps(user_data, separators=(",", ":")).encode()
    return base64.b64encode(raw).decode()


def mqtt_password(signature_key: str, client_id: str, username: str) -> str:
    digest = hmac.new(signature_key.encode(), f"{client_id}|{username}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def ws_auth_token(secret: str, client_id: str, device_id: str, timestamp: int) -> str:
    """``<base64url-nopad HMAC-SHA256(secret, "client|device|ts")>.<ts>``."""
    msg = f"{client_id}|{device_id}|{timestamp}".encode()
    sig = base64.urlsafe_b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).rstrip(b"=")
    return f"{sig.decode()}.{timestamp}"


def verify_ws_auth_token(
    secret: str, token: str, *, client_id: str, device_id: str, now: float, max_age: float
) -> bool:
    sig_text, _, ts_text = token.rpartition(".")
    if not sig_text or not ts_text.isdigit():
        return False
    ts = int(ts_text)
    if now - ts > max_age:
        return False
    expected = ws_auth_token(secret, client_id, device_id, ts)
    return hmac.compare_digest(expected.encode(), token.encode())


def activation_hmac(key: bytes, challenge: str) -> str:
    """The v2 activate body's ``hmac``: lowercase hex HMAC-SHA256(key, challenge)."""
    return hmac.new(key, challenge.encode(), hashlib.sha256).hexdigest()


# --- WebSocket binary framing (§6.3, §8.2) -----------------------------------------------------


class Framing(Enum):
    """How binary WebSocket messages are framed on one connection."""

    V1 = "raw opus"
    V2 = "16-byte BinaryProtocol2 header"
    V3 = "4-byte BinaryProtocol3 header"
    GATEWAY = "?from=mqtt_gateway 16-byte header"

    @classmethod
    def for_connection(cls, protocol_version: str, *, from_gateway: bool) -> Framing:
        if from_gateway:
            return cls.GATEWAY
        try:
            return {"1": cls.V1, "2": cls.V2, "3": cls.V3}[protocol_version]
        except KeyError:
            raise WireError(f"unsupported Protocol-Version {protocol_version!r}") from None


def parse_uplink(framing: Framing, data: bytes) -> tuple[int, bytes]:
    """Return ``(timestamp, opus)`` from one device/gateway binary message."""
    if framing is Framing.V1:
        return 0, data
    if framing is Framing.GATEWAY:
        # xiaozhi-server reads only the timestamp and takes everything after the header.
        if len(data) < 16:
            raise WireError(f"gateway audio frame of {len(data)} bytes is shorter than its 16-byte header")
        return int.from_bytes(data[8:12], "big"), data[16:]
    if framing is Framing.V2:
        if len(data) < _WS_V2_HEADER.size:
            raise WireError(f"v2 frame of {len(data)} bytes is shorter than its 16-byte header")
        version, ftype, _reserved, ts, size = _WS_V2_HEADER.unpack_from(data)
        if version != 2 or ftype != 0:
            raise WireError(f"v2 frame has version {version} type {ftype}, expected 2/0 (opus)")
        return ts, _exact_payload(data, _WS_V2_HEADER.size, size, "v2")
    if len(data) < _WS_V3_HEADER.size:
        raise WireError(f"v3 frame of {len(data)} bytes is shorter than its 4-byte header")
    ftype, _reserved, size = _WS_V3_HEADER.unpack_from(data)
    if ftype != 0:
        raise WireError(f"v3 frame has type {ftype}, expected 0 (opus)")
    return 0, _exact_payload(data, _WS_V3_HEADER.size, size, "v3")


def _exact_payload(data: bytes, header_size: int, size: int, name: str) -> bytes:
    if len(data) != header_size + size:
        raise WireError(f"{name} frame declares {size} payload bytes but carries {len(data) - header_size}")
    return data[header_size:]


def frame_downlink(framing: Framing, opus: bytes, *, timestamp: int, sequence: int) -> bytes:
    """Frame one downlink Opus packet the way xiaozhi-server would on this connection."""
    ts = timestamp % _U32
    if framing is Framing.V1:
        return opus
    if framing is Framing.V2:
        return _WS_V2_HEADER.pack(2, 0, 0, ts, len(opus)) + opus
    if len(opus) > 0xFFFF:
        raise WireError(f"opus frame of {len(opus)} bytes does not fit a u16 length")
    if framing is Framing.V3:
        return _WS_V3_HEADER.pack(0, 0, len(opus)) + opus
    return _GATEWAY_DOWN_HEADER.pack(0x01, 0x00, len(opus), sequence % _U32, ts, len(opus)) + opus


def frame_gateway_uplink(opus: bytes, *, timestamp: int) -> bytes:
    """Gateway → server uplink frame (§8.2): 8 zero bytes, u32 timestamp, u32 length, opus."""
    return bytes(8) + struct.pack(">II", timestamp % _U32, len(opus)) + opus
