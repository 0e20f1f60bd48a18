"""pocketsphinx against a grammar of what PiBuddy can do: English, with the en-us model its wheel ships.

A grammar-constrained decoder only ever writes sentences of the grammar, and for most audio that fits no
sentence it writes nothing. But it can also force speech that is not a command onto the nearest command
("the quick brown fox jumps over the lazy dog" came out as "the lounge lights on"), so every grammar result
passes a confidence gate, a likelihood ratio: the same audio is decoded a second time by a free phone loop
(any phone may follow any other), and the grammar path's acoustic score is compared with the loop's. A
command that was really said scores almost as well as the best phone string; speech forced onto the grammar
scores far worse.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from pocketsphinx import Decoder

from pibuddy.brain.asr.base import AsrEngine, Recognition, Understood
from pibuddy.brain.asr.hiss import plural_hiss
from pibuddy.brain.asr.lexicon import Lexicon
from pibuddy.brain.asr.repairs import Repairs
from pibuddy.brain.doubt import kind_twins, number_twin
from pibuddy.brain.errors import BrainUnavailable
from pibuddy.brain.grammar import Sentences, compile_sentences
from pibuddy.brain.ngram import arpa
from pibuddy.brain.sentences import load_intents
from pibuddy.brain.spoken import number_words
from pibuddy.brain.vocabulary import Vocabulary

_LOGGER = logging.getLogger(__name__)
_COMMANDS: Final = "commands"
_PHONES: Final = "phones"
_READINGS: Final = "readings"
# The gate's floor on (grammar path's acoustic score - phone loop's) / the grammar path's speech frames, in
# pocketsphinx's own log units (log base 1.0001 of its scaled acoustic scores). Measured 2026-11-22 on espeak-ng
# en-us and en (British) speech, tests/brain/test_speech.py's sentences and 45 more:
# - through the PulseAudio virtual mic, the pipeline's VAD and Opus: the 34 commands the grammar heard scored
#   -0.1 to -16.4; of 34 nonsense sentences it took 19: "what is two plus two" -> "what is today's date" at
#   -19.3 (it only answers), the 18 others -28.7 to -108, every one that would have become a tool call among them;
# - file-fed with pink noise mixed in at 30, 20 and 10 dB SNR (and white noise at -60 dBFS): commands +0.5 to
#   -17.8 (10 dB SNR is the worst), nonsense that would have become a tool call -22.6 to -89.
# The floor sat between the two groups (-20) for the grammar. Against the language model of the brain's whole
# template set (2026-12-07, espeak-ng en-us 150 wpm and en-gb 140 wpm through the Opus round trip): 38 commands
# scored -7.2 to -22.9 (one en-gb mishearing at +131.6 made no call); 34 nonsense sentences became word salad
# from -32.4 to +297.6 of which none made a tool call: the model does not force speech onto a command, the
# matcher rejects the salad. So the floor moved below the commands: -30 (once the timer templates joined the model,
# "set floor lamp brightness to forty percent" scored -26.3 file-fed), and it still rejects noise.
# Audio with long runs of exact zeros (no microphone gives them) scored
# real commands down to -34 and misheard more of them as well.
# A uniform phone loop, not one weighted by the model's phone bigrams (en-us-phone.lm.bin): it separated the
# groups more widely (bigram loop: commands down to -33.1, nonsense tool calls from -44.9) and costs 40 % less.
_CONFIDENCE_FLOOR: Final = -30.0
_JSGF_NUMBER_STEP: Final = 5  # each number rule is copied wherever a template uses it: 0-100 made decoding 5x slower
_SAMPLED_SENTENCES: Final = 20000  # drawn from the templates for the language model's n-gram counts


class SpeechModel(StrEnum):
    """What constrains the decoder: an n-gram language model of the brain's sentences, or a JSGF grammar of them."""

    NGRAM = "language model"
    JSGF = "grammar"
