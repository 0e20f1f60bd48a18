"""The UDP audio packet (§4), the gateway re-framing (§8.2), the sequence rule (§4.3) and udp params.

`TestUdpCodec.codec` is the implementation under test, here the pure-Python twin: the C fast path's test
(test_xiaozhi_udp_packet_native.py) subclasses the class and swaps the module, so both run these vectors.
"""

from __future__ import annotations

import struct
from types import ModuleType
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pibuddy.xiaozhi import udp_codec, udp_packet
from pibuddy.xiaozhi.const import Role
from pibuddy.xiaozhi.errors import InvalidMessage, LocalProtocolError, MalformedPacket
from pibuddy.xiaozhi.framing import AudioFrame, encode_gateway_frame
from pibuddy.xiaozhi.udp_codec import (
    ReceiveWindow,
    SequenceVerdict,
    UdpParams,
    decode_hex16,
    make_nonce,
    ssrc_from_nonce,
)

# §12.3, computed with `cryptography` and cross-checked with `openssl enc -aes-128-ctr`.
VECTOR_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
VECTOR_PAYLOAD = bytes(range(0xA0, 0xB4))
VECTOR_HEADER = bytes.fromhex("01000014123456780000000000000001")
VECTOR_CIPHERTEXT = bytes.fromhex("df23ab7fd5b7d8b0c34dfaa86f7566749b5a3fc8")

keys = st.binary(min_size=16, max_size=16)
# The C path's test subclasses TestUdpCodec, so these properties run from two classes on purpose.
shared = settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
u32 = st.integers(0, 2**32 - 1)
payloads = st.binary(max_size=1500)


