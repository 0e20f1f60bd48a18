"""Text as a speech recogniser writes it: lower-case words, numbers spelled out, no punctuation.

"Bedroom 2" -> "bedroom two"; "40%" -> "forty" (the templates say "percent" as a word where it belongs).
The intent matcher also knows each name in this form, so what the recogniser writes matches the names
people typed.
"""

from __future__ import annotations

import functools
import re
from typing import Final

from unicode_rbnf import RbnfEngine

_NUMBER: Final = re.compile(r"\d+")
_NOT_WORD: Final = re.compile(r"[^\w\s']")


@functools.cache
def _engine(language: str) -> RbnfEngine | None:
    try:
        return RbnfEngine.for_language(language.split("-", maxsplit=1)[0])
    except ValueError:  # unicode-rbnf knows no rules for this language
        return None


def number_words(number: int, language: str = "en") -> str:
    """`42` -> "forty two" (hyphens become spaces: recognisers write words)."""
    engine = _engine(language)
    if engine is None:
        return str(number)
    return " ".join(engine.format_number(number).text.replace("-", " ").split())


def spoken(text: str, language: str = "en") -> str:
    """Lower-case words, digits as number words, punctuation (except apostrophes in words) removed."""
    text = _NUMBER.sub(lambda m: f" {number_words(int(m.group()), language)} ", text.casefold())
    words = _NOT_WORD.sub(" ", text.replace("_", " ").replace("-", " ")).split()
    return " ".join(w.strip("'") for w in words if w.strip("'"))
