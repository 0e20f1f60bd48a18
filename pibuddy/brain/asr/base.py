"""The speech recogniser interface and its lazy-import factory (bleak's backend pattern, style habit 6)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from pibuddy.brain.errors import BrainUnavailable
from pibuddy.brain.vocabulary import Vocabulary
from pibuddy.config import AsrBackend, BrainConfig

Understood = Callable[[str], bool]
"""Whether the brain can act on or answer a text (the intents match it and the planner takes it); as `readable`,
whether it can make anything of it at all (that, or a command about a device it does not know)."""


@dataclass(frozen=True, slots=True)
class Recognition:
    """One utterance as the engine heard it, and its confidence gate's verdict."""

    heard: str
    """The decoder's best text, rejected or not; "" when it found none."""
    confidence: float | None
    """The gate's measure, higher is better (each engine says what it is); None when nothing was heard."""
    accepted: bool

    @property
    def text(self) -> str:
        """What the brain may act on: the heard text if the gate let it through, else ""."""
        return self.heard if self.accepted else ""


class AsrEngine(ABC):
    """Turns one whole utterance (16 kHz mono int16 PCM) into text. Blocking and CPU-bound: call it from a
    worker thread. An engine is used by one thread at a time."""

    constrained: bool = False
    """Whether it only ever writes sentences of a grammar (then text the intents do not match was not heard
    right, rather than a request the brain cannot serve)."""

    @abstractmethod
    def recognise(self, pcm: bytes, understood: Understood | None = None, *,
                  readable: Understood | None = None) -> Recognition:
        """What the engine heard and whether it is sure enough of it to act on. An engine that ranks several
        readings may give, when its best is not `understood`, the best-ranked one that is; one that judges its
        confidence need not judge a text that is not `readable` (nothing can come of it: not accepted)."""

    def transcribe(self, pcm: bytes, understood: Understood | None = None, *,
                   readable: Understood | None = None) -> str:
        """What was said; "" when nothing was heard, or nothing the engine is sure of."""
        return self.recognise(pcm, understood, readable=readable).text

    def sure_of(self, pcm: bytes, heard: str, other: str, *, number: bool = False) -> bool:
        """Whether `heard` fits `pcm` clearly better than `other`, a reading one sound away ("light" and
        "lights"), or with another `number` ("sixty five" and "sixty nine"). Engines that write free text (not
        forced onto a grammar) trust what they wrote."""
        del pcm, heard, other, number
        return True

    def plural_said(self, pcm: bytes, plural: str, word: str) -> bool | None:
        """Whether the kind `word` of the reading `plural` ("lights" in "living room lights on") was said with its
        plural's ending (True) or without it (False); None when the engine or the audio cannot tell."""
        del pcm, plural, word
        return None

    def closest(self, pcm: bytes, readings: list[str]) -> str | None:
        """Which of `readings` (the heard sentence with one part said otherwise) fits `pcm` best; None when the
        engine cannot re-score (engines that write free text trust what they wrote)."""
        del pcm, readings
        return None

    def set_vocabulary(self, vocabulary: Vocabulary) -> None:  # noqa: B027 - optional for free-form engines
        """Adapt to the current device names (grammar engines rebuild their grammar when they change)."""

    def prepare(self) -> None:  # noqa: B027 - engines that load everything in their constructor
        """Load now what the first utterance would otherwise wait for (called when the local brain becomes
        the one that answers)."""


def get_asr_engine(config: BrainConfig, language: str, backend: AsrBackend | None = None) -> AsrEngine:
    """Build the configured recogniser for `language` (a home-assistant-intents code); `backend` overrides
    `config.asr`. Imports only what it builds."""
    chosen = backend or config.asr
    try:
        match chosen:
            case AsrBackend.POCKETSPHINX:
                from pibuddy.brain.asr.sphinx import PocketsphinxAsr  # noqa: PLC0415

                return PocketsphinxAsr(language)
            case AsrBackend.VOSK:
                from pibuddy.brain.asr.vosk_asr import VoskAsr  # noqa: PLC0415

                return VoskAsr(config.vosk_model_path, language=language)
    except ImportError as exc:
        raise BrainUnavailable(f"speech recogniser {chosen} needs the {exc.name} package (./setup.sh)") from None
    raise BrainUnavailable(f"unknown speech recogniser {chosen!r}")
