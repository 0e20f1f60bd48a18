"""vosk free-form recognition for languages pocketsphinx has no model for (Chinese and others).

The model directory comes from config (setup.sh offers to download a small one on a real Pi); vosk's own
download-by-language is never used. The recogniser's phrase list comes from the intent matcher's own templates
(`grammar.compile_sentences`, Chinese segmented into the model's words), plus vosk's "[unk]": a grammar-limited vosk
forces any audio into the grammar's words (as any Kaldi grammar does), and "[unk]" is where speech outside them
goes instead. Models built without a runtime graph (the big ones) ignore the list and decode
with their own language model. The confidence gate is the mean of vosk's word confidences (lattice posteriors,
with `SetWords`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final

from vosk import KaldiRecognizer, Model, SetLogLevel

from pibuddy.audio.frames import SAMPLE_RATE
from pibuddy.brain.asr.base import AsrEngine, Recognition, Understood
from pibuddy.brain.errors import BrainUnavailable
from pibuddy.brain.grammar import Sentences, compile_sentences
from pibuddy.brain.sentences import load_intents
from pibuddy.brain.vocabulary import Vocabulary

_LOGGER = logging.getLogger(__name__)
_UNKNOWN = ("[unk]", "<UNK>")  # vosk's unknown-word tokens differ per model
# UNCONFIRMED, not measured here (no vosk model with a known licence ships in a package): vosk's maintainer
# calls its word confidences "not very reliable"; right words are usually near 1. A mean below 0.6 means
# several words were guesses, so the text is not acted on. Unknown-word tokens count with their confidence.
_CONFIDENCE_FLOOR: Final = 0.6
_PHRASES: Final = 5000  # sentences drawn for the phrase list (duplicates merge)


class VoskAsr(AsrEngine):
    """Args:
    model_path: Directory of an unpacked vosk model.
    confidence_floor: The lowest mean word confidence (0-1) acted on; None turns the gate off.
    """

    def __init__(self, model_path: Path | None, *, language: str = "zh-CN",
                 confidence_floor: float | None = _CONFIDENCE_FLOOR) -> None:
        self._floor = confidence_floor
        self._language = language
        self._fingerprint: str | None = None
        self.phrases: list[str] = []
        if model_path is None or not model_path.is_dir():
            raise BrainUnavailable(f"brain.vosk_model_path must be a vosk model directory (got {model_path})")
        SetLogLevel(-1)
        try:
            self._model = Model(str(model_path))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise BrainUnavailable(f"vosk cannot load {model_path}: {exc}") from None

    def known(self, word: str) -> bool:
        return bool(self._model.vosk_model_find_word(word) >= 0)

    def set_vocabulary(self, vocabulary: Vocabulary) -> None:
        """The phrase list for the current names (rebuilt when they change)."""
        if vocabulary.fingerprint == self._fingerprint:
            return
        self.phrases = phrases(compile_sentences(load_intents(self._language)[0], vocabulary, self._language,
                                                 self.known))
        self._fingerprint = vocabulary.fingerprint
        _LOGGER.info("vosk phrase list rebuilt: %d phrases", len(self.phrases))

    def recognise(self, pcm: bytes, understood: Understood | None = None, *,
                  readable: Understood | None = None) -> Recognition:
        del understood, readable  # vosk gives one reading, and its confidence costs nothing more
        if self.phrases:
            recognizer = KaldiRecognizer(self._model, SAMPLE_RATE, json.dumps([*self.phrases, _UNKNOWN[0]],
                                                                              ensure_ascii=False))
        else:
            recognizer = KaldiRecognizer(self._model, SAMPLE_RATE)
        recognizer.SetWords(True)
        recognizer.AcceptWaveform(pcm)
        return judge(recognizer.FinalResult(), self._floor)


def phrases(sentences: Sentences) -> list[str]:
    """Distinct sentences drawn from `sentences`, as vosk's phrase list (words separated by spaces)."""
    return sorted({" ".join(words) for words in sentences.sample(_PHRASES)})


def judge(result: str, floor: float | None = _CONFIDENCE_FLOOR) -> Recognition:
    """vosk's final result (JSON text, with word confidences) as a `Recognition`: the heard text without
    unknown-word tokens, and the mean word confidence against `floor` (None: accept whatever was heard)."""
    try:
        decoded = json.loads(result)
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict):
        _LOGGER.warning("vosk gave a result that is not a JSON object: %.80r", result)
        return Recognition("", None, accepted=False)
    listed = decoded.get("result")
    confidences = [_confidence(w) for w in listed if isinstance(w, dict)] if isinstance(listed, list) else []
    words = [w for w in str(decoded.get("text", "")).split() if w not in _UNKNOWN]
    # Chinese models write characters separated by spaces; the templates have none.
    text = "".join(words) if words and all(_is_cjk(w) for w in words) else " ".join(words)
    if not text:
        return Recognition("", None, accepted=False)
    if not confidences:
        return Recognition(text, None, accepted=floor is None)  # no word list: nothing to judge by
    confidence = sum(confidences) / len(confidences)
    accepted = floor is None or confidence >= floor
    if not accepted:
        _LOGGER.info("speech not sure enough to act on: %r, mean word confidence %.2f (floor %.2f)", text,
                     confidence, floor)
    return Recognition(text, confidence, accepted=accepted)


def _confidence(word: dict[str, Any]) -> float:
    """A word's confidence; one that is missing or not a number counts as 0 (not sure)."""
    value = word.get("conf")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _is_cjk(word: str) -> bool:
    return all("\u3400" <= ch <= "\u9fff" for ch in word)
