"""Opus helpers for the test peers: a sine tone encoder and an uplink decoder (docs/protocol.md §11)."""

from __future__ import annotations

import math
import struct
from typing import Final

import opuslib_next

UPLINK_RATE: Final = 16000
DOWNLINK_RATE: Final = 24000
FRAME_MS: Final = 60
_TONE_AMPLITUDE: Final = 8000
_DOWNLINK_BITRATE: Final = 24000


def sine_pcm(*, rate: int, samples: int, freq: float, start: int = 0) -> bytes:
    """Signed 16-bit little-endian mono PCM of a sine tone, starting at sample ``start``."""
    step = 2 * math.pi * freq / rate
    values = (round(_TONE_AMPLITUDE * math.sin(step * (start + i))) for i in range(samples))
    return struct.pack(f"<{samples}h", *values)


def encode_tone(
    frames: int, *, rate: int = DOWNLINK_RATE, frame_ms: int = FRAME_MS, freq: float = 440.0
) -> list[bytes]:
    """Encode ``frames`` consecutive Opus frames of a continuous tone.

    Downlink settings follow xiaozhi-server: APPLICATION_AUDIO, 24 kbps, complexity 10.
    """
    encoder = opuslib_next.Encoder(rate, 1, opuslib_next.APPLICATION_AUDIO)
    encoder.bitrate = _DOWNLINK_BITRATE
    encoder.complexity = 10
    samples = rate * frame_ms // 1000
    return [
        encoder.encode(sine_pcm(rate=rate, samples=samples, freq=freq, start=i * samples), samples)
        for i in range(frames)
    ]


class OpusFrameDecoder:
    """Decode one frame at a time, as xiaozhi-server does for uplink (16 kHz mono, max 60 ms)."""

    def __init__(self, *, rate: int = UPLINK_RATE, frame_ms: int = FRAME_MS) -> None:
        self._decoder = opuslib_next.Decoder(rate, 1)
        self._max_samples = rate * frame_ms // 1000

    def decode(self, opus: bytes) -> bytes:
        """Return PCM s16le; raises ``opuslib_next.OpusError`` on a corrupt or oversized frame."""
        return self._decoder.decode(opus, self._max_samples)
