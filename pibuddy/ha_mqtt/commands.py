"""What Home Assistant asks of PiBuddy over MQTT, parsed strictly before anything acts on it.

A payload is checked for size before it is decoded; each bad one raises `BadCommand` with a reason for the
log. Ranges and text limits are the control layer's to enforce (the same rules as the CLI's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from pibuddy.errors import PiBuddyError
from pibuddy.ha_mqtt.entities import ANNOUNCE, MUTE, VOLUME

MAX_PAYLOAD_BYTES: Final = 2048
"""Larger than any command Home Assistant sends (its text entity holds 255 characters)."""
_SWITCH: Final = {"ON": True, "OFF": False}


class BadCommand(PiBuddyError):
    """A command payload PiBuddy cannot act on; the message says why."""


@dataclass(frozen=True, slots=True)
class SetVolume:
    percent: int


@dataclass(frozen=True, slots=True)
class SetMuted:
    muted: bool


@dataclass(frozen=True, slots=True)
class Announce:
    text: str


Command = SetVolume | SetMuted | Announce


def parse_command(key: str, payload: bytes) -> Command:
    """The command for entity `key` (volume, mute, announce) carried by `payload`."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadCommand(f"{len(payload)} bytes is too long (at most {MAX_PAYLOAD_BYTES})")
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        raise BadCommand("the payload is not UTF-8 text") from None
    if key == VOLUME:
        return SetVolume(_whole_number(text))
    if key == MUTE:
        if text.strip().upper() not in _SWITCH:
            raise BadCommand(f"{_quote(text)} is not ON or OFF")
        return SetMuted(_SWITCH[text.strip().upper()])
    if key == ANNOUNCE:
        return Announce(text)
    raise BadCommand(f"{key!r} takes no commands")


def _whole_number(text: str) -> int:
    """'42', '42.0' (Home Assistant's number entity may send either) -> 42."""
    try:
        value = float(text)
    except ValueError:
        raise BadCommand(f"{_quote(text)} is not a number") from None
    if not math.isfinite(value) or value != int(value):
        raise BadCommand(f"{_quote(text)} is not a whole number")
    return int(value)


def _quote(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")
