"""WebSocket binary framing: device protocols v1/v2/v3 (§6.3) and the gateway leg (§8.2)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pibuddy.xiaozhi.errors import LocalProtocolError, MalformedPacket
from pibuddy.xiaozhi.framing import (
    AudioFrame,
    WsProtocolVersion,
    decode_frame,
    decode_gateway_frame,
    encode_frame,
    encode_gateway_frame,
)

V1, V2, V3 = WsProtocolVersion.V1, WsProtocolVersion.V2, WsProtocolVersion.V3
frames = st.builds(AudioFrame, st.integers(0, 2**32 - 1), st.binary(max_size=1500))


def test_exact_bytes_per_version() -> None:
    frame = AudioFrame(0x01020304, b"abc")
    assert encode_frame(V1, frame) == b"abc"
    assert encode_frame(V2, frame) == bytes.fromhex("0002 0000 00000000 01020304 00000003") + b"abc"
    assert encode_frame(V3, frame) == bytes.fromhex("00 00 0003") + b"abc"


@settings(max_examples=100, deadline=None)
@given(frame=frames)
def test_v2_round_trip_keeps_timestamp(frame: AudioFrame) -> None:
    assert decode_frame(V2, encode_frame(V2, frame)) == frame


@settings(max_examples=100, deadline=None)
@given(frame=frames, version=st.sampled_from([V1, V3]))
def test_v1_v3_round_trip_without_timestamp(frame: AudioFrame, version: WsProtocolVersion) -> None:
    assert decode_frame(version, encode_frame(version, frame)) == AudioFrame(0, frame.payload)


def test_v2_reads_frames_whatever_their_type_like_the_firmware() -> None:
    json_typed = struct.pack(">HHIII", 2, 1, 0, 5, 2) + b"{}"
    assert decode_frame(V2, json_typed) == AudioFrame(5, b"{}")


@pytest.mark.parametrize(
    ("version", "data", "reason"),
    [
        (V2, bytes(15), "too short"),
        (V2, struct.pack(">HHIII", 2, 0, 0, 0, 4) + b"abc", "declares 4"),
        (V2, struct.pack(">HHIII", 2, 0, 0, 0, 2) + b"abc", "declares 2"),
        (V2, struct.pack(">HHIII", 2, 0, 0, 0, 0xFFFFFFFF), "declares"),
        (V3, bytes(3), "too short"),
        (V3, bytes.fromhex("00000005") + b"abcd", "declares 5"),
        (V3, bytes.fromhex("00000001") + b"ab", "declares 1"),
        (V1, bytes(65536), "exceeds"),
    ],
    ids=["v2 short", "v2 truncated", "v2 trailing", "v2 huge size", "v3 short", "v3 truncated",
         "v3 trailing", "v1 oversized"],
)
def test_malformed_frames(version: WsProtocolVersion, data: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason):
        decode_frame(version, data)


@pytest.mark.parametrize("version", list(WsProtocolVersion))
def test_encoding_an_oversized_payload_is_our_error(version: WsProtocolVersion) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(version, AudioFrame(0, bytes(65536)))


def test_v2_timestamp_out_of_range_is_our_error() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(V2, AudioFrame(2**32, b"x"))


def test_gateway_uplink_and_server_downlink_forms() -> None:
    frame = AudioFrame(0xA0B0C0D0, b"opus")
    assert encode_gateway_frame(frame) == bytes(8) + bytes.fromhex("a0b0c0d0 00000004") + b"opus"
    assert encode_gateway_frame(frame, sequence=3) == bytes.fromhex(
        "01 00 0004 00000003 a0b0c0d0 00000004"
    ) + b"opus"


@settings(max_examples=100, deadline=None)
@given(frame=frames, sequence=st.none() | st.integers(0, 2**32 - 1), trailing=st.binary(max_size=8))
def test_gateway_round_trip_tolerates_trailing_bytes(frame: AudioFrame, sequence: int | None,
                                                     trailing: bytes) -> None:
    assert decode_gateway_frame(encode_gateway_frame(frame, sequence=sequence) + trailing) == frame


@pytest.mark.parametrize(
    "data",
    [bytes(15), bytes(12) + struct.pack(">I", 3) + b"ab", bytes(12) + struct.pack(">I", 65536) + bytes(65536)],
    ids=["short", "truncated", "over the UDP limit"],
)
def test_gateway_malformed(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode_gateway_frame(data)
