"""The miIO codec: golden vectors in both directions (made with python-miio's reference codec), the limits,
and the tolerance for what real devices send (trailing NULs, known JSON quirks)."""

from __future__ import annotations

import datetime
import hashlib
import struct

import pytest
from miio.protocol import Message  # GPL: a test-time reference only

from pibuddy.drivers.miot.codec import (
    MAX_PACKET_BYTES,
    Token,
    decode_message,
    encode_message,
    hello_reply,
    hello_request,
    open_packet,
    parse_header,
    seal,
)
from pibuddy.drivers.miot.errors import ChecksumMismatch, MalformedPacket, OversizedPacket

TOKEN = Token.from_hex("00112233445566778899aabbccddeeff")
DID = 0x0000000123456789  # needs more than 32 bits
STAMP = 0x5F5E1000
# {"id": 1, "method": "miIO.info", "params": []} + NUL, as python-miio's Message.build seals it.
INFO_PACKET = bytes.fromhex(
    "2131005000000001234567895f5e100014308d76174e882db02968fdc08084572a36b2b7afa85bd6a9f1ed82b485a3d6c2c13a12855c"
    "97fc9a0bd7be55469c61b5393611ac2c922588d969ad8c226bde")
INFO_PLAINTEXT = b'{"id": 1, "method": "miIO.info", "params": []}\x00'
# Compact JSON, sealed with python-miio's Utils.encrypt and Utils.md5.
GET_PLAINTEXT = b'{"id":7,"method":"get_properties","params":[{"did":"lamp","siid":2,"piid":1}]}\x00'
GET_PACKET = bytes.fromhex(
    "2131007000000001234567895f5e100051607bd3fe00458208ccbb8a505d78067fe3a69e29c435227b660672ab46b6d94e9e43ba725"
    "3d4255da49ec16789601ca84f577497a6ca0d7ea871e5a850fb71ae5abf9d62d17806243a3e6597419f4c0ee527f30370c0337c7d3a3"
    "a05a2b2ca")


def test_key_and_iv_come_from_the_token() -> None:
    assert TOKEN.key.hex() == "6e8311168ee16d6aa1aa48c64145003c"
    assert TOKEN.iv.hex() == "6f434fa9acd75da73e5fb999f641cda2"
    assert "0011" not in repr(TOKEN)


@pytest.mark.parametrize(("plaintext", "packet"), [(INFO_PLAINTEXT, INFO_PACKET), (GET_PLAINTEXT, GET_PACKET)])
def test_golden_vectors_seal_to_the_exact_bytes(plaintext: bytes, packet: bytes) -> None:
    assert seal(plaintext, token=TOKEN, did=DID, stamp=STAMP) == packet


@pytest.mark.parametrize(("plaintext", "packet"), [(INFO_PLAINTEXT, INFO_PACKET), (GET_PLAINTEXT, GET_PACKET)])
def test_golden_vectors_open_to_the_exact_plaintext(plaintext: bytes, packet: bytes) -> None:
    header, opened = open_packet(packet, TOKEN)
    assert (header.did, header.stamp, header.length) == (DID, STAMP, len(packet))
    assert opened == plaintext


def test_decoding_strips_trailing_nuls() -> None:
    assert decode_message(INFO_PLAINTEXT + b"\x00\x00") == {"id": 1, "method": "miIO.info", "params": []}


def test_encoding_is_compact_json_with_one_nul() -> None:
    assert encode_message({"id": 7, "method": "x", "params": ["灯"]}) == (
        '{"id":7,"method":"x","params":["灯"]}'.encode() + b"\x00")


def test_python_miio_reads_what_we_seal() -> None:
    packet = seal(encode_message({"id": 9, "result": [{"siid": 2, "piid": 1, "code": 0, "value": True}]}),
                  token=TOKEN, did=DID, stamp=STAMP)
    parsed = Message.parse(packet, token=TOKEN.raw)
    assert parsed.data.value == {"id": 9, "result": [{"siid": 2, "piid": 1, "code": 0, "value": True}]}
    assert parsed.header.value.unknown == DID >> 32
    assert parsed.header.value.ts == datetime.datetime.fromtimestamp(STAMP, datetime.UTC).replace(tzinfo=None)


def test_hello_request_and_reply() -> None:
    assert hello_request() == bytes.fromhex("21310020") + b"\xff" * 28
    reply = parse_header(hello_reply(DID, STAMP))
    assert (reply.did, reply.stamp, reply.is_hello, reply.checksum) == (DID, STAMP, True, b"\xff" * 16)
    assert parse_header(hello_reply(DID, STAMP, token=TOKEN)).checksum == TOKEN.raw


def test_another_token_is_a_checksum_mismatch() -> None:
    with pytest.raises(ChecksumMismatch):
        open_packet(INFO_PACKET, Token(bytes(16)))


def test_a_flipped_payload_bit_is_caught_by_the_checksum() -> None:
    damaged = bytearray(INFO_PACKET)
    damaged[40] ^= 1
    with pytest.raises(ChecksumMismatch):
        open_packet(bytes(damaged), TOKEN)


@pytest.mark.parametrize(("datagram", "reason"), [
    (b"\x21\x31\x00", "shorter than a miIO header"),
    (b"\x12\x34" + INFO_PACKET[2:], "bad magic"),
    (INFO_PACKET + b"\x00", "the header says 80 bytes"),
    (hello_reply(DID, STAMP), "carries no payload"),
])
def test_malformed_datagrams_raise_typed_errors(datagram: bytes, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason):
        open_packet(datagram, TOKEN)


def test_a_payload_that_is_not_whole_blocks_is_malformed() -> None:
    ciphertext = b"\x01" * 20
    head = struct.pack(">HHQI", 0x2131, 32 + len(ciphertext), DID, STAMP)
    packet = head + hashlib.md5(head + TOKEN.raw + ciphertext).digest() + ciphertext
    with pytest.raises(MalformedPacket, match="AES blocks"):
        open_packet(packet, TOKEN)


def test_oversized_datagrams_are_rejected_before_decrypting() -> None:
    with pytest.raises(OversizedPacket):
        parse_header(b"\x21\x31" + b"\x00" * (MAX_PACKET_BYTES + 1))


@pytest.mark.parametrize(("plaintext", "expected"), [
    (b'{"id":1,"result":{"a":1,,"otu_stat":0}}', {"id": 1, "result": {"a": 1, "otu_stat": 0}}),
    (b'{"id":2,"result":[{"siid":2,"piid":1,"code":0,"value":00}]}\x00',
     {"id": 2, "result": [{"siid": 2, "piid": 1, "code": 0, "value": 0}]}),
])
def test_known_device_json_quirks_are_repaired(plaintext: bytes, expected: dict[str, object]) -> None:
    assert decode_message(plaintext) == expected


@pytest.mark.parametrize("plaintext", [b'{"id": 1, "result": [', b'"ok"', b"\xff\xfe", b""])
def test_garbage_payloads_raise_malformed(plaintext: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode_message(plaintext)
