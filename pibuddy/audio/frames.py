"""The audio units every stage agrees on, and the pure buffers between stages.

Capture produces 30 ms frames of 16 kHz mono int16. Engines with other fixed sizes (Silero's 512 samples,
Opus's 960) re-chunk them with `Rechunker`; `PreRoll` keeps the last seconds for the wake word upload.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np

SAMPLE_RATE: Final = 16000
FRAME_SAMPLES: Final = 480
"""30 ms at 16 kHz: a multiple of webrtcvad's 10 ms and pymicro-wakeword's 10 ms, half an Opus frame."""
FRAME_SECONDS: Final = FRAME_SAMPLES / SAMPLE_RATE
BYTES_PER_SAMPLE: Final = 2
_SILENCE_DBFS: Final = -120.0


@dataclass(frozen=True, slots=True)
class Frame:
    """One capture frame. `index` counts frames since the stream opened, so gaps (drops) are visible."""

    pcm: bytes
    index: int

    @property
    def samples(self) -> np.ndarray:
        return np.frombuffer(self.pcm, dtype=np.int16)


def loudness_dbfs(pcm: bytes) -> float:
    """RMS level of int16 PCM in dB relative to full scale (-120 for digital silence)."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    if samples.size == 0:
        return _SILENCE_DBFS
    rms = float(np.sqrt(np.mean(samples * samples)))
    return max(_SILENCE_DBFS, 20 * math.log10(rms / 32768)) if rms > 0 else _SILENCE_DBFS


class Rechunker:
    """Cut a stream of PCM byte strings into fixed `chunk_samples` pieces (the remainder waits)."""

    def __init__(self, chunk_samples: int) -> None:
        self._chunk_bytes = chunk_samples * BYTES_PER_SAMPLE
        self._pending = bytearray()

    def push(self, pcm: bytes) -> list[bytes]:
        self._pending += pcm
        count = len(self._pending) // self._chunk_bytes
        chunks = [bytes(self._pending[i * self._chunk_bytes:(i + 1) * self._chunk_bytes]) for i in range(count)]
        del self._pending[:count * self._chunk_bytes]
        return chunks

    def reset(self) -> None:
        self._pending.clear()


class PreRoll:
    """The most recent `seconds` of frames, oldest first; older frames fall off."""

    def __init__(self, seconds: float) -> None:
        self._frames: deque[Frame] = deque(maxlen=max(1, round(seconds / FRAME_SECONDS)))

    def append(self, frame: Frame) -> None:
        self._frames.append(frame)

    def take(self, since: int) -> list[bytes]:
        """PCM of the held frames with index >= `since`, oldest first; empties the ring (never sent twice)."""
        frames = [f.pcm for f in self._frames if f.index >= since]
        self._frames.clear()
        return frames

    def recent(self, count: int) -> bytes:
        """PCM of the newest `count` frames, without removing them."""
        return b"".join(f.pcm for f in list(self._frames)[-count:])
