"""What the xiaozhi test server saw and did: recorded traffic plus one asyncio.Event per milestone."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, fields
from typing import Any

_LOG = logging.getLogger("tests.peers.xiaozhi")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP request (OTA, activate, or a WebSocket handshake) as received."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    #: For ``/activate``: whether the v2 HMAC matched the expected key (None when not checked).
    hmac_valid: bool | None = None


@dataclass(frozen=True, slots=True)
class UplinkFrame:
    """One uplink Opus frame, its transport timestamp and its PCM decoded at 16 kHz."""

    opus: bytes
    timestamp: int
    pcm: bytes

    @property
    def samples(self) -> int:
        return len(self.pcm) // 2


def _event() -> asyncio.Event:
    return asyncio.Event()


@dataclass(eq=False)
class Milestones:
    """Protocol milestones; each is set when it happens and stays set until ``reset_milestones``."""

    hello_received: asyncio.Event = field(default_factory=_event)
    listen_start: asyncio.Event = field(default_factory=_event)
    listen_stop: asyncio.Event = field(default_factory=_event)
    listen_detect: asyncio.Event = field(default_factory=_event)
    uplink_audio: asyncio.Event = field(default_factory=_event)
    abort_received: asyncio.Event = field(default_factory=_event)
    mcp_initialized: asyncio.Event = field(default_factory=_event)
    tools_listed: asyncio.Event = field(default_factory=_event)
    tts_started: asyncio.Event = field(default_factory=_event)
    tts_done: asyncio.Event = field(default_factory=_event)
    goodbye_received: asyncio.Event = field(default_factory=_event)
    goodbye_sent: asyncio.Event = field(default_factory=_event)
    disconnected: asyncio.Event = field(default_factory=_event)
    bad_input_seen: asyncio.Event = field(default_factory=_event)
    #: Set while the MQTT side is subscribed at the broker; ``mqtt_lost`` is set when that link drops.
    mqtt_ready: asyncio.Event = field(default_factory=_event)
    mqtt_lost: asyncio.Event = field(default_factory=_event)

    def reset_milestones(self) -> None:
        """Clear every milestone except ``mqtt_ready``, which tracks a live link rather than a moment."""
        for f in fields(Milestones):
            if f.name != "mqtt_ready":
                getattr(self, f.name).clear()


@dataclass(eq=False)
class ServerRecord(Milestones):
    """Everything the test server recorded; tests read these lists directly."""

    ota_requests: list[RecordedRequest] = field(default_factory=list)
    activate_requests: list[RecordedRequest] = field(default_factory=list)
    ws_requests: list[RecordedRequest] = field(default_factory=list)
    device_messages: list[dict[str, Any]] = field(default_factory=list)
    sent_messages: list[dict[str, Any]] = field(default_factory=list)
    uplink_frames: list[UplinkFrame] = field(default_factory=list)
    downlink_frames_sent: int = 0
    downlink_frames_dropped: int = 0
    mcp_tools: list[dict[str, Any]] = field(default_factory=list)
    bad_input: list[str] = field(default_factory=list)

    def note_bad_input(self, reason: str) -> None:
        """Log one warning line and keep the reason for the test to assert on."""
        _LOG.warning("xiaozhi test server dropped bad input: %s", reason)
        self.bad_input.append(reason)
        self.bad_input_seen.set()

    def messages_of_type(self, msg_type: str) -> list[dict[str, Any]]:
        return [m for m in self.device_messages if m.get("type") == msg_type]
