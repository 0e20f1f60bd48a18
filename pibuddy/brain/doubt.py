"""Commands whose target is in doubt get a question back, never an action.

- A device named with a room it is not in ("turn on the bedroom light in the kitchen"): the name and the room
  disagree, so either could be the mistake (a misheard room, a misheard name). Home Assistant's own answer is
  an error too; acting on the device anyway is what the user did not say.
- One device of a kind in a room (or a home) that has several ("turn on the living room lamp" with a ceiling
  light and a floor lamp there, "open the blind"): "light" and "lights" are not the same target, so a singular
  never switches every light.

What the recogniser may have misheard (a kind word one sound away, a number) gives the readings to re-score
against the audio (`twin`, `other_numbers`, `number_twin`); the service asks when they would act differently and
the audio does not clearly prefer what was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pibuddy.brain.intents import IntentMatch
from pibuddy.brain.spoken import number_words
from pibuddy.brain.vocabulary import Vocabulary
from pibuddy.drivers.names import KIND_WORDS, normalize

# Home Assistant domain -> PiBuddy's kind (names.KIND_WORDS) whose words name one device of it.
_DOMAIN_KINDS: Final = {"light": "light", "fan": "fan", "cover": "curtain", "switch": "switch", "lock": "lock",
                        "media_player": "speaker", "vacuum": "vacuum", "climate": "heater"}
_ALL_WORDS: Final = frozenset({"all", "every", "everything", "each", "所有", "全部"})


@dataclass(frozen=True, slots=True)
class Doubt:
    """Why the brain asks instead of acting: an error template key of the intents package with its values, or
    PiBuddy's own phrase key."""

    key: str
    values: dict[str, str]
    package_error: bool = False


def doubt(match: IntentMatch, text: str, vocabulary: Vocabulary) -> Doubt | None:
    """The question to ask instead of acting on `match` (heard as `text`), or None when the target is clear."""
    area = match.value("area")
    if match.value("name") is not None:
        return _misplaced(match, area, vocabulary) if area is not None else None
    return _one_of_several(match, text, area, vocabulary)


def _misplaced(match: IntentMatch, area: str, vocabulary: Vocabulary) -> Doubt | None:
    thing = vocabulary.thing(match.value("name"))
    said = match.said("name") or ""
    in_room = set(vocabulary.in_area(area))
    if any(t in in_room for t in vocabulary.named(said, area)) or (thing is not None and thing in in_room):
        return None
    return Doubt("no_entity_in_area", {"entity": said, "area": match.said("area") or area}, package_error=True)


def _one_of_several(match: IntentMatch, text: str, area: str | None, vocabulary: Vocabulary) -> Doubt | None:
    domain = match.value("domain")
    kind = _DOMAIN_KINDS.get(domain or "")
    if kind is None or match.value("device_class") is not None:
        return None
    words = normalize(text).split()
    singular = set(KIND_WORDS[kind])
    if _ALL_WORDS & set(words) or not any(w in singular for w in words):
        return None  # a plural ("lights") or "all" means every one of them
    if any(f"{w}s" in words or f"{w}es" in words for w in singular):
        return None
    fitting = [t for t in (vocabulary.in_area(area) if area else vocabulary.things) if t.domain == domain]
    if len(fitting) <= 1:
        return None
    said = next(w for w in words if w in singular)
    if area is None:
        return Doubt("which", {"what": said})
    return Doubt("which_in_area", {"what": said, "area": match.said("area") or area})


@dataclass(frozen=True, slots=True)
class Twin:
    """A reading of the same audio one sound away: a kind word in the other number ("light" <-> "lights")."""

    text: str
    one: str
    every: str


def twin(text: str) -> Twin | None:
    """`text` with its first English kind word flipped between singular and plural, if it has one."""
    words = text.split()
    for i, word in enumerate(words):
        if word in _SINGULAR:
            plural = _plural(word)
            return Twin(" ".join([*words[:i], plural, *words[i + 1:]]), word, plural)
        if word in _PLURAL:
            one = _PLURAL[word]
            return Twin(" ".join([*words[:i], one, *words[i + 1:]]), one, word)
    return None


def kind_twins(word: str) -> tuple[str, ...]:
    """The other number of a kind word ("light" -> "lights"), a reading `twin` may re-score; () for others."""
    if word in _SINGULAR:
        return (_plural(word),)
    if word in _PLURAL:
        return (_PLURAL[word],)
    return ()


def other_numbers(text: str) -> list[str]:
    """`text` with its first English number (0-100, in words as a recogniser writes them) said as each other
    number: the readings a misheard number could have been ("sixty five" <-> "sixty nine"); [] without one."""
    found = _first_number(text.split())
    if found is None:
        return []
    before, value, after = found
    return [" ".join(filter(None, (before, said, after))) for said, n in _NUMBERS.items() if n != value]


def number_twin(text: str) -> str | None:
    """`text` with its first number said as its teen/tens twin ("fifteen" <-> "fifty", "ninety eight" ->
    "nineteen": the "-teen" heard as "-ty" and a unit), the confusion the recogniser makes most and the
    best-scoring other reading need not be ("fifty" heard for "fifteen" was re-scored against "fifty eight");
    None when the number has no twin."""
    found = _first_number(text.split())
    if found is None or (other := _teen_tens(found[1])) is None:
        return None
    before, _, after = found
    return " ".join(filter(None, (before, number_words(other), after)))


def _first_number(words: list[str]) -> tuple[str, int, str] | None:
    """The words before the first number, its value and the words after it."""
    for i in range(len(words)):
        for size in (3, 2, 1):  # the longest number at i: "one hundred", "sixty five" before "sixty"
            value = _NUMBERS.get(" ".join(words[i:i + size]))
            if value is not None:
                return " ".join(words[:i]), value, " ".join(words[i + size:])
    return None


def _plural(word: str) -> str:
    return f"{word}es" if word.endswith(("ch", "sh", "s", "x")) else f"{word}s"


_SINGULAR: Final = frozenset(w for words in KIND_WORDS.values() for w in words if w.isascii() and " " not in w)
_PLURAL: Final = {_plural(w): w for w in _SINGULAR}
_NUMBERS: Final = {number_words(n): n for n in range(101)}


def _teen_tens(value: int) -> int | None:
    if 13 <= value <= 19:
        return (value - 10) * 10
    if 30 <= value <= 99:
        return 10 + value // 10
    return None
