"""MIoT errors: wire-level protocol errors, the driver's extra `DriverError` leaves, and the table that turns a
per-item MIoT result code into a short sentence the voice can speak.

Codes come from two places: the Mi cloud's `miotspec` answers (docs/drivers.md §1.5, nine digits) and the
MIoT-over-miIO answers of devices on the LAN (four digits, -4001 ...).
"""

from __future__ import annotations

from typing import Final

from pibuddy.errors import (
    AuthFailed,
    DeviceNotResponding,
    DeviceUnreachable,
    DriverError,
    InvalidArguments,
    NotFound,
    Party,
    PiBuddyError,
)
from pibuddy.jsonvalues import is_int


class MiioProtocolError(PiBuddyError):
    """A miIO datagram or payload PiBuddy cannot accept; the LAN client logs it and drops the datagram."""


class MalformedPacket(MiioProtocolError):
    """Wrong magic, a length that disagrees with the datagram, bad padding, or a payload that is not JSON."""


class ChecksumMismatch(MiioProtocolError):
    """The MD5 checksum does not match: another token, or a corrupted datagram."""


class OversizedPacket(MiioProtocolError):
    """Larger than PiBuddy accepts from a device; rejected before decrypting."""


class BadReply(DriverError):
    """The device or the cloud answered, but with something PiBuddy cannot read."""

    code = "bad_reply"


class DeviceRejected(DriverError):
    """The device or the cloud understood the request and refused it (a per-item or RPC error code)."""

    code = "device_rejected"


class TwoFactorRequired(AuthFailed):
    """Xiaomi wants a verification step (SMS/e-mail code or captcha) that a password login cannot pass."""

    code = "two_factor_required"

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class SessionExpired(AuthFailed):
    """The Mi cloud no longer accepts the stored session and it could not be renewed."""

    code = "session_expired"
    default_party = Party.MI_CLOUD


# Codes that mean "done" or "accepted, in progress" although they are not 0 (docs/drivers.md §1.5).
_ACCEPTED_CODES: Final = frozenset({0, 1, -702000000, -702010000})

_OFFLINE = "{name} is offline"
_NOT_FOUND = "{name} is not known to the Mi cloud any more"
# code -> (error class, sentence); `{name}` is the device's spoken name, `{what}` the control.
_CODE_TEXT: Final[dict[int, tuple[type[DriverError], str]]] = {
    -704042011: (DeviceUnreachable, _OFFLINE),
    -704042001: (NotFound, _NOT_FOUND),
    -704090001: (NotFound, _NOT_FOUND),
    -704040003: (NotFound, "{name} has no {what}"),
    -704040004: (NotFound, "{name} has no such event"),
    -704040005: (NotFound, "{name} cannot do {what}"),
    -704030013: (DeviceRejected, "{what} of {name} cannot be read"),
    -704030023: (DeviceRejected, "{what} of {name} cannot be changed"),
    -704030033: (DeviceRejected, "{what} of {name} does not report changes"),
    -704220043: (InvalidArguments, "{name} refused that value for {what}"),
    -704220035: (InvalidArguments, "{name} refused the input for {what}"),
    -704220025: (InvalidArguments, "{what} of {name} got the wrong number of inputs"),
    -704220008: (InvalidArguments, "{name} does not know {what}"),
    -704030992: (DeviceRejected, "{name} is busy, too many requests: try again in a moment"),
    -704083036: (DeviceNotResponding, "{name} did not answer in time"),
    -702022036: (DeviceRejected, "{name} is still busy with the last command"),
    -705201013: (DeviceRejected, "{name} failed to read {what}"),
    -706012013: (DeviceRejected, "{name} failed to read {what}"),
    -706012014: (DeviceRejected, "{name} failed to read {what}"),
    -705201023: (DeviceRejected, "{name} failed to change {what}"),
    -706012023: (DeviceRejected, "{name} failed to change {what}"),
    -705201015: (DeviceRejected, "{name} failed to do {what}"),
    -706012015: (DeviceRejected, "{name} failed to do {what}"),
    # MIoT over miIO on the LAN. UNCONFIRMED: taken from community notes on the MIoT spec, not a document.
    -4001: (DeviceRejected, "{what} of {name} cannot be read"),
    -4002: (DeviceRejected, "{what} of {name} cannot be changed"),
    -4003: (NotFound, "{name} has no {what}"),
    -4004: (DeviceRejected, "{name} had an internal error"),
    -4005: (InvalidArguments, "{name} refused that value for {what}"),
    -4006: (InvalidArguments, "{name} refused the input for {what}"),
}


def code_ok(code: object) -> bool:
    """Whether a per-item `code` means success (absent codes count as success, as devices omit them)."""
    if code is None:
        return True
    return is_int(code) and (code in _ACCEPTED_CODES or code >= 0)


def error_for_code(code: int, *, name: str, what: str) -> DriverError:
    """The spoken error for a failed per-item code: `-704042011` -> DeviceUnreachable("the lamp is offline")."""
    kind, text = _CODE_TEXT.get(code, (DeviceRejected, "{name} refused {what} (error {code})"))
    return kind(text.format(name=name, what=what, code=code), device=name)
