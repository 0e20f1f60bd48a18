"""A small back-off trigram language model in ARPA format, from sentences (the brain's expanded templates).

Absolute discounting with back-off (Ney et al.): each seen n-gram gives up `_DISCOUNT` of its count to the
lower order, and the back-off weight makes every history's probabilities sum to one. Unigrams are not
discounted (the vocabulary is closed: every word is in some sentence). Good enough for a closed command language;
the recogniser only needs the sentences' word order to be likely and everything else unlikely.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Final

_DISCOUNT: Final = 0.5
_START: Final = "<s>"
_END: Final = "</s>"
_ORDER: Final = 3


def arpa(sentences: Iterable[Sequence[str]]) -> str:
    """The ARPA text of a trigram model of `sentences` (lists of words, without <s> and </s>)."""
    counts: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(_ORDER)]
    for sentence in sentences:
        words = (_START, *sentence, _END)
        for n in range(1, _ORDER + 1):
            for i in range(len(words) - n + 1):
                gram = words[i:i + n]
                if gram != (_START,):
                    counts[n - 1][gram] += 1
    unigram_total = sum(counts[0].values())
    probability: dict[tuple[str, ...], float] = {(w,): c / unigram_total for (w,), c in counts[0].items()}
    probability[(_START,)] = 0.0
    backoff: dict[tuple[str, ...], float] = {}
    for n in range(2, _ORDER + 1):
        by_history: defaultdict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
        for gram, count in counts[n - 1].items():
            by_history[gram[:-1]].append((gram[-1], count))
        for history, followers in by_history.items():
            total = sum(c for _, c in followers)
            left = _DISCOUNT * len(followers) / total
            lower_seen = 0.0
            for word, count in followers:
                probability[(*history, word)] = (count - _DISCOUNT) / total + left * _lower(probability, backoff,
                                                                                          (*history[1:], word))
                lower_seen += _lower(probability, backoff, (*history[1:], word))
            seen = sum(probability[(*history, w)] for w, _ in followers)
            backoff[history] = max(1.0 - seen, 1e-12) / max(1.0 - lower_seen, 1e-12)
    return _write(counts, probability, backoff)


def _lower(probability: dict[tuple[str, ...], float], backoff: dict[tuple[str, ...], float],
           gram: tuple[str, ...]) -> float:
    """P(gram[-1] | gram[:-1]) with back-off to shorter histories."""
    if gram in probability:
        return probability[gram]
    if len(gram) == 1:
        return 0.0
    return backoff.get(gram[:-1], 1.0) * _lower(probability, backoff, gram[1:])


def _write(counts: list[Counter[tuple[str, ...]]], probability: dict[tuple[str, ...], float],
           backoff: dict[tuple[str, ...], float]) -> str:
    grams = [[*sorted(counts[0]), (_START,)], *(sorted(c) for c in counts[1:])]
    lines = ["\\data\\", *(f"ngram {n + 1}={len(g)}" for n, g in enumerate(grams)), ""]
    for n, listed in enumerate(grams, start=1):
        lines.append(f"\\{n}-grams:")
        for gram in listed:
            p = probability[gram]
            row = f"{-99.0 if p <= 0 else math.log10(p):.5f} {' '.join(gram)}"
            if n < _ORDER and gram in backoff:
                row += f" {math.log10(backoff[gram]):.5f}"
            lines.append(row)
        lines.append("")
    lines.append("\\end\\")
    return "\n".join(lines) + "\n"
