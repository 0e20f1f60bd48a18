"""webrtcvad (the webrtcvad-wheels build): 40x cheaper than the models, but calls steady noise speech.

Good as a pre-gate in front of a model, or alone in a quiet room. Its answer is 0 or 1.
"""

from __future__ import annotations

import webrtcvad

from pibuddy.audio.frames import FRAME_SAMPLES, SAMPLE_RATE
from pibuddy.audio.vad.base import VadEngine


class WebRtcVad(VadEngine):
    chunk_samples = FRAME_SAMPLES  # 30 ms, one of the three sizes it accepts

    def __init__(self, mode: int = 2) -> None:
        self._vad = webrtcvad.Vad(mode)

    def probability(self, chunk: bytes) -> float:
        return 1.0 if self._vad.is_speech(chunk, SAMPLE_RATE) else 0.0

    def reset(self) -> None:
        """Stateless between calls."""
