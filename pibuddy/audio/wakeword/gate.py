"""Which engine detections become wake events: refractory period and self-trigger guard (pure, style habit 7)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pibuddy.audio.wakeword.base import Detection, normalise_phrase


@dataclass
class WakeGate:
    """Fed detections with `now`; says whether each one is a real wake.

    While PiBuddy speaks, a word's threshold t becomes t + (1 - t) * speaking_raise, and
    t + (1 - t) * echo_raise while the sentence being spoken contains that word (its own voice saying it).
    A yes/no engine's detection (no score to hold to a higher threshold) is refused while the sentence being
    spoken contains its word, and otherwise taken: barge-in must still work.
    """

    refractory_seconds: float = 2.0
    speaking_raise: float = 0.5
    echo_raise: float = 0.9
    _last_wake: float = field(default=float("-inf"))
    _speaking: bool = False
    _sentence: str = ""

    def set_speaking(self, sentence: str | None) -> None:
        """`sentence` is the text now being spoken ("" if unknown); None when PiBuddy stopped speaking."""
        self._speaking = sentence is not None
        self._sentence = normalise_phrase(sentence or "")

    def threshold(self, detection: Detection) -> float:
        """The score `detection` needs right now."""
        if not self._speaking:
            return detection.threshold
        echoed = normalise_phrase(detection.phrase) in self._sentence if self._sentence else False
        if not detection.graded:
            return math.inf if echoed else detection.threshold
        fraction = self.echo_raise if echoed else self.speaking_raise
        return detection.threshold + (1 - detection.threshold) * fraction

    def accept(self, detection: Detection, now: float) -> bool:
        if now - self._last_wake < self.refractory_seconds:
            return False
        if detection.score < self.threshold(detection):
            return False
        self._last_wake = now
        return True
