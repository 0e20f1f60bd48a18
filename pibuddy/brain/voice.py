"""The local brain's voice: espeak-ng by default, piper when a voice model is configured.

piper-tts is GPL-3.0, so PiBuddy (MIT) never imports it: it runs the `piper` program (installed on its own,
e.g. with pipx) as a subprocess, text on stdin, a WAV on stdout (`--output_file -`: without it piper plays the
audio itself or writes output.wav). espeak-ng is the audio pipeline's own prompt voice
(`pibuddy.audio.prompts.espeak`).
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Final

import numpy as np

from pibuddy.audio.prompts import espeak, run_synthesizer
from pibuddy.brain.errors import BrainUnavailable
from pibuddy.config import BrainConfig

_PIPER_TIMEOUT_SECONDS: Final = 30.0
_ESPEAK_VOICES: Final = {"zh": "cmn", "en": "en"}


class Voice(ABC):
    @abstractmethod
    async def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        """`text` spoken: (int16 mono samples, sample rate). Raises AudioError when the engine fails."""


class EspeakVoice(Voice):
    def __init__(self, voice: str) -> None:
        self.voice = voice

    async def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        return await espeak(text, self.voice)


class PiperVoice(Voice):
    """Args:
    model: A piper voice (.onnx with its .onnx.json beside it).
    binary: The `piper` program.
    """

    def __init__(self, model: Path, binary: str) -> None:
        self._model = model
        self._binary = binary

    async def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        return await run_synthesizer([self._binary, "--model", str(self._model), "--output_file", "-"],
                                     stdin=text.encode() + b"\n",
                                     max_seconds=_PIPER_TIMEOUT_SECONDS)


def get_voice(config: BrainConfig, language: str) -> Voice:
    """piper when `brain.piper_voice_path` is set (and the program is installed), else espeak-ng."""
    if config.piper_voice_path is not None:
        binary = shutil.which("piper")
        if binary is None:
            raise BrainUnavailable("brain.piper_voice_path is set but the piper program is not installed "
                                   "(e.g. `pipx install piper-tts`)")
        if not config.piper_voice_path.is_file():
            raise BrainUnavailable(f"brain.piper_voice_path: no such voice model {config.piper_voice_path}")
        return PiperVoice(config.piper_voice_path, binary)
    base = language.split("-", maxsplit=1)[0].casefold()
    return EspeakVoice(config.espeak_voice or _ESPEAK_VOICES.get(base, language))