# "light" against "lights" in the same audio, force-aligned (espeak-ng en-us 150/190 wpm, en-gb, a female en-us
# voice; a -60 dBFS noise floor and the pipeline's Opus round trip; 2026-12-07): "living room light on" (the s
# merges into "on") was read as "lights" with the wrong reading ahead by 0.4-2.2 per speech frame, and right
# readings led by -0.4 to 1.2 ("turn on the living room lights") or 1.8-5.1 ("living room lights off"). Only a
# lead above every wrong one measured counts as sure; below it the brain asks.
_TWIN_MARGIN: Final = 2.5
# A number against the best other number (0-100) in the same sentence, force-aligned the same way (the test's
# Opus round trip, the four voices above, 2026-12-07): numbers heard right led by -0.07 to 3.8 per frame (most
# 0.5-2.1, "forty" over "forty eight" by 0.10 in en-gb); numbers heard wrong ("twenty nine" for 25, "sixty nine"
# for 65 in the female voice) trailed by 0.24-0.61. Unlike light/lights the two groups barely overlap, so the
# bar is low: a number must lead its best rival by 0.3, else the brain asks which.
_NUMBER_MARGIN: Final = 0.3
# A teen against its tens ("fifteen" <-> "fifty": they differ by a final N), the same way (2026-12-07, the four
# voices, 13-19 and 30-90, several noise draws each, since the result moves with the audio's last bits and with
# what the recogniser heard before): the tens said led its teen by 0.11-1.97 per frame, but a teen said let its
# tens lead by up to 0.80 (en-us at 190 wpm). Only a lead beyond every wrong one counts as sure, so a bare tens
# or a teen is acted on when said clearly and asked about otherwise ("Sorry, what number?"). Measured again with
# a fresh front end per decode (2026-12-07 afternoon, 270 clips: 13-19 and the tens in three sentences, the five
# bench conditions): the wrong reading led by up to 0.81 (a teen said) and 0.94 ("ninety degrees" said, read as
# "nineteen"); at 1.2, 29 of 210 bare tens and teens are acted on, at 1.0 it would be 44 with 0.06 to spare.
_TEEN_TENS_MARGIN: Final = 1.2
# How many of the lattice's best distinct sentences are tried when the best path is not understood: the language
# model lets words of other sentences in ("turn off the light is the bedroom", "open the blind is"), and the
# sentence said is often next in rank. Measured 2026-12-07 on bench/brain_accuracy.py's 61 commands and 22
# non-commands, espeak-ng en-us 190 wpm and en-gb 140 wpm, two noise-floor draws each, through the Opus round
# trip: commands understood right 204 -> 225 of 244, non-commands acted on 0 -> 0, mean recogniser CPU per
# utterance 0.27 -> 0.34 s (the search runs only when the best path is not understood; nonsense always pays it).
_ALTERNATIVES: Final = 20
# ... walking at most this many of its paths: many collapse to the same words (fillers, silences, other
# segmentations), so reaching `_ALTERNATIVES` distinct ones has no bound of its own, and the lattice of a long
# noisy utterance holds thousands of paths (a bound on time, not on quality). Measured 2026-12-07 on 42 clips of
# 16 sentences (commands and not; espeak-ng en-us 150/190 wpm and en-gb 140 wpm over the -60 dBFS noise floor,
# under pink noise, as tests/peers/speech.py's television, and 10-13 s run-on sentences): 20 distinct readings
# came within 20-98 paths (median 35); whole lattices held 1,700-7,500 paths and took up to 0.38 s to walk (13 s
# of television); 200 paths, twice the most needed, took at most 0.22 s of that.
_PATHS_WALKED: Final = _ALTERNATIVES * 10
# ... and only a reading at most this many words (inserted, dropped or changed) from the best path: the model's
# slips are local ("blind is" for "blinds", "light is" for "lights in"). Measured the same way over all five
# bench conditions: the 20 commands whose best path was not understood were taken 1-3 words away (19 of them
# 1-2, scoring -4.4 to +4.5 against the phone loop); television speech and "tell me a joke" became commands
# ("turn my study to four", "every shutter open") 3-5 words away, scoring -8.7 to -10.8, inside the gate.
_MOST_WORDS_APART: Final = 2
# When no reading of the lattice is understood either: how many one-word repairs of the best path (repairs.py) the
# audio chooses among (one search over a grammar of them), and how many of its best the brain is asked about
# (the intent matcher takes about 10 ms a sentence). The first understood one is taken only if, force-aligned, it
# fits the audio at most `_REPAIR_MARGIN` per speech frame worse than the best path. Measured 2026-12-07 on
# bench/brain_accuracy.py's 62 commands and 30 non-commands in its five conditions and on the test household: the
# repairs that were right fitted -0.6 to -3.05 per frame worse ("the off guest mode" -> "turn off guest mode" in
# espeak's female voice; one +5.3); the wrong ones lost a word that was said or put in another: "the guest mode"
# (guest mode turned on) -3.7, "deactivate all the light" for "activate good night" -4.8, "turn on the study fan"
# -5.1, the opposite "turn on guest mode" -5.4. Non-commands acted on stayed 0 of 150.
_REPAIRS_HEARD: Final = 60
_REPAIRS_ASKED: Final = 5
_REPAIR_MARGIN: Final = 3.4
_HISSING_PHONES: Final = frozenset({"S", "Z", "SH", "ZH", "CH", "JH", "F", "V", "TH", "DH", "HH"})
_NOT_SPEECH: Final = ("<", "(", "[")  # <sil>, <s>, </s>, (NULL) (an empty arc), [NOISE] and other fillers


