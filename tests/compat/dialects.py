"""The dialects of the compatibility matrix (README "Tested with"): servers and devices PiBuddy did not write.

A server dialect is a set of ``ConversationSettings`` for the xiaozhi test server plus how its sessions end;
a device dialect is a set of ``FirmwareDevice`` settings plus how its MQTT client id spells the MAC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Ending(StrEnum):
    DEVICE = "device"
    """The device ends the session: `goodbye` over MQTT, closing its WebSocket over WebSocket."""
    SERVER_GOODBYE = "server goodbye"
    """The server says `goodbye` (with its session id, if it gave one), then closes."""
    SERVER_CLOSE = "server close"
    """The server closes its WebSocket without a word (xiaozhi-server's way)."""


@dataclass(frozen=True)
class ServerDialect:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    ending: Ending = Ending.DEVICE


SERVER_DIALECTS = [
    # xiaozhi-esp32-server: hello with version 1 and a session id, no sentence_end.
    ServerDialect("xiaozhi-esp32-server"),
    # Qiniu's Xrobot platform documents {"type":"hello","transport":"websocket","audio_params":{...}}.
    ServerDialect("platform hello (no version, no session_id)", {"hello_version": False, "hello_session_id": False},
                  Ending.SERVER_GOODBYE),
    ServerDialect("hello without session_id", {"hello_session_id": False}),
    ServerDialect("tts sentence_start without sentence_end", {"sentences": 2}, Ending.SERVER_GOODBYE),
    ServerDialect("WebSocket close instead of goodbye", {}, Ending.SERVER_CLOSE),
]


@dataclass(frozen=True)
class DeviceDialect:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    upper_case_mac: bool = False
    """The client id spells its MAC `AA_BB_…` (signed as such)."""

    @property
    def frame_duration(self) -> int:
        return int(self.settings.get("frame_duration", 60))


DEVICE_DIALECTS = [
    DeviceDialect("firmware-like"),
    # py-xiaozhi: 20 ms frames, features {"mcp": true} only, SUBSCRIBE with QoS 1, never answers the
    # gateway's MCP initialize, disconnects MQTT when the session ends.
    DeviceDialect("py-xiaozhi-like", {"frame_duration": 20, "subscribe_qos": 1, "answer_mcp": False,
                                       "disconnect_on_goodbye": True}),
    DeviceDialect("upper-case MAC in the client id", upper_case_mac=True),
    DeviceDialect("MQTT 3.1 (MQIsdp, level 3)", {"mqtt_level": 3}),
]
