"""A JSGF grammar of exactly what the local brain can act on, for a grammar-constrained recogniser.

Built from the home-assistant-intents "speech-to-phrase" templates (the lean subset the package ships for
constrained recognisers; the full templates otherwise) of the intents `actions.PLANNERS` handles, with
PiBuddy's own device, room and floor names as the `{name}`, `{area}` and `{floor}` lists. A `{name}` in a
template that requires certain domains only takes the names of devices of those domains. Numbers are spelled
out; words the recogniser's dictionary lacks drop the branch that holds them (and the names containing them
are reported, so the user can add an alias in plain words). Wildcards (free text) cannot be in a grammar.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

import home_assistant_intents
from hassil import (
    Alternative,
    Expression,
    IntentData,
    Intents,
    ListReference,
    Permutation,
    RangeSlotList,
    RuleReference,
    Sentence,
    Sequence,
    TextChunk,
    TextSlotList,
)

from pibuddy.brain.actions import PLANNERS
from pibuddy.brain.spoken import number_words, spoken
from pibuddy.brain.vocabulary import Place, Vocabulary

_MAX_PERMUTED: Final = 4  # a;b;c;d -> 24 orders; longer permutations are not in the templates
# Spoken percentages and degrees in steps of 5 ("forty", "forty five"): each number rule is copied into the
# decoder's search graph wherever a template uses it, so 101 numbers made decoding 5x slower.
_NUMBER_STEP: Final = 5
_RULE: Final = re.compile(r"[^a-z0-9_]")

Known = Callable[[str], bool]
"""Whether the recogniser's dictionary has a word."""


@dataclass(frozen=True, slots=True)
class Grammar:
    jsgf: str
    sentences: int
    """How many templates made it into the grammar."""
    unspeakable: tuple[str, ...]
    """Names left out because a word of theirs is not in the dictionary."""


def build_grammar(vocabulary: Vocabulary, language: str, known: Known, *,
                  intent_names: Collection[str] = tuple(PLANNERS)) -> Grammar:
    """The grammar for `vocabulary` in `language` (a home-assistant-intents code)."""
    data = (home_assistant_intents.get_speech_to_phrase_intents(language)
            or home_assistant_intents.get_intents(language))
    if data is None:
        raise ValueError(f"no sentence templates for {language}")
    compiler = _Compiler(Intents.from_dict(data), vocabulary, language, known)
    alternatives = [body for name in sorted(intent_names) for body in compiler.intent(name)]
    body = " | ".join(alternatives) if alternatives else "<VOID>"
    lines = ["#JSGF V1.0;", "grammar pibuddy;", f"public <command> = ( {body} );"]
    lines += [f"<{rule}> = {definition};" for rule, definition in compiler.rules.items()]
    return Grammar("\n".join(lines) + "\n", len(alternatives), tuple(sorted(compiler.unspeakable)))


