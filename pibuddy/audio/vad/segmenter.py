"""End of utterance from per-chunk speech flags (pure; time comes in as chunk seconds, style habit 7)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

_EPSILON: Final = 1e-9  # sums of 0.03 s chunks must reach 0.3 s exactly


class EndReason(StrEnum):
    SILENCE = "silence"
    """The user spoke, then stayed quiet for `silence_seconds`."""
    TIMEOUT = "timeout"
    """The utterance ran for `timeout_seconds`."""
    NO_SPEECH = "no_speech"
    """`timeout_seconds` passed without `speech_seconds` of speech."""


@dataclass
class EndOfUtterance:
    """Speech must last `speech_seconds` to start an utterance; `silence_seconds` after it ends it.

    A short silence inside speech resets nothing but the silence count; a short noise before the
    utterance starts is forgotten at the next silent chunk.
    """

    speech_seconds: float = 0.3
    silence_seconds: float = 0.7
    timeout_seconds: float = 15.0
    elapsed: float = 0.0
    started: bool = False
    _speech_run: float = 0.0
    _silence_run: float = 0.0

    def process(self, chunk_seconds: float, is_speech: bool) -> EndReason | None:
        """Feed one chunk; returns why the utterance ended, or None while it goes on."""
        self.elapsed += chunk_seconds
        if is_speech:
            self._speech_run += chunk_seconds
            self._silence_run = 0.0
            if self._speech_run >= self.speech_seconds - _EPSILON:
                self.started = True
        else:
            self._silence_run += chunk_seconds
            if not self.started:
                self._speech_run = 0.0
            elif self._silence_run >= self.silence_seconds - _EPSILON:
                return EndReason.SILENCE
        if self.elapsed >= self.timeout_seconds - _EPSILON:
            return EndReason.TIMEOUT if self.started else EndReason.NO_SPEECH
        return None

    def reset(self) -> None:
        self.elapsed = self._speech_run = self._silence_run = 0.0
        self.started = False
