"""The miIO packet codec, sans-I/O: bytes in, packets out, for both roles (client and device).

Layout (docs/drivers.md §2.1, all big-endian): magic 0x2131 (2), total length (2), did (8: python-miio reads
4 "unknown" + 4 did, newer devices need all 64 bits), stamp (4), checksum (16), then the AES-128-CBC
payload with key = MD5(token), iv = MD5(key ‖ token), PKCS#7 padding. The checksum is MD5 over the
header with the token in place of the checksum, followed by the encrypted payload. A hello is a bare
32-byte header: all 0xFF after the length when sent, did and stamp filled in by the device's reply.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pibuddy.drivers.miot.errors import ChecksumMismatch, MalformedPacket, OversizedPacket

MAGIC: Final = 0x2131
HEADER_SIZE: Final = 32
PORT: Final = 54321
# The largest datagram PiBuddy accepts from a device. MIoT answers for 15 properties stay under 2 KiB;
# bigger ones (map uploads of vacuums) are not something a voice tool reads.
MAX_PACKET_BYTES: Final = 16 * 1024
_HEADER: Final = struct.Struct(">HHQI16s")
_HELLO: Final = struct.pack(">HH", MAGIC, HEADER_SIZE) + b"\xff" * 28
_BLOCK_BITS: Final = 128
# Quirks of real devices' JSON (python-miio documents them): a doubled comma and a `"value":00` number.
_QUIRKS: Final = ((re.compile(rb",,"), b","), (re.compile(rb'"value":0+(\d)'), rb'"value":\1'))


@dataclass(frozen=True, slots=True)
class Token:
    """A device's 16-byte miIO token; never printed."""

    raw: bytes = field(repr=False)
    key: bytes = field(init=False, repr=False)
    iv: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.raw) != 16:
            raise ValueError("a miIO token is 16 bytes (32 hex digits)")
        key = hashlib.md5(self.raw).digest()
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "iv", hashlib.md5(key + self.raw).digest())

    @classmethod
    def from_hex(cls, text: str) -> Token:
        try:
            raw = bytes.fromhex(text.strip())
        except ValueError:
            raise ValueError("a miIO token is 32 hex digits") from None
        return cls(raw)

    def cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.iv))


@dataclass(frozen=True, slots=True)
class Header:
    """The 32-byte header; `checksum` is the raw field (the token in an unprovisioned device's hello reply)."""

    did: int
    stamp: int
    length: int
    checksum: bytes = field(repr=False)

    @property
    def is_hello(self) -> bool:
        return self.length == HEADER_SIZE


def hello_request() -> bytes:
    """The 32-byte hello a client sends (unicast or broadcast) to learn a device's did and clock."""
    return _HELLO


def hello_reply(did: int, stamp: int, *, token: Token | None = None) -> bytes:
    """A device's answer to hello. Provisioned devices hide their token (0xFF...); new ones reveal it."""
    checksum = token.raw if token is not None else b"\xff" * 16
    return _HEADER.pack(MAGIC, HEADER_SIZE, did, stamp, checksum)


def parse_header(datagram: bytes) -> Header:
    """The header of any miIO datagram; checks size, magic and length before anything is decrypted."""
    if len(datagram) > MAX_PACKET_BYTES:
        raise OversizedPacket(f"{len(datagram)} bytes is over the {MAX_PACKET_BYTES}-byte limit")
    if len(datagram) < HEADER_SIZE:
        raise MalformedPacket(f"{len(datagram)} bytes is shorter than a miIO header")
    magic, length, did, stamp, checksum = _HEADER.unpack_from(datagram)
    if magic != MAGIC:
        raise MalformedPacket(f"bad magic 0x{magic:04x}")
    if length != len(datagram):
        raise MalformedPacket(f"the header says {length} bytes, the datagram has {len(datagram)}")
    return Header(did, stamp, length, checksum)


def seal(plaintext: bytes, *, token: Token, did: int, stamp: int) -> bytes:
    """One encrypted miIO packet carrying `plaintext` (the JSON bytes of a request or reply)."""
    encryptor = token.cipher().encryptor()
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    ciphertext = encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()
    length = HEADER_SIZE + len(ciphertext)
    if length > 0xFFFF:
        raise OversizedPacket(f"a {length}-byte packet does not fit the 16-bit length field")
    head = struct.pack(">HHQI", MAGIC, length, did, stamp)
    checksum = hashlib.md5(head + token.raw + ciphertext).digest()
    return head + checksum + ciphertext


def open_packet(datagram: bytes, token: Token) -> tuple[Header, bytes]:
    """Check and decrypt a non-hello packet: its header and the plaintext (trailing NULs kept)."""
    header = parse_header(datagram)
    if header.is_hello:
        raise MalformedPacket("a hello packet carries no payload")
    ciphertext = datagram[HEADER_SIZE:]
    expected = hashlib.md5(datagram[:16] + token.raw + ciphertext).digest()
    if expected != header.checksum:
        raise ChecksumMismatch("checksum mismatch (another token?)")
    if len(ciphertext) % 16:
        raise MalformedPacket("the payload is not a whole number of AES blocks")
    decryptor = token.cipher().decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        return header, unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise MalformedPacket("bad padding after decryption") from None


def encode_message(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON plus one NUL, as the established clients send it (devices expect C strings)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode() + b"\x00"


def decode_message(plaintext: bytes) -> dict[str, Any]:
    """A JSON object from a decrypted payload: NULs after the JSON are dropped, known quirks are fixed."""
    text = plaintext.split(b"\x00", 1)[0]
    for attempt in range(len(_QUIRKS) + 1):
        try:
            data = json.loads(text)
            break
        except (UnicodeDecodeError, json.JSONDecodeError):
            if attempt == len(_QUIRKS):
                raise MalformedPacket(f"the payload is not JSON: {text[:60]!r}") from None
            pattern, replacement = _QUIRKS[attempt]
            text = pattern.sub(replacement, text)
    if not isinstance(data, dict):
        raise MalformedPacket(f"the payload is a JSON {type(data).__name__}, not an object")
    return data