class _Compiler:
    """hassil expressions -> JSGF expansions; None marks a branch that cannot be spoken (dead)."""

    def __init__(self, intents: Intents, vocabulary: Vocabulary, language: str, known: Known) -> None:
        self._intents = intents
        self._vocabulary = vocabulary
        self._language = language
        self._known = known
        self.rules: dict[str, str] = {}
        self.unspeakable: set[str] = set()

    def intent(self, name: str) -> list[str]:
        found = self._intents.intents.get(name)
        if found is None:
            return []
        bodies = []
        for data in found.data:
            if set(data.requires_context or {}) - {"domain"}:
                continue  # needs what a satellite knows (the area it stands in), not what was said
            for sentence in data.sentences:
                if any(n in data.wildcard_list_names for n in sentence.list_names(self._expansions(data))):
                    continue
                body = self.expression(sentence.expression, data)
                if body:
                    bodies.append(body)
        return bodies

    def expression(self, expression: Expression, data: IntentData) -> str | None:
        match expression:
            case TextChunk():
                return self.words(expression.original_text)
            case Permutation(items=items) if len(items) <= _MAX_PERMUTED:
                return self.alternatives([self.expression(Sequence(list(order)), data)
                                          for order in itertools.permutations(items)])
            case Permutation():
                return None
            case Alternative(items=items, is_optional=optional):
                return self.alternatives([self.expression(item, data) for item in items], optional=optional)
            case Sequence(items=items):
                parts = [self.expression(item, data) for item in items]
                return None if any(p is None for p in parts) else " ".join(p for p in parts if p)
            case ListReference():
                return self._list(expression, data)
            case RuleReference(rule_name=rule):
                body = self._expansions(data).get(rule)
                return self.expression(body.expression, data) if body is not None else None
        return None

    def words(self, text: str) -> str | None:
        """A text chunk as dictionary words ("" for whitespace); None if a word is unknown."""
        words = spoken(text, self._language).split()
        return " ".join(words) if all(self._known(w) for w in words) else None

    @staticmethod
    def alternatives(parts: list[str | None], *, optional: bool = False) -> str | None:
        alive = list(dict.fromkeys(p for p in parts if p is not None))
        optional = optional or "" in alive
        choices = [p for p in alive if p]
        if not choices:
            return "" if optional else None
        inner = " | ".join(choices)
        return f"[ {inner} ]" if optional else f"( {inner} )"

    def _expansions(self, data: IntentData) -> dict[str, Sentence]:
        return {**self._intents.expansion_rules, **data.expansion_rules}

    def _list(self, ref: ListReference, data: IntentData) -> str | None:
        if ref.list_name == "name":
            return self._names(data)
        if ref.list_name in ("area", "floor"):
            places = self._vocabulary.areas if ref.list_name == "area" else self._vocabulary.floors
            return self._rule(ref.list_name, [self._place(p) for p in places])
        slot_list = data.slot_lists.get(ref.list_name) or self._intents.slot_lists.get(ref.list_name)
        if isinstance(slot_list, RangeSlotList):
            step = max(slot_list.step, _NUMBER_STEP)
            numbers = range(-(-slot_list.start // step) * step, slot_list.stop + 1, step)
            return self._rule(f"number_{slot_list.start}_{slot_list.stop}_{slot_list.step}",
                              [self.words(number_words(n, self._language)) for n in numbers])
        if isinstance(slot_list, TextSlotList):
            values = [v.text_in.expression if isinstance(v.text_in, Sentence) else v.text_in
                      for v in slot_list.values]
            return self._rule(f"list_{ref.list_name}", [self.expression(v, data) for v in values])
        return None  # wildcards and unknown lists cannot be spoken

    def _names(self, data: IntentData) -> str | None:
        """`{name}`: the devices of the domains the template requires (all devices if it requires none)."""
        required = data.requires_context.get("domain") if data.requires_context else None
        domains = {required} if isinstance(required, str) else set(required or ())
        by_domain: dict[str, list[str | None]] = {}
        for thing in self._vocabulary.things:
            if not domains or thing.domain in domains:
                by_domain.setdefault(thing.domain, []).extend(self._name(n) for n in thing.names)
        rules = [self._rule(f"name_{domain}", names) for domain, names in sorted(by_domain.items())]
        return self.alternatives(rules)

    def _name(self, name: str) -> str | None:
        words = self.words(name)
        if words is None:
            self.unspeakable.add(name)
        return words

    def _place(self, place: Place) -> str | None:
        return self.alternatives([self._name(n) for n in place.names])

    def _rule(self, name: str, parts: list[str | None]) -> str | None:
        """A named JSGF rule for a list (defined once, referenced everywhere); None if nothing is speakable."""
        rule = _RULE.sub("_", name.casefold())
        if rule not in self.rules:
            body = self.alternatives(parts)
            if not body:
                return None
            self.rules[rule] = body
        return f"<{rule}>"