class TestUdpCodec:
    codec: ClassVar[ModuleType] = udp_packet

    def test_reference_vector_seal(self) -> None:
        datagram = self.codec.seal(VECTOR_KEY, 0x12345678, 0, 1, VECTOR_PAYLOAD)
        assert datagram == VECTOR_HEADER + VECTOR_CIPHERTEXT
        assert len(datagram) == 36

    def test_reference_vector_open(self) -> None:
        packet = self.codec.open_packet(VECTOR_KEY, VECTOR_HEADER + VECTOR_CIPHERTEXT)
        assert (packet.ssrc, packet.timestamp, packet.sequence) == (0x12345678, 0, 1)
        assert (packet.type, packet.flags) == (1, 0)
        assert packet.payload == VECTOR_PAYLOAD

    def test_pack_header_layout(self) -> None:
        header = self.codec.pack_header(20, 0x12345678, 0xAABBCCDD, 7, type=1, flags=0x80)
        assert header == bytes.fromhex("01800014 12345678 aabbccdd 00000007")
        assert self.codec.pack_header(20, 0x12345678, 0, 1) == VECTOR_HEADER

    @pytest.mark.parametrize(
        "fields",
        [(65536, 1, 0, 1), (1, 2**32, 0, 1), (1, 1, -1, 1), (1, 1, 0, 2**32)],
        ids=["len>u16", "ssrc>u32", "negative timestamp", "sequence>u32"],
    )
    def test_pack_header_rejects_out_of_range_fields(self, fields: tuple[int, ...]) -> None:
        with pytest.raises(LocalProtocolError):
            self.codec.pack_header(*fields)

    def test_keyword_arguments(self) -> None:
        datagram = self.codec.seal(key=VECTOR_KEY, ssrc=0x12345678, timestamp=0, sequence=1, payload=VECTOR_PAYLOAD)
        assert datagram == VECTOR_HEADER + VECTOR_CIPHERTEXT
        packet = self.codec.open_packet(VECTOR_KEY, datagram=datagram + b"x", exact_length=False)
        assert packet.payload == VECTOR_PAYLOAD
        with pytest.raises(TypeError):
            self.codec.open_packet(VECTOR_KEY, datagram, False)  # exact_length is keyword-only
        with pytest.raises(TypeError):
            self.codec.seal(VECTOR_KEY, 1, 0, 1, VECTOR_PAYLOAD, ssrc=2)

    def test_seal_rejects_payload_over_u16(self) -> None:
        with pytest.raises(LocalProtocolError):
            self.codec.seal(VECTOR_KEY, 1, 0, 1, bytes(65536))

    @pytest.mark.parametrize("key", [b"", bytes(15), bytes(24), bytes(32)], ids=len)
    def test_key_must_be_aes128(self, key: bytes) -> None:
        with pytest.raises(LocalProtocolError, match="16 bytes"):
            self.codec.seal(key, 1, 0, 1, b"opus")

    @settings(shared, max_examples=150)
    @given(key=keys, ssrc=u32, timestamp=u32, sequence=u32, payload=payloads)
    def test_seal_open_round_trip(self, key: bytes, ssrc: int, timestamp: int, sequence: int,
                                  payload: bytes) -> None:
        datagram = self.codec.seal(key, ssrc, timestamp, sequence, payload)
        assert len(datagram) == 16 + len(payload)
        assert datagram[:16] == self.codec.pack_header(len(payload), ssrc, timestamp, sequence)
        packet = self.codec.open_packet(key, datagram)
        assert packet == udp_codec.AudioPacket(ssrc, timestamp, sequence, payload)

    def test_header_is_the_counter_block(self) -> None:
        # Same key and payload, another sequence number: a different keystream.
        one = self.codec.seal(VECTOR_KEY, 1, 0, 1, bytes(32))
        two = self.codec.seal(VECTOR_KEY, 1, 0, 2, bytes(32))
        assert one[16:] != two[16:]
        assert one[16:] != bytes(32)

    def test_keys_are_not_mixed_up(self) -> None:
        other = bytes(16)
        a = self.codec.seal(VECTOR_KEY, 1, 0, 1, b"same opus frame")
        b = self.codec.seal(other, 1, 0, 1, b"same opus frame")
        assert a[16:] != b[16:]
        assert self.codec.open_packet(other, b).payload == b"same opus frame"
        assert self.codec.open_packet(other, a).payload != b"same opus frame"

    @pytest.mark.parametrize("size", [0, 1, 15])
    def test_open_rejects_short_datagram(self, size: int) -> None:
        with pytest.raises(MalformedPacket, match="too short"):
            self.codec.open_packet(VECTOR_KEY, VECTOR_HEADER[:size])

    @pytest.mark.parametrize("ptype", [0x00, 0x02, 0xFF])
    def test_open_rejects_wrong_type(self, ptype: int) -> None:
        datagram = bytes([ptype]) + (VECTOR_HEADER + VECTOR_CIPHERTEXT)[1:]
        with pytest.raises(MalformedPacket, match="wrong type"):
            self.codec.open_packet(VECTOR_KEY, datagram)

    def test_firmware_rule_rejects_trailing_bytes(self) -> None:
        with pytest.raises(MalformedPacket, match="length mismatch"):
            self.codec.open_packet(VECTOR_KEY, VECTOR_HEADER + VECTOR_CIPHERTEXT + b"\x00")

    def test_gateway_rule_tolerates_trailing_bytes(self) -> None:
        packet = self.codec.open_packet(VECTOR_KEY, VECTOR_HEADER + VECTOR_CIPHERTEXT + b"junk",
                                        exact_length=False)
        assert packet.payload == VECTOR_PAYLOAD

    @pytest.mark.parametrize("exact_length", [True, False])
    def test_both_rules_reject_truncated_payload(self, exact_length: bool) -> None:
        with pytest.raises(MalformedPacket, match="length mismatch"):
            self.codec.open_packet(VECTOR_KEY, VECTOR_HEADER + VECTOR_CIPHERTEXT[:-1],
                                   exact_length=exact_length)

    def test_udp_to_ws_vector(self) -> None:
        datagram = self.codec.seal(VECTOR_KEY, 0x12345678, 0xCAFEBABE, 9, VECTOR_PAYLOAD)
        packet, frame = self.codec.udp_to_ws(VECTOR_KEY, datagram + b"trailing")
        assert (packet.ssrc, packet.sequence, packet.timestamp) == (0x12345678, 9, 0xCAFEBABE)
        assert frame == bytes(8) + bytes.fromhex("cafebabe 00000014") + VECTOR_PAYLOAD

    def test_udp_to_ws_rejects_malformed(self) -> None:
        with pytest.raises(MalformedPacket):
            self.codec.udp_to_ws(VECTOR_KEY, VECTOR_HEADER[:10])

    def test_ws_to_udp_reads_only_offsets_8_and_12(self) -> None:
        # xiaozhi-server's downlink form: 0x01 0x00 len(u16) sequence(u32) timestamp(u32) len(u32).
        server_frame = encode_gateway_frame(AudioFrame(0x01020304, VECTOR_PAYLOAD), sequence=77)
        assert server_frame[:8] == bytes.fromhex("01000014 0000004d")
        garbage_prefix = b"\xff" * 8 + server_frame[8:]
        for frame in (server_frame, garbage_prefix):
            datagram = self.codec.ws_to_udp(VECTOR_KEY, frame, 0x12345678, 5)
            packet = self.codec.open_packet(VECTOR_KEY, datagram)
            assert (packet.ssrc, packet.timestamp, packet.sequence) == (0x12345678, 0x01020304, 5)
            assert packet.payload == VECTOR_PAYLOAD

    @pytest.mark.parametrize(
        "frame",
        [bytes(15), bytes(12) + struct.pack(">I", 5) + b"abcd", bytes(12) + struct.pack(">I", 70000)],
        ids=["short header", "truncated payload", "length over u16"],
    )
    def test_ws_to_udp_rejects_malformed(self, frame: bytes) -> None:
        with pytest.raises(MalformedPacket):
            self.codec.ws_to_udp(VECTOR_KEY, frame, 1, 1)

    @settings(shared, max_examples=100)
    @given(key=keys, ssrc=u32, timestamp=u32, sequence=u32, payload=payloads, new_ssrc=u32, new_seq=u32)
    def test_gateway_relay_round_trip(self, key: bytes, ssrc: int, timestamp: int, sequence: int,
                                      payload: bytes, new_ssrc: int, new_seq: int) -> None:
        uplink = self.codec.seal(key, ssrc, timestamp, sequence, payload)
        packet, frame = self.codec.udp_to_ws(key, uplink)
        assert packet.payload == payload
        assert len(frame) == 16 + len(payload)
        downlink = self.codec.ws_to_udp(key, frame, new_ssrc, new_seq)
        assert self.codec.open_packet(key, downlink) == udp_codec.AudioPacket(new_ssrc, timestamp, new_seq,
                                                                              payload)


