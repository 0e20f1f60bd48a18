"""Short sentences a voice can speak about what a driver did or found, for any driver.

`sentence([turned(the("desk lamp"), True), set_to("its", "brightness", "40 %")])` ->
"Turned the desk lamp on and set its brightness to 40 %." Names are kept as the user wrote them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from pibuddy.drivers.names import is_cjk

_OWN_DETERMINERS: Final = frozenset({"the", "my", "our", "your", "a", "an"})


def the(name: str) -> str:
    """`desk lamp` -> `the desk lamp`; a name with its own article, or a Chinese one, stays as it is."""
    words = name.split()
    if not words or words[0].casefold() in _OWN_DETERMINERS or is_cjk(name):
        return name
    return f"the {name}"


def possessive(subject: str) -> str:
    """`the desk lamp` -> `the desk lamp's`, `it` -> `its`, `the hall lights` -> `the hall lights'`."""
    if subject == "it":
        return "its"
    return f"{subject}'" if subject.endswith("s") else f"{subject}'s"


def words(name: str) -> str:
    """An identifier as words: `color_temperature` -> `color temperature`."""
    return " ".join(name.replace("_", " ").split())


def turned(subject: str, on: bool) -> str:
    """`turned the desk lamp on`."""
    return f"turned {subject} {'on' if on else 'off'}"


def set_to(owner: str, what: str, value: str) -> str:
    """`set the desk lamp's brightness to 40 %` (`owner` already possessive)."""
    return f"set {owner} {what} to {value}"


def listed(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return items[-1] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def sentence(clauses: Sequence[str]) -> str:
    """Clauses `listed`, capitalised, with a full stop."""
    text = listed(clauses)
    return f"{text[:1].upper()}{text[1:]}."
