"""The local brain's voice: espeak-ng by default, piper when a voice model is configured.

piper-tts is GPL-3.0, so PiBuddy (MIT) never imports it: it runs the `piper` program (installed on its own,
e.g. by setup.sh into a separate venv) as a subprocess, text on stdin, a WAV on stdout. espeak-ng is the
audio pipeline's own prompt voice (`pibuddy.audio.prompts.espeak`).
"""

from __future__ import annotations

import asyncio
import io
import shutil
import wave
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Final

import numpy as np

from pibuddy.audio.errors import AudioError
from pibuddy.audio.prompts import espeak
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
        process = await asyncio.create_subprocess_exec(
            self._binary, "--model", str(self._model), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            wav, err = await asyncio.wait_for(process.communicate(text.encode() + b"\n"), _PIPER_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AudioError("piper took too long") from None
        if process.returncode != 0:
            raise AudioError(f"piper failed: {err.decode(errors='replace').strip()[-200:]}")
        try:
            with wave.open(io.BytesIO(wav)) as reader:
                return np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16), reader.getframerate()
        except (wave.Error, EOFError) as exc:
            raise AudioError(f"piper produced no usable WAV: {exc}") from None


def get_voice(config: BrainConfig, language: str) -> Voice:
    """piper when `brain.piper_voice_path` is set (and the program is installed), else espeak-ng."""
    if config.piper_voice_path is not None:
        binary = shutil.which("piper")
        if binary is None:
            raise BrainUnavailable("brain.piper_voice_path is set but the piper program is not installed")
        if not config.piper_voice_path.is_file():
            raise BrainUnavailable(f"brain.piper_voice_path: no such voice model {config.piper_voice_path}")
        return PiperVoice(config.piper_voice_path, binary)
    base = language.split("-", maxsplit=1)[0].casefold()
    return EspeakVoice(config.espeak_voice or _ESPEAK_VOICES.get(base, language))
