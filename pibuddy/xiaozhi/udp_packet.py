"""The UDP audio packet path in pure Python (`cryptography`): the twin of the C extension `_udp_packet`.

Packet (§4): a 16-byte big-endian header (type u8 = 0x01, flags u8, payload_len u16, ssrc u32, timestamp u32,
sequence u32) followed by one Opus frame encrypted with AES-128-CTR whose initial counter block is the
header itself. There is no MAC: a forged packet decrypts to noise and fails Opus decoding later.

`_udp_packet.c` implements these five functions byte for byte, with the same exceptions and messages;
`udp_codec` picks one of the two. Change one, change the other: tests/test_xiaozhi_udp_packet_native.py
runs both against one vector table and compares them on random and malformed input.
"""

from __future__ import annotations

import operator
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Final, SupportsIndex, cast

from pibuddy.xiaozhi.const import AES_KEY_SIZE, UDP_HEADER_SIZE, UDP_PACKET_TYPE_AUDIO
from pibuddy.xiaozhi.errors import LocalProtocolError, MalformedPacket
from pibuddy.xiaozhi.framing import AudioFrame, decode_gateway_frame, encode_gateway_frame

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import algorithms

_HEADER: Final = struct.Struct(">BBHIII")
_HEADER_FIELDS: Final = (
    ("type", 0xFF), ("flags", 0xFF), ("payload_len", 0xFFFF),
    ("ssrc", 0xFFFFFFFF), ("timestamp", 0xFFFFFFFF), ("sequence", 0xFFFFFFFF),
)
CIPHER_CACHE_SIZE: Final = 512
"""Keys whose AES state is kept: one per live session; a gateway with more rebuilds on a miss."""


@dataclass(frozen=True, slots=True)
class AudioPacket:
    """A decrypted UDP audio packet.

    The C extension fills these six slots directly and refuses to load if the fields change.
    """

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
    except struct.error:
        values = (type, flags, payload_len, ssrc, timestamp, sequence)
        raise LocalProtocolError(_header_field_error(values)) from None


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


def _header_field_error(values: tuple[object, ...]) -> str:
    """Name the first header field struct refused, in words the C extension repeats exactly."""
    for (name, limit), value in zip(_HEADER_FIELDS, values, strict=True):
        try:
            number = operator.index(cast(SupportsIndex, value))  # TypeError when it is not
        except TypeError:
            return f"UDP header field {name} is not an integer: {value!r}"
        if not 0 <= number <= limit:
            return f"UDP header field {name} out of range 0..{limit}: {value!r}"
    return f"UDP header fields rejected: {values!r}"  # only if an __index__ changes its mind between calls


@lru_cache(maxsize=CIPHER_CACHE_SIZE)
def _aes(key: bytes) -> algorithms.AES:
    # cryptography is imported here, not at the top: it costs 7 MB of RSS, and with the C extension (every
    # normal install) this module is only loaded for AudioPacket.
    from cryptography.hazmat.primitives.ciphers import algorithms  # noqa: PLC0415

    if len(key) != AES_KEY_SIZE:
        raise LocalProtocolError(f"AES-128 key must be {AES_KEY_SIZE} bytes, got {len(key)}")
    return algorithms.AES(key)


def _ctr(key: bytes, header: bytes, data: bytes | memoryview) -> bytes:
    # CTR is symmetric: the same call encrypts and decrypts, and finalize() would add nothing.
    from cryptography.hazmat.primitives.ciphers import Cipher, modes  # noqa: PLC0415 (see _aes)

    return Cipher(_aes(key), modes.CTR(header)).encryptor().update(data)
