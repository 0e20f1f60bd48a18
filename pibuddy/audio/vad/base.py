"""The VAD engine interface and its lazy-import factory (style habit 6)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pibuddy.audio.errors import EngineUnavailable
from pibuddy.config import VadBackend, VadConfig


class VadEngine(ABC):
    """Speech probability of fixed-size chunks of 16 kHz mono int16 PCM."""

    chunk_samples: int
    """Samples per `probability()` call."""

    @abstractmethod
    def probability(self, chunk: bytes) -> float:
        """Probability in [0, 1] that `chunk` (exactly `chunk_samples`) holds speech."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the stream (before an unrelated stretch of audio)."""

    @property
    def loaded(self) -> bool:
        """Whether `probability()` runs without loading a model first."""
        return True

    def load(self) -> None:  # noqa: B027 -- engines without a deferred model have nothing to load
        """Load what a lazily built engine defers (may block; safe from a worker thread)."""


def get_vad_engine(config: VadConfig, backend: VadBackend | None = None) -> VadEngine:
    """Build the configured engine; `backend` overrides `config.backend`. Imports only what it builds."""
    chosen = backend or config.backend
    try:
        match chosen:
            case VadBackend.SILERO:
                from pibuddy.audio.vad.silero import SileroVad  # noqa: PLC0415

                return SileroVad(config.silero.model_path)
            case VadBackend.MICRO:
                from pibuddy.audio.vad.micro import MicroVadEngine  # noqa: PLC0415

                return MicroVadEngine()
            case VadBackend.WEBRTC:
                from pibuddy.audio.vad.webrtc import WebRtcVad  # noqa: PLC0415

                return WebRtcVad(config.webrtc_mode)
    except ImportError as exc:
        raise EngineUnavailable(f"VAD backend {chosen} needs the {exc.name} package (./setup.sh)") from None
    raise EngineUnavailable(f"unknown VAD backend {chosen!r}")
