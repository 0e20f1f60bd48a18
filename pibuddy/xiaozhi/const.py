"""Numbers and names of the xiaozhi protocol, shared by the device client and the gateway.

Values come from docs/protocol.md (section numbers in the comments).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Role(StrEnum):
    """Which end of a xiaozhi conversation a session plays."""

    DEVICE = "device"
    """The ESP32 firmware's side: sends hello, listen, abort; plays the server's audio."""
    SERVER = "server"
    """The chat server's side (or the gateway facing a device): answers hello, sends tts/stt/llm."""


class AudioTransport(StrEnum):
    """The hello's `transport` value: where the audio of the channel travels (§3.4, §6.1)."""

    UDP = "udp"
    WEBSOCKET = "websocket"


# --- UDP audio packet (§4) ---------------------------------------------------------------
UDP_HEADER_SIZE: Final = 16
UDP_PACKET_TYPE_AUDIO: Final = 0x01
UDP_MAX_PAYLOAD: Final = 0xFFFF
"""payload_len is a u16 (§4.1)."""
AES_KEY_SIZE: Final = 16
UDP_NONCE_SIZE: Final = 16
UDP_ENCRYPTION: Final = "aes-128-ctr"

# --- WebSocket binary framing (§6.3, §8.2) ----------------------------------------------
WS_V2_HEADER_SIZE: Final = 16
WS_V2_VERSION: Final = 2
WS_V2_TYPE_OPUS: Final = 0
WS_V2_TYPE_JSON: Final = 1
WS_V3_HEADER_SIZE: Final = 4
WS_V3_TYPE_OPUS: Final = 0
GATEWAY_WS_HEADER_SIZE: Final = 16
MAX_AUDIO_FRAME_SIZE: Final = UDP_MAX_PAYLOAD
"""Largest Opus payload any framing accepts. One 60 ms Opus packet is at most ~4 KB; 64 KiB - 1 is the
UDP length field's limit, so a frame that passes here can always be relayed to a UDP device."""

# --- Hello versions (§3.4, §6.1, §8.1) ---------------------------------------------------
HELLO_VERSION_MQTT: Final = 3
HELLO_VERSION_GATEWAY_UPSTREAM: Final = 2

# --- Audio parameters (§11) --------------------------------------------------------------
AUDIO_FORMAT: Final = "opus"
UPLINK_SAMPLE_RATE: Final = 16000
UPLINK_CHANNELS: Final = 1
UPLINK_FRAME_DURATION_MS: Final = 60
DOWNLINK_SAMPLE_RATE_DEFAULT: Final = 24000
DOWNLINK_FRAME_DURATION_DEFAULT_MS: Final = 60

# --- Size limits -------------------------------------------------------------------------
MQTT_MAX_PACKET_SIZE: Final = 8192
"""The gateway closes an MQTT connection whose packet (header included) is larger (§3.2)."""
MCP_PAGE_MAX_BYTES: Final = 8000
"""The firmware fills a tools/list page until its result JSON would pass this size (§10.2)."""
MAX_JSON_MESSAGE_SIZE: Final = 128 * 1024
"""Largest JSON control message we parse (bytes, or characters for str input).

The biggest legitimate message is an `stt` / `tts sentence_start` carrying `glyph_push` (§7.4): up to 64
glyphs whose bitmaps total 64 KiB, base64-encoded to ~87 KiB, plus ~100 bytes of metrics per glyph and the
text. 128 KiB leaves room for that and still bounds what one peer can make us allocate. Over MQTT the
8192-byte packet cap applies first."""

# --- Timers (§5.3) -----------------------------------------------------------------------
HELLO_TIMEOUT_SECONDS: Final = 10.0
"""The device gives up waiting for the server's hello after this long."""
CHANNEL_TIMEOUT_SECONDS: Final = 120.0
"""The device considers the audio channel closed after this long without incoming JSON or audio."""
