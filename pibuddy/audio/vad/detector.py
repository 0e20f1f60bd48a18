"""Per-frame speech decisions: optional webrtcvad pre-gate in front of a re-chunked model."""

from __future__ import annotations

import logging

from pibuddy.audio.errors import EngineUnavailable
from pibuddy.audio.frames import Rechunker
from pibuddy.audio.vad.base import VadEngine
from pibuddy.audio.vad.webrtc import WebRtcVad

_LOGGER = logging.getLogger(__name__)


class VoiceDetector:
    """`is_speech(frame)` for 30 ms capture frames, whatever chunk size the engine wants.

    With a pre-gate, frames webrtcvad calls silence skip the model entirely (and its pending samples),
    which is where the idle CPU saving comes from. A frame that completes no model chunk reuses the
    previous probability.

    A lazily loaded engine (Silero) loads at `load()` or at the first frame that reaches it; if it cannot
    load, the detector logs why and goes on with webrtcvad alone rather than failing the microphone.
    """

    def __init__(self, engine: VadEngine, *, threshold: float = 0.5, pregate: WebRtcVad | None = None) -> None:
        self._engine = engine
        self._threshold = threshold
        self._pregate = pregate
        self._rechunker = Rechunker(engine.chunk_samples)
        self.last_probability = 0.0

    @property
    def loaded(self) -> bool:
        return self._engine.loaded

    def load(self) -> None:
        """Load the engine's model now (blocking; safe from a worker thread)."""
        try:
            self._engine.load()
        except EngineUnavailable as exc:
            _LOGGER.error("%s; using webrtcvad alone (steady noise may keep turns open until the VAD timeout)",
                          exc)
            self._engine = self._pregate or WebRtcVad()
            self._pregate = None
            self._rechunker = Rechunker(self._engine.chunk_samples)

    def is_speech(self, frame: bytes) -> bool:
        if self._pregate is not None and self._pregate.probability(frame) < 0.5:
            self._rechunker.reset()
            self.last_probability = 0.0
            return False
        if not self._engine.loaded:
            self.load()
        for chunk in self._rechunker.push(frame):
            self.last_probability = self._engine.probability(chunk)
        return self.last_probability >= self._threshold

    def reset(self) -> None:
        self._engine.reset()
        self._rechunker.reset()
        self.last_probability = 0.0
