"""The wake word engine interface and its lazy-import factory (bleak's backend pattern, style habit 6)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from pibuddy.audio.errors import EngineUnavailable
from pibuddy.config import WakeWordBackend, WakeWordConfig


@dataclass(frozen=True, slots=True)
class Detection:
    """A wake word candidate from an engine: its score already passed the word's own threshold.

    `score` and `threshold` are in [0, 1]. Engines that only say yes or no (pocketsphinx) report score 1.0,
    threshold 0.0 and `graded` False.
    """

    name: str
    """Configuration key of the word (model name or phrase)."""
    phrase: str
    """The words themselves, as sent in `listen detect` and matched against what PiBuddy says."""
    score: float
    threshold: float
    graded: bool = True
    """Whether `score` measures anything: a yes/no engine's cannot be held to a higher threshold."""


class WakeWordEngine(ABC):
    """Fed 16 kHz mono int16 PCM of any length; reports at most one detection per call."""

    @property
    @abstractmethod
    def phrases(self) -> list[str]:
        """The phrases this engine listens for (for logs and the self-trigger guard)."""

    @abstractmethod
    def process(self, pcm: bytes) -> Detection | None:
        """The best candidate over its threshold found in `pcm`, if any."""

    @abstractmethod
    def reset(self) -> None:
        """Forget audio context (after a detection or a pause)."""


def normalise_phrase(text: str) -> str:
    """Lower-case letters and digits only, so "Okay, Nabu!" and "okay nabu" compare equal."""
    return re.sub(r"[\W_]+", "", text.casefold())


def get_wakeword_engine(config: WakeWordConfig, backend: WakeWordBackend | None = None) -> WakeWordEngine:
    """Build the configured engine; `backend` overrides `config.backend`. Imports only what it builds."""
    chosen = backend or config.backend
    try:
        match chosen:
            case WakeWordBackend.MICRO:
                from pibuddy.audio.wakeword.micro import MicroWakeWordEngine  # noqa: PLC0415

                return MicroWakeWordEngine(config.micro.words, models_dir=config.micro.models_dir)
            case WakeWordBackend.POCKETSPHINX:
                from pibuddy.audio.wakeword.sphinx import PocketsphinxEngine  # noqa: PLC0415

                return PocketsphinxEngine(config.pocketsphinx.phrases)
            case WakeWordBackend.VOSK:
                from pibuddy.audio.wakeword.vosk_engine import VoskEngine  # noqa: PLC0415

                return VoskEngine(config.vosk.model_path, config.vosk.phrases)
    except ImportError as exc:
        raise EngineUnavailable(f"wake word backend {chosen} needs the {exc.name} package (./setup.sh)") from None
    raise EngineUnavailable(f"unknown wake word backend {chosen!r}")
