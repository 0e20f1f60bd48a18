"""pocketsphinx keyphrase spotting: custom English phrases with the en-us model its wheel ships."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from pocketsphinx import Decoder

from pibuddy.audio.errors import EngineUnavailable
from pibuddy.audio.wakeword.base import Detection, WakeWordEngine


class PocketsphinxEngine(WakeWordEngine):
    """All phrases in one keyword-spotting search, each with its own `kws_threshold`.

    pocketsphinx answers yes or no, so detections carry score 1.0 and threshold 0.0.

    Args:
        phrases: Keyphrase -> kws_threshold (1e-50 … 1e-5; smaller fires more easily).
    """

    def __init__(self, phrases: Mapping[str, float]) -> None:
        if not phrases:
            raise EngineUnavailable("wakeword.pocketsphinx.phrases is empty")
        self._decoder = Decoder(lm=None, loglevel="FATAL")
        missing = [w for p in phrases for w in p.lower().split() if self._decoder.lookup_word(w) is None]
        if missing:
            raise EngineUnavailable(f"pocketsphinx's dictionary lacks {', '.join(sorted(set(missing)))}; "
                                    "pick phrases of common English words")
        with tempfile.TemporaryDirectory(prefix="pibuddy-kws-") as directory:
            keyfile = Path(directory) / "keyphrases.txt"
            keyfile.write_text("".join(f"{p.lower()} /{t:g}/\n" for p, t in phrases.items()))
            try:
                self._decoder.add_kws("wake", str(keyfile))
            except RuntimeError as exc:
                raise EngineUnavailable(f"pocketsphinx rejected the keyphrases: {exc}") from None
        self._decoder.activate_search("wake")
        self._phrases = {p.lower(): p for p in phrases}
        self._decoder.start_utt()

    @property
    def phrases(self) -> list[str]:
        return list(self._phrases.values())

    def process(self, pcm: bytes) -> Detection | None:
        self._decoder.process_raw(pcm, False, False)
        hypothesis = self._decoder.hyp()
        if hypothesis is None:
            return None
        self.reset()  # the spotter keeps reporting the same hit until the utterance restarts
        phrase = self._phrases.get(hypothesis.hypstr.strip(), hypothesis.hypstr.strip())
        return Detection(phrase, phrase, 1.0, 0.0, graded=False)

    def reset(self) -> None:
        self._decoder.end_utt()
        self._decoder.start_utt()
