"""Sentences -> intents, with hassil and the brain's sentence templates (`sentences.load_intents`), matched
against PiBuddy's own names rather than Home Assistant's exposed entities.

The `name` slot list holds every name and alias of every `Thing` (value: its `ref`, context: its domain, so
templates that require a domain only match fitting devices); `area` and `floor` hold rooms and floors with
their aliases (value: the canonical name). Slot lists are rebuilt only when the vocabulary's fingerprint
changes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import home_assistant_intents
from hassil import RecognizeResult, SlotList, TextSlotList, recognize_best
from hassil.models import MatchEntity, UnmatchedTextEntity

from pibuddy.brain.errors import BrainUnavailable
from pibuddy.brain.sentences import load_intents
from pibuddy.brain.vocabulary import Place, Vocabulary

_LOGGER = logging.getLogger(__name__)

# A name nobody knows is reported as an unknown device only for commands (turn on the toaster), never for
# questions ("tell me a joke" reads as "tell me [the] {name}") or long phrases.
_ACTION_INTENTS: Final = frozenset({"HassTurnOn", "HassTurnOff", "HassLightSet", "HassSetPosition"})
_MAX_UNKNOWN_NAME_WORDS: Final = 4


def package_language(language: str) -> str:
    """The home-assistant-intents code for a config language: en-US -> en, zh / zh-Hans -> zh-CN."""
    known = {code.casefold(): code for code in home_assistant_intents.get_languages()}
    wanted = language.replace("_", "-").casefold()
    aliases = {"zh": "zh-cn", "zh-hans": "zh-cn", "zh-hant": "zh-tw", "cmn": "zh-cn"}
    for candidate in (wanted, aliases.get(wanted, ""), wanted.split("-")[0]):
        if candidate in known:
            return known[candidate]
    raise BrainUnavailable(f"home-assistant-intents has no sentences for language {language!r}")


@dataclass(frozen=True, slots=True)
class Slot:
    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class IntentMatch:
    """A recognised command: the intent, its slots (value and the words said) and its response key."""

    intent: str
    slots: Mapping[str, Slot] = field(default_factory=dict)
    response: str = "default"

    def value(self, slot: str) -> Any:
        found = self.slots.get(slot)
        return found.value if found is not None else None

    def said(self, slot: str) -> str | None:
        found = self.slots.get(slot)
        return found.text.strip() or str(found.value) if found is not None else None


@dataclass(frozen=True, slots=True)
class UnknownName:
    """A command about a device PiBuddy does not know ("turn on the toaster")."""

    intent: str
    name: str
    area: str | None = None


class IntentMatcher:
    """Matches text in one language. Loading the templates takes a few ms; the first match compiles them."""

    def __init__(self, language: str) -> None:
        self.language = package_language(language)
        self._intents, self.responses = load_intents(self.language)
        self._lists: tuple[str, dict[str, SlotList]] | None = None

    def match(self, text: str, vocabulary: Vocabulary) -> IntentMatch | UnknownName | None:
        """The best intent for `text`, an `UnknownName` for a command about an unknown device, else None."""
        if (found := self.match_known(text, vocabulary)) is not None:
            return found
        lists = self._slot_lists(vocabulary)
        loose = recognize_best(text, self._intents, slot_lists=lists, language=self.language,
                               best_slot_name="name", allow_unmatched_entities=True)
        if loose is None or loose.intent.name not in _ACTION_INTENTS or not loose.text_chunks_matched:
            return None  # no verb matched: the whole sentence was read as a name (CJK has no word breaks)
        name = loose.unmatched_entities.get("name")  # a text slot: never an unmatched range
        if not isinstance(name, UnmatchedTextEntity) or not (1 <= len(name.text.split()) <= _MAX_UNKNOWN_NAME_WORDS):
            return None
        area = loose.entities.get("area") or loose.unmatched_entities.get("area")
        area_text = area.text.strip() if isinstance(area, MatchEntity | UnmatchedTextEntity) else None
        return UnknownName(loose.intent.name, name.text.strip(), area_text)

    def match_known(self, text: str, vocabulary: Vocabulary) -> IntentMatch | None:
        """The best intent for `text` naming only devices and places `vocabulary` has; None otherwise (without the
        second, loose pass that finds an unknown name: half the cost where nothing matches)."""
        found = recognize_best(text, self._intents, slot_lists=self._slot_lists(vocabulary), language=self.language,
                               best_slot_name="name")
        return _to_match(found) if found is not None else None

    def _slot_lists(self, vocabulary: Vocabulary) -> dict[str, SlotList]:
        fingerprint = vocabulary.fingerprint
        if self._lists is None or self._lists[0] != fingerprint:
            names = [(name, thing.ref, {"domain": thing.domain}) for thing in vocabulary.things
                     for name in thing.names]
            self._lists = (fingerprint, {
                "name": TextSlotList.from_tuples(names, allow_template=False),
                "area": _places(vocabulary.areas),
                "floor": _places(vocabulary.floors),
            })
        return self._lists[1]


def _places(places: tuple[Place, ...]) -> TextSlotList:
    return TextSlotList.from_tuples([(name, place.name) for place in places for name in place.names],
                                    allow_template=False)


def _to_match(result: RecognizeResult) -> IntentMatch:
    slots = {name: Slot(entity.value, entity.text) for name, entity in result.entities.items()}
    return IntentMatch(result.intent.name, slots, result.response or "default")
