"""One-word repairs of a sentence the recogniser wrote but the brain does not understand.

A language model lets a word of one sentence stand where another sentence's word was said: espeak-ng's female
voice saying "turn off the floor lamp" came out "the off the floor lamp", with "turn" nowhere in the lattice. The
repairs of a text are the texts one word away (a word changed, dropped or added) whose every run of three words,
sentence edges included, occurs in the brain's own sentences; the recogniser lets the audio choose among them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Final

_EDGE: Final = "<s>"


class Repairs:
    """The three-word runs and word pairs of `sentences` (lists of words), to repair texts with."""

    def __init__(self, sentences: Iterable[Sequence[str]]) -> None:
        self._runs: set[str] = set()
        after: defaultdict[str, set[str]] = defaultdict(set)
        for sentence in sentences:
            words = (_EDGE, _EDGE, *sentence, _EDGE, _EDGE)
            self._runs.update(" ".join(run) for run in zip(words, words[1:], words[2:], strict=False))
            for first, second in pairwise(words):
                after[first].add(second)
        self._after = {word: sorted(following - {_EDGE}) for word, following in after.items()}

    def of(self, text: str) -> list[str]:
        """The texts one word from `text` that read like the brain's sentences, changes first, then drops and
        additions, each in the text's word order."""
        words = text.split()
        changed, dropped, added = [], [], []
        for i, word in enumerate(words):
            before, rest = words[:i], words[i + 1:]
            changed += [[*before, other, *rest] for other in self._followers(before) if other != word]
            dropped.append([*before, *rest])
            added += [[*before, other, *words[i:]] for other in self._followers(before)]
        added += [[*words, other] for other in self._followers(words)]
        found = (" ".join(w) for w in (*changed, *dropped, *added) if w and self._reads_well(w))
        return [repair for repair in dict.fromkeys(found) if repair != text]

    def _followers(self, before: list[str]) -> list[str]:
        return self._after.get(before[-1] if before else _EDGE, [])

    def _reads_well(self, words: list[str]) -> bool:
        edged = (_EDGE, _EDGE, *words, _EDGE, _EDGE)
        return all(" ".join(run) in self._runs for run in zip(edged, edged[1:], edged[2:], strict=False))
