"""The pronouncing dictionary the pocketsphinx wheel ships (134 860 English words), looked up in place.

Loaded into a decoder, the whole dictionary cost 23 MB of RSS, and building a language model's search over it
held the GIL for 2.3-4.6 s here (pocketsphinx's C code does not release it): the microphone's callback starved
and was reopened ("microphone stopped delivering audio"), the event loop stood still, a wake word said then was
lost. So the decoder gets a dictionary of just the words its sentences use (built in 0.05 s), and words are
looked up here: a binary search over the file, which is sorted by word, mapped read-only.
"""

from __future__ import annotations

import bisect
import mmap
from array import array
from collections.abc import Iterable
from pathlib import Path

from pocketsphinx import get_model_path


def default_dictionary() -> Path:
    return Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"


class Lexicon:
    """Words and their pronunciations from a pocketsphinx dictionary file ("word PH O NES", variants written
    "word(2) ...", lines sorted by word)."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path or default_dictionary()
        self._data: mmap.mmap | None = None
        self._starts: array[int] = array("Q")

    def known(self, word: str) -> bool:
        return bool(self.pronunciations(word))

    def pronunciations(self, word: str) -> list[str]:
        """Every pronunciation of `word` (phones separated by spaces); [] for a word the dictionary lacks."""
        starts = self._line_starts()
        key = word.encode()
        found = []
        for line in range(bisect.bisect_left(starts, key, key=self._word_at), len(starts)):
            head, _, phones = self._line(line).partition(b" ")
            if head.split(b"(", 1)[0] != key:
                break
            found.append(phones.decode().strip())
        return found

    def write_dictionary(self, words: Iterable[str], path: Path) -> list[str]:
        """A dictionary file of `words` (every pronunciation) for a decoder; returns the words it lacks."""
        missing = []
        with path.open("w", encoding="utf-8") as out:
            for word in sorted(set(words)):
                said = self.pronunciations(word)
                if not said:
                    missing.append(word)
                for number, phones in enumerate(said, start=1):
                    out.write(f"{word if number == 1 else f'{word}({number})'} {phones}\n")
        return missing

    def _line_starts(self) -> array[int]:
        """The file's line offsets (the file mapped at first use)."""
        if self._data is None:
            with self._path.open("rb") as file:
                data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
            starts, at = array("Q"), 0
            while at < len(data):  # one pass at first use: 134 860 line offsets, 1 MB
                starts.append(at)
                at = data.find(b"\n", at) + 1 or len(data)
            self._data, self._starts = data, starts
        return self._starts

    def _line(self, index: int) -> bytes:
        assert self._data is not None
        end = self._starts[index + 1] - 1 if index + 1 < len(self._starts) else len(self._data)
        return self._data[self._starts[index]:end]

    def _word_at(self, start: int) -> bytes:
        assert self._data is not None
        end = self._data.find(b" ", start)
        return self._data[start:end if end >= 0 else len(self._data)].split(b"(", 1)[0]

