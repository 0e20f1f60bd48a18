"""pymicro-wakeword 2.x: bundled okay_nabu / hey_jarvis / alexa / hey_mycroft, several at once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

from pibuddy.audio.errors import EngineUnavailable
from pibuddy.audio.wakeword.base import Detection, WakeWordEngine


class MicroWakeWordEngine(WakeWordEngine):
    """One shared feature front-end (10 ms hop) feeding one TFLite model per word.

    Args:
        words: Model name -> probability cutoff (the score is the model's sliding-window mean).
        models_dir: Extra directory searched first for `<name>.json` model configs.
    """

    def __init__(self, words: Mapping[str, float], *, models_dir: Path | None = None) -> None:
        if not words:
            raise EngineUnavailable("wakeword.micro.words is empty")
        self._features = MicroWakeWordFeatures()
        self._models = [(name, _load(name, models_dir), cutoff) for name, cutoff in words.items()]

    @property
    def phrases(self) -> list[str]:
        return [model.wake_word for _, model, _ in self._models]

    def process(self, pcm: bytes) -> Detection | None:
        best: Detection | None = None
        for features in self._features.process_streaming(pcm):
            for name, model, cutoff in self._models:
                score = model.process_streaming_prob(features)
                if score is not None and score > cutoff and (best is None or score > best.score):
                    best = Detection(name, model.wake_word, score, cutoff)
        return best

    def reset(self) -> None:
        self._features.reset()
        for _, model, _ in self._models:
            model.reset()


def _load(name: str, models_dir: Path | None) -> MicroWakeWord:
    if models_dir is not None and (models_dir / f"{name}.json").is_file():
        try:
            return MicroWakeWord.from_config(models_dir / f"{name}.json")
        except (OSError, ValueError, KeyError) as exc:
            raise EngineUnavailable(f"microWakeWord model {name} in {models_dir}: {exc}") from None
    try:
        return MicroWakeWord.from_builtin(Model(name))
    except ValueError:
        known = ", ".join(m.value for m in Model)
        raise EngineUnavailable(f"no microWakeWord model {name!r} (bundled: {known}; or set models_dir)") from None