@dataclass(frozen=True, slots=True)
class _Path:
    """The best path of one decode: its words and its acoustic score summed over the utterance."""

    text: str
    """Space-separated words, never empty."""
    acoustic: int
    speech_frames: int
    """Frames in words (not silence or fillers)."""


class PocketsphinxAsr(AsrEngine):
    """Args:
    language: Must be English (en); the wheel ships no other acoustic model.
    confidence_floor: The gate's floor (see `_CONFIDENCE_FLOOR`): a grammar result scoring below it is
        rejected. None turns the gate off (one decode per utterance instead of two).
    """

    constrained = True

    def __init__(self, language: str, *, confidence_floor: float | None = _CONFIDENCE_FLOOR,
                 model: SpeechModel = SpeechModel.NGRAM) -> None:
        if language.split("-", maxsplit=1)[0] != "en":
            raise BrainUnavailable(f"pocketsphinx only knows English; for {language} set brain.asr: vosk "
                                   "and brain.vosk_model_path")
        # The decoder is built for each set of sentences, with a dictionary of just their words (see lexicon.py);
        # the lexicon opens at prepare() or at first use: with a reachable xiaozhi server the local brain may
        # never be needed.
        self._lexicon = Lexicon()
        self._decoder: Decoder | None = None
        self._floor = confidence_floor
        self._model = model
        self._lock = threading.RLock()  # _decode may build the first decoder (set_vocabulary) under it
        self._fingerprint: str | None = None
        self._repairs = Repairs(())
        self.sentences: Sentences | None = None

    def prepare(self) -> None:
        self._lexicon.known("a")

    def _loaded(self) -> Decoder:
        if self._decoder is None:
            self.set_vocabulary(Vocabulary())
        assert self._decoder is not None, "pocketsphinx rejected even the empty household's sentences"
        return self._decoder

    def known(self, word: str) -> bool:
        return self._lexicon.known(word)

    def set_vocabulary(self, vocabulary: Vocabulary) -> None:
        """Rebuild the decoder for the sentences when names, rooms or domains changed (a second or two)."""
        if vocabulary.fingerprint == self._fingerprint:
            return
        ngram = self._model is SpeechModel.NGRAM
        sentences = compile_sentences(load_intents("en")[0], vocabulary, "en", self.known,
                                      number_step=1 if ngram else _JSGF_NUMBER_STEP)
        sampled = list(sentences.sample(_SAMPLED_SENTENCES)) if ngram else []
        try:
            decoder = self._decoder_for(sentences, sampled)
        except RuntimeError as exc:  # pocketsphinx's only error type; keep the previous model
            _LOGGER.error("pocketsphinx rejected the command %s: %s", self._model, exc)
            return
        with self._lock:
            self._decoder, self._fingerprint, self.sentences = decoder, vocabulary.fingerprint, sentences
            self._repairs = Repairs(sampled)
        _LOGGER.info("speech %s rebuilt: %d sentence templates, %d devices%s", self._model,
                     len(sentences.templates), len(vocabulary.things), f"; names with words pocketsphinx cannot "
                     f"say: {', '.join(sentences.unspeakable)}" if sentences.unspeakable else "")

    def _decoder_for(self, sentences: Sentences, sampled: list[list[str]]) -> Decoder:
        """A decoder whose dictionary holds the sentences' words and the readings they are re-scored against
        (a kind word's plural, every number), with the phone loop and the language model of the `sampled`
        sentences (the sentences' grammar when none were)."""
        said = sentences.words()
        words = said | {twin for word in said for twin in kind_twins(word)}
        words |= {w for n in range(101) for w in number_words(n).split()}
        with tempfile.TemporaryDirectory(prefix="pibuddy-") as folder:  # pocketsphinx reads files
            dictionary = Path(folder) / "commands.dict"
            self._lexicon.write_dictionary(words, dictionary)
            # No lattice rescoring (bestpath): for these small grammars it doubled the CPU and did not help
            # (measured), and its posterior (hyp().prob) did not tell them apart either (commands 0.01-0.09,
            # nonsense 0.01-0.48).
            decoder = Decoder(lm=None, dict=str(dictionary), loglevel="FATAL", bestpath=False)
            decoder.add_allphone_file(_PHONES)  # no phone language model: every phone sequence as likely
            if sampled:
                model = Path(folder) / "commands.lm"
                model.write_text(arpa(sampled))
                decoder.add_lm_file(_COMMANDS, str(model))
            else:
                decoder.add_jsgf_string(_COMMANDS, sentences.jsgf())
        return decoder

    def recognise(self, pcm: bytes, understood: Understood | None = None, *,
                  readable: Understood | None = None) -> Recognition:
        """The sentence heard, with its confidence: the log-likelihood ratio per speech frame of its path against
        the phone loop (0 is as good as any phone string; `_CONFIDENCE_FLOOR`). When the language model's best
        path is not `understood`, the best-ranked sentence of its lattice that is (see `_ALTERNATIVES`), else the
        best-fitting one-word repair that is (`_REPAIRS_HEARD`). A sentence that is not even `readable` is not
        judged: whatever its confidence, nothing could come of it, and the phone loop is a third of the CPU."""
        if not pcm:
            return Recognition("", None, accepted=False)
        if self.sentences is None:
            self.set_vocabulary(Vocabulary())
        floor = self._floor
        with self._lock:
            command = self._decode(_COMMANDS, pcm)
            if command is not None and understood is not None and not understood(command.text):
                better = (self._understood_reading(pcm, command.text, understood)
                          or self._repaired_reading(pcm, command.text, understood))
                if better is not None:
                    command = better
                elif readable is not None and not readable(command.text):
                    _LOGGER.info("speech: %r means nothing to the brain; not judged", command.text)
                    return Recognition(command.text, None, accepted=False)
            if command is None or floor is None:
                return Recognition(command.text if command else "", None, accepted=command is not None)
            free = self._decode(_PHONES, pcm)
        if free is None:  # the loop fits any sound: no path at all means no audio to judge
            return Recognition(command.text, None, accepted=False)
        confidence = (command.acoustic - free.acoustic) / max(command.speech_frames, 1)
        accepted = confidence >= floor
        if not accepted:
            _LOGGER.info("speech not sure enough to act on: %r scored %.1f per frame (floor %.1f)", command.text,
                         confidence, floor)
        return Recognition(command.text, confidence, accepted=accepted)

    def _understood_reading(self, pcm: bytes, heard: str, understood: Understood) -> _Path | None:
        """The best-ranked sentence of the last decode's lattice that is `understood`, force-aligned to `pcm` for
        its own acoustic score (the gate judges it, not the best path)."""
        readings = list(itertools.islice(self._ranked_readings(), _ALTERNATIVES))
        chosen = next((r for r in readings if _words_apart(heard, r) <= _MOST_WORDS_APART and understood(r)), None)
        if chosen is None:
            return None
        _LOGGER.info("speech: %r is not understood; taking %r, ranked %d of the lattice's readings", heard, chosen,
                     readings.index(chosen) + 1)
        return self._decode(None, pcm, align=chosen)

    def _repaired_reading(self, pcm: bytes, heard: str, understood: Understood) -> _Path | None:
        """Of `heard`'s one-word repairs, the best-fitting `understood` one as the audio ranks them, force-aligned."""
        repairs = self._repairs.of(heard)[:_REPAIRS_HEARD]
        if not repairs or self._among(pcm, repairs) is None:
            return None
        for text in itertools.islice(self._ranked_readings(), _REPAIRS_ASKED):
            if understood(text):
                return self._fitting_repair(pcm, heard, text)
        return None

    def _ranked_readings(self) -> Iterator[str]:
        """The last decode's distinct sentences, best first, from at most `_PATHS_WALKED` of its lattice's paths."""
        seen: set[str] = set()
        for hypothesis in itertools.islice(self._loaded().nbest(), _PATHS_WALKED):
            text = " ".join(hypothesis.hypstr.split()) if hypothesis is not None else ""  # None: an empty path
            if text and text not in seen:
                seen.add(text)
                yield text

    def _fitting_repair(self, pcm: bytes, heard: str, repair: str) -> _Path | None:
        """`repair` force-aligned, if it fits the audio within `_REPAIR_MARGIN` of what the recogniser heard."""
        ours, theirs = (self._decode(None, pcm, align=text) for text in (repair, heard))
        if ours is None or theirs is None:
            return None
        margin = (ours.acoustic - theirs.acoustic) / max(theirs.speech_frames, 1)
        taken = margin >= -_REPAIR_MARGIN
        _LOGGER.info("speech: %r is not understood; %s its repair %r (%.2f per frame against it)", heard,
                     "taking" if taken else "not taking", repair, margin)
        return ours if taken else None

    def sure_of(self, pcm: bytes, heard: str, other: str, *, number: bool = False) -> bool:
        """`heard` and `other` each force-aligned to `pcm`: sure when `heard`'s acoustic score per speech frame
        beats `other`'s by `_TWIN_MARGIN` (`_NUMBER_MARGIN` for another number, `_TEEN_TENS_MARGIN` for its
        teen/tens twin)."""
        with self._lock:
            first, second = (self._decode(None, pcm, align=text) for text in (heard, other))
        if first is None or second is None:
            return second is None  # a reading with words the dictionary lacks is no rival
        margin = (first.acoustic - second.acoustic) / max(first.speech_frames, 1)
        needed = _TWIN_MARGIN if not number else _TEEN_TENS_MARGIN if number_twin(heard) == other else _NUMBER_MARGIN
        _LOGGER.info("%r over %r: %.2f per frame (sure from %.1f)", heard, other, margin, needed)
        return margin >= needed

    def plural_said(self, pcm: bytes, plural: str, word: str) -> bool | None:
        """Listens for the s of `word` at the end of where it aligns in `plural` (see hiss.py). Only a plural ending
        in the voiceless s counts ("lights", "lamps"): a voiced one ("fans", "blinds") was not measured, and a next
        word that starts with a hiss of its own ("lights should") would be taken for it."""
        words = plural.split()
        if word not in words or not self._ends_in_hiss(word):
            return None
        following = words[words.index(word) + 1:][:1]
        if following and any(p.split()[0] in _HISSING_PHONES for p in self._lexicon.pronunciations(following[0])):
            return None
        with self._lock:
            aligned = self._decode(None, pcm, align=plural)
            ends = [s.end_frame for s in self._loaded().seg() if s.word.split("(")[0] == word] if aligned else []
        said = plural_hiss(pcm, ends[0]) if ends else None
        _LOGGER.info("speech: %r %s", word, {True: "said with its s", False: "said without its s",
                                              None: "not clear from its s"}[said])
        return said

    def _ends_in_hiss(self, word: str) -> bool:
        said = self._lexicon.pronunciations(word)
        return bool(said) and all(phones.endswith(" S") for phones in said)

    def closest(self, pcm: bytes, readings: list[str]) -> str | None:
        """Which of `readings` fits `pcm` best (a number's 100 other values cost one small search, not 100
        alignments)."""
        with self._lock:
            best = self._among(pcm, readings)
        return best.text if best is not None else None

    def _among(self, pcm: bytes, readings: list[str]) -> _Path | None:
        """One decode against a grammar of just `readings`, the words they share said once around the part that
        differs; its lattice then holds only them."""
        spoken = [r.split() for r in readings if all(self.known(w) for w in r.split())]
        if not spoken:
            return None
        start = _shared(spoken)
        end = _shared([r[start:][::-1] for r in spoken])
        before, after = spoken[0][:start], spoken[0][len(spoken[0]) - end:]
        middles = sorted({" ".join(r[start:len(r) - end]) for r in spoken})
        choice = " | ".join(f"( {m} )" if m else "<NULL>" for m in middles)
        grammar = (f"#JSGF V1.0;\ngrammar {_READINGS};\n"
                   f"public <s> = {' '.join(before)} ( {choice} ) {' '.join(after)};\n")
        try:
            self._loaded().add_jsgf_string(_READINGS, grammar)
        except RuntimeError as exc:
            _LOGGER.warning("pocketsphinx rejected the readings grammar: %s", exc)
            return None
        return self._decode(_READINGS, pcm)

    def _decode(self, search: str | None, pcm: bytes, *, align: str | None = None) -> _Path | None:
        decoder = self._loaded()
        if align is not None:
            try:
                decoder.set_align_text(align)  # a word the dictionary lacks raises
            except (RuntimeError, KeyError, ValueError):
                return None
        else:
            decoder.activate_search(search)
        # A fresh front end for every decode: it otherwise carries state from the audio before (the same utterance
        # decoded twice in a row was heard as two different sentences), so what was heard, and the gate's two
        # decodes of one utterance, depended on the turns before and on the order of the searches.
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, False, True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is None or not hypothesis.hypstr.strip():
            return None
        # The Python API hands scores back as 1.0001 ** score; the decoder's logmath turns them back exactly.
        acoustic, speech = 0, 0
        log = decoder.get_logmath()
        for segment in decoder.seg():
            acoustic += log.log(segment.ascore)
            if not segment.word.startswith(_NOT_SPEECH):
                speech += segment.end_frame - segment.start_frame + 1
        return _Path(" ".join(hypothesis.hypstr.split()), acoustic, speech)


def _words_apart(first: str, second: str) -> int:
    """The word-level edit distance: how many words to insert, drop or change to turn one text into the other."""
    a, b = first.split(), second.split()
    row = list(range(len(b) + 1))
    for i, word in enumerate(a, start=1):
        diagonal, row[0] = row[0], i
        for j, other in enumerate(b, start=1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (word != other))
    return row[-1]


def _shared(readings: list[list[str]]) -> int:
    """How many leading words all `readings` have in common."""
    count = 0
    for words in zip(*readings, strict=False):
        if len(set(words)) > 1:
            break
        count += 1
    return count
