"""vosk grammar recognition as a wake phrase spotter, for languages pymicro-wakeword has no model in.

When the audio stack was chosen, a grammar-limited recogniser was measured to force everything into the grammar,
so a detection also needs a mean word confidence of at least the phrase's threshold. The model comes from
config (setup.sh can download one); vosk's own download-by-language is never used (it needs the internet).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from vosk import KaldiRecognizer, Model, SetLogLevel

from pibuddy.audio.errors import EngineUnavailable
from pibuddy.audio.frames import SAMPLE_RATE
from pibuddy.audio.wakeword.base import Detection, WakeWordEngine, normalise_phrase

_UNKNOWN = "[unk]"


class VoskEngine(WakeWordEngine):
    """Args:
    model_path: Directory of an unpacked vosk model.
    phrases: Phrase -> minimum mean word confidence. Write them as the model's words, space separated
        (e.g. "你好 小智"); UNCONFIRMED how each Chinese model segments a given phrase.
    """

    def __init__(self, model_path: Path | None, phrases: Mapping[str, float]) -> None:
        if model_path is None or not model_path.is_dir():
            raise EngineUnavailable(f"wakeword.vosk.model_path must be a vosk model directory (got {model_path})")
        if not phrases:
            raise EngineUnavailable("wakeword.vosk.phrases is empty")
        SetLogLevel(-1)
        try:
            model = Model(str(model_path))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise EngineUnavailable(f"vosk cannot load {model_path}: {exc}") from None
        self._recognizer = KaldiRecognizer(model, SAMPLE_RATE, json.dumps([*phrases, _UNKNOWN], ensure_ascii=False))
        self._recognizer.SetWords(True)
        self._phrases = {normalise_phrase(p): (p, t) for p, t in phrases.items()}

    @property
    def phrases(self) -> list[str]:
        return [p for p, _ in self._phrases.values()]

    def process(self, pcm: bytes) -> Detection | None:
        if not self._recognizer.AcceptWaveform(pcm):
            return None  # results come at vosk's endpoints (pauses), partials are too unstable
        result = json.loads(self._recognizer.Result())
        words = [w for w in result.get("result", []) if w.get("word") != _UNKNOWN]
        match = self._phrases.get(normalise_phrase("".join(w["word"] for w in words)))
        if match is None or not words:
            return None
        phrase, threshold = match
        score = sum(float(w.get("conf", 0.0)) for w in words) / len(words)
        return Detection(phrase, phrase, score, threshold) if score >= threshold else None

    def reset(self) -> None:
        self._recognizer.Reset()
