"""vosk free-form recognition for languages pocketsphinx has no model for (Chinese and others).

The model directory comes from config (setup.sh offers to download a small one on a real Pi); vosk's own
download-by-language is never used. No grammar: the audio-stack reference measured that a grammar-limited
vosk forces any audio into the grammar's words, so the intent matcher gets what vosk's language model heard.
"""

from __future__ import annotations

import json
from pathlib import Path

from vosk import KaldiRecognizer, Model, SetLogLevel

from pibuddy.audio.frames import SAMPLE_RATE
from pibuddy.brain.asr.base import AsrEngine
from pibuddy.brain.errors import BrainUnavailable

_UNKNOWN = ("[unk]", "<UNK>")  # vosk's unknown-word tokens differ per model


class VoskAsr(AsrEngine):
    """Args:
    model_path: Directory of an unpacked vosk model.
    """

    def __init__(self, model_path: Path | None) -> None:
        if model_path is None or not model_path.is_dir():
            raise BrainUnavailable(f"brain.vosk_model_path must be a vosk model directory (got {model_path})")
        SetLogLevel(-1)
        try:
            self._model = Model(str(model_path))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise BrainUnavailable(f"vosk cannot load {model_path}: {exc}") from None

    def transcribe(self, pcm: bytes) -> str:
        recognizer = KaldiRecognizer(self._model, SAMPLE_RATE)
        recognizer.AcceptWaveform(pcm)
        text = json.loads(recognizer.FinalResult()).get("text", "")
        words = [w for w in str(text).split() if w not in _UNKNOWN]
        # Chinese models write characters separated by spaces; the templates have none.
        joined = "".join(words) if words and all(_is_cjk(w) for w in words) else " ".join(words)
        return joined


def _is_cjk(word: str) -> bool:
    return all("\u3400" <= ch <= "\u9fff" for ch in word)