class TestReceiveWindow:
    def test_device_drops_old_and_duplicate(self) -> None:
        window = ReceiveWindow(Role.DEVICE)
        assert [window.admit(s) for s in (1, 2, 2, 1, 3)] == [
            SequenceVerdict.ACCEPT, SequenceVerdict.ACCEPT, SequenceVerdict.STALE, SequenceVerdict.STALE,
            SequenceVerdict.ACCEPT,
        ]
        assert (window.last, window.stale, window.lost) == (3, 2, 0)

    def test_device_drops_sequence_zero_after_hello(self) -> None:
        assert ReceiveWindow(Role.DEVICE).admit(0) is SequenceVerdict.STALE

    def test_gap_is_accepted_and_counted(self) -> None:
        window = ReceiveWindow(Role.DEVICE)
        window.admit(1)
        assert window.admit(5) is SequenceVerdict.GAP
        assert (window.last, window.lost) == (5, 3)
        assert window.admit(4) is SequenceVerdict.STALE

    def test_gateway_accepts_equal_drops_older(self) -> None:
        window = ReceiveWindow(Role.SERVER)
        assert window.admit(0) is SequenceVerdict.ACCEPT
        assert window.admit(3) is SequenceVerdict.GAP
        assert window.admit(3) is SequenceVerdict.ACCEPT
        assert window.admit(2) is SequenceVerdict.STALE
        assert window.stale == 1

    def test_reset_starts_over_but_keeps_counters(self) -> None:
        window = ReceiveWindow(Role.DEVICE)
        window.admit(10)
        window.admit(9)
        window.reset()
        assert window.admit(1) is SequenceVerdict.ACCEPT
        assert window.stale == 1


class TestUdpParams:
    KEY_HEX = "00112233445566778899AABBCCDDEEFF"
    NONCE_HEX = "01000000deadbeef0000000000000000"

    def udp(self, **changes: object) -> dict[str, object]:
        return {"server": "198.51.100.2", "port": 8884, "encryption": "aes-128-ctr", "key": self.KEY_HEX,
                "nonce": self.NONCE_HEX} | changes

    def test_parses_like_the_firmware(self) -> None:
        params = UdpParams.from_dict(self.udp())
        assert params.key == bytes.fromhex(self.KEY_HEX)
        assert params.ssrc == 0xDEADBEEF
        assert params.to_dict() == self.udp(key=self.KEY_HEX.lower())

    def test_encryption_is_optional_and_extra_fields_survive(self) -> None:
        raw = self.udp(future="x")
        del raw["encryption"]
        params = UdpParams.from_dict(raw)
        assert params.encryption is None
        assert params.to_dict() == {**raw, "key": self.KEY_HEX.lower()}

    @pytest.mark.parametrize(
        "changes",
        [{"port": 0}, {"port": 65536}, {"port": "8884"}, {"port": True}, {"port": 8884.0}, {"server": 1},
         {"server": ""}, {"key": "00" * 15}, {"key": "00" * 17}, {"nonce": "zz" * 16},
         {"key": "00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff"}, {"nonce": None}, {"encryption": 1}],
        ids=repr,
    )
    def test_invalid_fields_are_remote_errors(self, changes: dict[str, object]) -> None:
        with pytest.raises(InvalidMessage):
            UdpParams.from_dict(self.udp(**changes))

    def test_missing_server_is_a_remote_error(self) -> None:
        raw = self.udp()
        del raw["server"]
        with pytest.raises(InvalidMessage, match="server"):
            UdpParams.from_dict(raw)

    def test_key_is_not_in_repr(self) -> None:
        assert "key=" not in repr(UdpParams.from_dict(self.udp()))

    def test_hex_either_case(self) -> None:
        assert decode_hex16("AbCd" * 8, "udp.key") == bytes.fromhex("abcd" * 8)

    def test_nonce_template_and_ssrc(self) -> None:
        nonce = make_nonce(0x0A0B0C0D)
        assert nonce.hex() == "010000000a0b0c0d0000000000000000"
        assert ssrc_from_nonce(nonce) == 0x0A0B0C0D
