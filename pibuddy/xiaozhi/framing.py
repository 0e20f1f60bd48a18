"""Opus frames inside WebSocket binary messages: the device protocols v1/v2/v3 (§6.3) and the gateway leg (§8.2).

One WebSocket binary message carries exactly one frame, so every decoder insists the declared size
matches the message (v2, v3) and rejects sizes over `MAX_AUDIO_FRAME_SIZE` before copying anything.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from pibuddy.xiaozhi.const import (
    GATEWAY_WS_HEADER_SIZE,
    MAX_AUDIO_FRAME_SIZE,
    UDP_PACKET_TYPE_AUDIO,
    WS_V2_HEADER_SIZE,
    WS_V2_TYPE_OPUS,
    WS_V2_VERSION,
    WS_V3_HEADER_SIZE,
    WS_V3_TYPE_OPUS,
)
from pibuddy.xiaozhi.errors import LocalProtocolError, MalformedPacket

_V2_HEADER: Final = struct.Struct(">HHIII")  # version, type, reserved, timestamp, payload_size
_V3_HEADER: Final = struct.Struct(">BBH")  # type, reserved, payload_size
_GATEWAY_HEADER: Final = struct.Struct(">BBHIII")  # 8 bytes nobody reads, timestamp, payload length


class WsProtocolVersion(IntEnum):
    """The `Protocol-Version` header of a device WebSocket connection."""

    V1 = 1
    """Raw Opus, no header; the only form xiaozhi-server accepts from devices."""
    V2 = 2
    """16-byte header with a millisecond timestamp."""
    V3 = 3
    """4-byte header, no timestamp."""


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One Opus packet and its timestamp (ms, u32; 0 where the framing carries none)."""

    timestamp: int
    payload: bytes


def encode_frame(version: WsProtocolVersion, frame: AudioFrame) -> bytes:
    """Frame `frame` for a device WebSocket; v1 and v3 cannot carry the timestamp and drop it."""
    size = len(frame.payload)
    if size > MAX_AUDIO_FRAME_SIZE:
        raise LocalProtocolError(f"audio frame of {size} bytes exceeds {MAX_AUDIO_FRAME_SIZE}")
    match version:
        case WsProtocolVersion.V1:
            return bytes(frame.payload)
        case WsProtocolVersion.V2:
            header = _pack(_V2_HEADER, WS_V2_VERSION, WS_V2_TYPE_OPUS, 0, frame.timestamp, size)
        case WsProtocolVersion.V3:
            header = _pack(_V3_HEADER, WS_V3_TYPE_OPUS, 0, size)
    return header + frame.payload


def decode_frame(version: WsProtocolVersion, data: bytes) -> AudioFrame:
    """Read one device WebSocket binary message.

    Like the firmware, v2 reads only the timestamp and payload_size (version and type are not checked:
    a server sending v2 frames with type 1 would be misread by a real device too).
    """
    size = len(data)
    match version:
        case WsProtocolVersion.V1:
            if size > MAX_AUDIO_FRAME_SIZE:
                raise MalformedPacket(f"v1 frame of {size} bytes exceeds {MAX_AUDIO_FRAME_SIZE}")
            return AudioFrame(0, bytes(data))
        case WsProtocolVersion.V2:
            if size < WS_V2_HEADER_SIZE:
                raise MalformedPacket(f"v2 frame too short: {size} bytes")
            _, _, _, timestamp, declared = _V2_HEADER.unpack_from(data)
            _check_size("v2", declared, size - WS_V2_HEADER_SIZE)
            return AudioFrame(timestamp, bytes(data[WS_V2_HEADER_SIZE:]))
        case WsProtocolVersion.V3:
            if size < WS_V3_HEADER_SIZE:
                raise MalformedPacket(f"v3 frame too short: {size} bytes")
            _, _, declared = _V3_HEADER.unpack_from(data)
            _check_size("v3", declared, size - WS_V3_HEADER_SIZE)
            return AudioFrame(0, bytes(data[WS_V3_HEADER_SIZE:]))
    raise LocalProtocolError(f"unknown WebSocket protocol version {version!r}")


def encode_gateway_frame(frame: AudioFrame, *, sequence: int | None = None) -> bytes:
    """Frame audio for the gateway <-> chat-server leg (§8.2).

    Without `sequence` this is the gateway's uplink form (8 zero bytes, timestamp, length); with it, the
    chat server's downlink form (0x01, 0x00, u16 length, u32 sequence, timestamp, length).
    """
    size = len(frame.payload)
    if size > MAX_AUDIO_FRAME_SIZE:
        raise LocalProtocolError(f"audio frame of {size} bytes exceeds {MAX_AUDIO_FRAME_SIZE}")
    if sequence is None:
        header = _pack(_GATEWAY_HEADER, 0, 0, 0, 0, frame.timestamp, size)
    else:
        header = _pack(_GATEWAY_HEADER, UDP_PACKET_TYPE_AUDIO, 0, size, sequence, frame.timestamp, size)
    return header + frame.payload


def decode_gateway_frame(data: bytes) -> AudioFrame:
    """Read a gateway-leg frame of either direction: timestamp at offset 8, length at 12.

    Bytes 0..7 are ignored and trailing bytes tolerated, as the gateway does; a frame shorter than its
    declared length is rejected (the gateway would silently forward a truncated packet).
    """
    size = len(data)
    if size < GATEWAY_WS_HEADER_SIZE:
        raise MalformedPacket(f"gateway frame too short: {size} bytes")
    *_, timestamp, declared = _GATEWAY_HEADER.unpack_from(data)
    if declared > MAX_AUDIO_FRAME_SIZE:
        raise MalformedPacket(f"gateway frame declares {declared} bytes, over {MAX_AUDIO_FRAME_SIZE}")
    end = GATEWAY_WS_HEADER_SIZE + declared
    if size < end:
        raise MalformedPacket(f"gateway frame declares {declared} bytes but carries {size - 16}")
    return AudioFrame(timestamp, bytes(data[GATEWAY_WS_HEADER_SIZE:end]))


def _check_size(name: str, declared: int, available: int) -> None:
    if declared != available:
        raise MalformedPacket(f"{name} frame declares {declared} payload bytes but carries {available}")
    if declared > MAX_AUDIO_FRAME_SIZE:
        raise MalformedPacket(f"{name} frame of {declared} bytes exceeds {MAX_AUDIO_FRAME_SIZE}")


def _pack(layout: struct.Struct, *fields: int) -> bytes:
    try:
        return layout.pack(*fields)
    except struct.error as exc:
        raise LocalProtocolError(f"header field out of range: {exc}") from exc
