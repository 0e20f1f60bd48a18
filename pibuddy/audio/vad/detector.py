"""Per-frame speech decisions: optional webrtcvad pre-gate in front of a re-chunked model."""

from __future__ import annotations

from pibuddy.audio.frames import Rechunker
from pibuddy.audio.vad.base import VadEngine
from pibuddy.audio.vad.webrtc import WebRtcVad


class VoiceDetector:
    """`is_speech(frame)` for 30 ms capture frames, whatever chunk size the engine wants.

    With a pre-gate, frames webrtcvad calls silence skip the model entirely (and its pending samples),
    which is where the idle CPU saving comes from. A frame that completes no model chunk reuses the
    previous probability.
    """

    def __init__(self, engine: VadEngine, *, threshold: float = 0.5, pregate: WebRtcVad | None = None) -> None:
        self._engine = engine
        self._threshold = threshold
        self._pregate = pregate
        self._rechunker = Rechunker(engine.chunk_samples)
        self.last_probability = 0.0

    def is_speech(self, frame: bytes) -> bool:
        if self._pregate is not None and self._pregate.probability(frame) < 0.5:
            self._rechunker.reset()
            self.last_probability = 0.0
            return False
        for chunk in self._rechunker.push(frame):
            self.last_probability = self._engine.probability(chunk)
        return self.last_probability >= self._threshold

    def reset(self) -> None:
        self._engine.reset()
        self._rechunker.reset()
        self.last_probability = 0.0
