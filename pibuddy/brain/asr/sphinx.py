"""pocketsphinx against a grammar of what PiBuddy can do: English, with the en-us model its wheel ships.

A grammar-constrained decoder only ever writes sentences of the grammar, and writes nothing when no path
through the grammar fits the audio: nonsense and noise come out as "", not as a random command.
"""

from __future__ import annotations

import logging
import threading

from pocketsphinx import Decoder

from pibuddy.brain.asr.base import AsrEngine
from pibuddy.brain.errors import BrainUnavailable
from pibuddy.brain.grammar import Grammar, build_grammar
from pibuddy.brain.vocabulary import Vocabulary

_LOGGER = logging.getLogger(__name__)
_SEARCH = "commands"


class PocketsphinxAsr(AsrEngine):
    """Args:
    language: Must be English (en); the wheel ships no other acoustic model.
    """

    constrained = True

    def __init__(self, language: str) -> None:
        if language.split("-", maxsplit=1)[0] != "en":
            raise BrainUnavailable(f"pocketsphinx only knows English; for {language} set brain.asr: vosk "
                                   "and brain.vosk_model_path")
        # No lattice rescoring (bestpath): for these small grammars it doubled the CPU and did not help (measured).
        self._decoder = Decoder(lm=None, loglevel="FATAL", bestpath=False)
        self._lock = threading.Lock()
        self._fingerprint: str | None = None
        self.grammar: Grammar | None = None

    def known(self, word: str) -> bool:
        return self._decoder.lookup_word(word) is not None

    def set_vocabulary(self, vocabulary: Vocabulary) -> None:
        """Rebuild the grammar when names, rooms or domains changed (a few hundred ms)."""
        if vocabulary.fingerprint == self._fingerprint:
            return
        grammar = build_grammar(vocabulary, "en", self.known)
        with self._lock:
            try:
                self._decoder.add_jsgf_string(_SEARCH, grammar.jsgf)
            except RuntimeError as exc:  # pocketsphinx's only error type; keep the previous grammar
                _LOGGER.error("pocketsphinx rejected the command grammar: %s", exc)
                return
            self._decoder.activate_search(_SEARCH)
        self._fingerprint, self.grammar = vocabulary.fingerprint, grammar
        _LOGGER.info("speech grammar rebuilt: %d sentence templates, %d devices%s", grammar.sentences,
                     len(vocabulary.things), f"; names with words pocketsphinx cannot say: "
                     f"{', '.join(grammar.unspeakable)}" if grammar.unspeakable else "")

    def transcribe(self, pcm: bytes) -> str:
        if self.grammar is None:
            self.set_vocabulary(Vocabulary())
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(pcm, False, True)
            self._decoder.end_utt()
            hypothesis = self._decoder.hyp()
        return " ".join(hypothesis.hypstr.split()) if hypothesis is not None else ""
