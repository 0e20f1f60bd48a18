"""What the control layer reports: typed, frozen snapshots of the running buddy, and their JSON form.

These are the control layer's public types (the CLI, the web page and Home Assistant's MQTT entities read
them); nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pibuddy.errors import PiBuddyError
from pibuddy.events import ServiceHealth


class ControlError(PiBuddyError):
    """A command that cannot be carried out; the message says why, for the user."""


class AssistantState(StrEnum):
    """The one word a household display shows. MUTED wins over everything; OFFLINE means the xiaozhi server
    is unreachable (the local brain may still answer: see `Snapshot.brain`)."""

    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    OFFLINE = "offline"
    MUTED = "muted"


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    """The link to the xiaozhi server."""

    connected: bool
    transport: str
    detail: str


@dataclass(frozen=True, slots=True)
class GatewayDevice:
    """A stock ESP32 xiaozhi device connected to PiBuddy's gateway."""

    client_id: str
    mac: str
    ip: str
    in_conversation: bool


@dataclass(frozen=True, slots=True)
class TimerStatus:
    """A running (or ringing) timer."""

    id: str
    name: str
    """What the user called it ("pasta"), "" for an unnamed timer."""
    seconds: int
    """The duration it was set for."""
    remaining: int = field(compare=False)
    """Seconds left, 0 once it rings. Not compared: a snapshot changes when a timer is set, rings or goes, not
    every second (Home Assistant counts down from `ends_at` by itself)."""
    ends_at: float
    """Unix time it ends (or ended)."""
    ringing: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The running buddy at one moment (`Control.snapshot()`)."""

    state: AssistantState
    device_state: str
    """The finer state from the event bus (starting, connecting, activating, disconnected ...)."""
    brain: str
    """Who answers the next wake: "upstream" (the xiaozhi server) or "local"."""
    upstream: UpstreamStatus | None
    """None while PiBuddy has not tried to reach a server (or upstream is off)."""
    muted: bool
    volume: int | None
    """Speaker volume in percent; None until first read (no mixer at all)."""
    last_heard: str
    last_reply: str
    gateway_devices: tuple[GatewayDevice, ...]
    timers: tuple[TimerStatus, ...]
    services: tuple[ServiceHealth, ...]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
