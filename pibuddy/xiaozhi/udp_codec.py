"""The encrypted UDP audio packet (§4), its gateway re-framing (§8.2), the sequence rule (§4.3), udp params.

The packet functions (`pack_header`, `seal`, `open_packet`, `udp_to_ws`, `ws_to_udp`) are the hot path of
both the device and the gateway. They come from the C extension `_udp_packet` when it imports, else from
its byte-identical pure-Python twin `udp_packet`; `PIBUDDY_NATIVE=0` forces the twin. The choice is made
once, here, so every caller gets it by importing from this module; `PACKET_PATH` says which one runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, cast

from pibuddy.xiaozhi import udp_packet
from pibuddy.xiaozhi.const import AES_KEY_SIZE, UDP_ENCRYPTION, UDP_NONCE_SIZE, Role
from pibuddy.xiaozhi.errors import InvalidMessage, LocalProtocolError
from pibuddy.xiaozhi.udp_packet import AudioPacket

__all__ = [
    "NATIVE_PACKET_PATH",
    "PACKET_PATH",
    "AudioPacket",
    "ReceiveWindow",
    "SequenceVerdict",
    "UdpParams",
    "decode_hex16",
    "make_nonce",
    "open_packet",
    "pack_header",
    "seal",
    "ssrc_from_nonce",
    "udp_to_ws",
    "ws_to_udp",
]

_HEX16: Final = re.compile(r"[0-9A-Fa-f]{32}")


def _load_native() -> tuple[ModuleType | None, str]:
    """The C extension unless PIBUDDY_NATIVE=0 or it does not import, and a line saying which path runs."""
    if os.environ.get("PIBUDDY_NATIVE", "").strip() == "0":
        return None, "python (PIBUDDY_NATIVE=0)"
    try:
        import pibuddy.xiaozhi._udp_packet as extension  # noqa: PLC0415 (optional: absent where it was not built)
    except ImportError as exc:
        return None, f"python (C extension unavailable: {exc})"
    return extension, f"native C, {extension.OPENSSL_VERSION}"


_native, PACKET_PATH = _load_native()
NATIVE_PACKET_PATH: Final = _native is not None
"""True when the packet functions below are the C extension's."""

if TYPE_CHECKING:  # both implementations have the twin's signatures
    from pibuddy.xiaozhi.udp_packet import open_packet, pack_header, seal, udp_to_ws, ws_to_udp
else:
    _packet = _native or udp_packet
    pack_header = _packet.pack_header
    seal = _packet.seal
    open_packet = _packet.open_packet
    udp_to_ws = _packet.udp_to_ws
    ws_to_udp = _packet.ws_to_udp


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
                server=cast(str, obj.get("server")), port=cast(int, obj.get("port")),  # checked in __post_init__
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
    FAR_AHEAD = "far ahead"
    """Dropped: more than `MAX_SEQUENCE_AHEAD` above the last one accepted (forged, not remembered)."""

    @property
    def dropped(self) -> bool:
        return self is SequenceVerdict.STALE or self is SequenceVerdict.FAR_AHEAD


MAX_SEQUENCE_AHEAD: Final = 4096
"""The receive window: a sequence number may run at most this far ahead of the last one accepted, about
4 minutes of 60 ms frames lost in a row. Further ahead it is dropped and not remembered, so one forged
packet (sequence 0xFFFFFFF0) cannot make every later real packet look old. A peer that really lost more
than this says hello again, which resets the window."""


@dataclass(slots=True)
class ReceiveWindow:
    """The incoming sequence rule of §4.3, pure: feed it sequence numbers, act on the verdicts.

    Role.DEVICE drops `seq <= last` (the firmware's rule); Role.SERVER drops only `seq < last` (the reference
    gateway's rule), so a repeated sequence number passes. PiBuddy's gateway relay (`gateway/udp_relay.py`)
    applies the DEVICE rule to the devices' packets: a repeat is a replay, dropped. `reset()` on every
    hello; there is no 32-bit wrap handling on either side.
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
        if sequence - self.last > MAX_SEQUENCE_AHEAD:
            self.stale += 1
            return SequenceVerdict.FAR_AHEAD
        skipped = sequence - self.last - 1
        self.last = sequence
        if skipped > 0:
            self.lost += skipped
            return SequenceVerdict.GAP
        return SequenceVerdict.ACCEPT

    def reset(self) -> None:
        self.last = 0
