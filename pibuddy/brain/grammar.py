"""What the local brain can act on, as the recogniser hears it: the intent matcher's own sentence templates
(`sentences.load_intents`: home-assistant-intents plus PiBuddy's phrasings) for the intents `actions.PLANNERS`
handles, expanded over PiBuddy's device, room and floor names.

One compile gives a tree of words per template (`Sentences`), which becomes either a JSGF grammar or random
sentences for an n-gram language model (`pibuddy.brain.ngram`). A `{name}` in a template that requires certain
domains only takes the names of devices of those domains. Numbers are spelled out; words the recogniser's
dictionary lacks drop the branch that holds them (and the names containing them are reported, so the user can
add an alias in plain words). Wildcards (free text) cannot be spoken into a closed vocabulary. The matcher's
skip words ("please", "could you") may open or close any sentence.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Final

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
_RULE: Final = re.compile(r"[^a-z0-9_]")
_FRACTION: Final = re.compile(r"\d\s*/\s*\d")
_SKIP_CHANCE: Final = 0.15  # how often a sampled sentence opens or closes with a skip word ("please")
_LONGEST_WORD: Final = 8  # characters of the longest Chinese dictionary word tried when segmenting

Known = Callable[[str], bool]
"""Whether the recogniser's dictionary has a word."""


@dataclass(frozen=True, slots=True)
class Words:
    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Choice:
    items: tuple[Node, ...]
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Ref:
    rule: str


Node = Words | Choice | Seq | Ref


@dataclass(frozen=True, slots=True)
class Sentences:
    """Every speakable template as a tree of words, with the named lists they share."""

    templates: tuple[Node, ...]
    rules: dict[str, Node] = field(default_factory=dict)
    skip_words: tuple[tuple[str, ...], ...] = ()
    unspeakable: tuple[str, ...] = ()
    """Names left out because a word of theirs is not in the dictionary."""

    def jsgf(self) -> str:
        """A JSGF grammar of exactly these sentences (skip words left out: each doubles the search graph)."""
        body = " | ".join(_jsgf(t) for t in self.templates) if self.templates else "<VOID>"
        lines = ["#JSGF V1.0;", "grammar pibuddy;", f"public <command> = ( {body} );"]
        lines += [f"<{rule}> = {_jsgf(node)};" for rule, node in self.rules.items()]
        return "\n".join(lines) + "\n"

    def sample(self, count: int, seed: int = 0) -> Iterator[list[str]]:
        """`count` sentences drawn at random: a template uniformly, then each choice and list value uniformly
        (so every device and number is as likely), sometimes with a skip word before or after."""
        rng = random.Random(seed)
        for _ in range(count):
            words: list[str] = []
            if self.skip_words and rng.random() < _SKIP_CHANCE:
                words += rng.choice(self.skip_words)
            self._walk(rng.choice(self.templates), rng, words)
            if self.skip_words and rng.random() < _SKIP_CHANCE:
                words += rng.choice(self.skip_words)
            yield words

    def words(self) -> set[str]:
        """Every word a sentence may hold."""
        found: set[str] = {w for skip in self.skip_words for w in skip}
        for node in (*self.templates, *self.rules.values()):
            _collect(node, found)
        return found

    def _walk(self, node: Node, rng: random.Random, out: list[str]) -> None:
        match node:
            case Words(words=words):
                out += words
            case Seq(items=items):
                for item in items:
                    self._walk(item, rng, out)
            case Choice(items=items, optional=optional):
                if optional and rng.random() < 1 / (len(items) + 1):
                    return
                self._walk(rng.choice(items), rng, out)
            case Ref(rule=rule):
                self._walk(self.rules[rule], rng, out)


def _jsgf(node: Node) -> str:
    match node:
        case Words(words=words):
            return " ".join(words)
        case Seq(items=items):
            return " ".join(_jsgf(i) for i in items)
        case Choice(items=items, optional=optional):
            inner = " | ".join(_jsgf(i) for i in items)
            return f"[ {inner} ]" if optional else f"( {inner} )"
        case Ref(rule=rule):
            return f"<{rule}>"


def _collect(node: Node, found: set[str]) -> None:
    match node:
        case Words(words=words):
            found.update(words)
        case Seq(items=items) | Choice(items=items):
            for item in items:
                _collect(item, found)


def compile_sentences(intents: Intents, vocabulary: Vocabulary, language: str, known: Known, *,
                      intent_names: Collection[str] = tuple(PLANNERS), number_step: int = 1) -> Sentences:
    """The templates of `intent_names` in `intents` over `vocabulary`; numbers in steps of `number_step`
    (a JSGF grammar copies each number rule wherever a template uses it: 101 numbers made decoding 5x slower)."""
    compiler = _Compiler(intents, vocabulary, language, known, number_step)
    templates = tuple(t for name in sorted(intent_names) for t in compiler.intent(name))
    skip = tuple(w.words for w in (compiler.words(s) for s in intents.skip_words) if w is not None and w.words)
    return Sentences(templates, compiler.rules, skip, tuple(sorted(compiler.unspeakable)))


class _Compiler:
    """hassil expressions -> word trees; None marks a branch that cannot be spoken (dead), an empty `Words` one
    that says nothing."""

    def __init__(self, intents: Intents, vocabulary: Vocabulary, language: str, known: Known,
                 number_step: int) -> None:
        self._intents = intents
        self._vocabulary = vocabulary
        self._language = language
        self._known = known
        self._number_step = number_step
        self.rules: dict[str, Node] = {}
        self.unspeakable: set[str] = set()

    def intent(self, name: str) -> list[Node]:
        found = self._intents.intents.get(name)
        if found is None:
            return []
        bodies: list[Node] = []
        for data in found.data:
            if set(data.requires_context or {}) - {"domain"}:
                continue  # needs what a satellite knows (the area it stands in), not what was said
            for sentence in data.sentences:
                if any(n in data.wildcard_list_names for n in sentence.list_names(self._expansions(data))):
                    continue
                body = self.expression(sentence.expression, data)
                if body is not None and _speaks(body):
                    bodies.append(body)
        return list(dict.fromkeys(bodies))

    def expression(self, expression: Expression, data: IntentData) -> Node | None:
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
                parts = [self.expression(item, data) for item in _glue_suffixes(items)]
                if any(p is None for p in parts):
                    return None
                kept = tuple(p for p in parts if p is not None and _speaks(p))
                return Words(()) if not kept else kept[0] if len(kept) == 1 else Seq(kept)
            case ListReference():
                return self._list(expression, data)
            case RuleReference(rule_name=rule):
                body = self._expansions(data).get(rule)
                return self.expression(body.expression, data) if body is not None else None
        return None

    def words(self, text: str) -> Words | None:
        """A text chunk as dictionary words (none for whitespace); None if a word is unknown. Chinese has no
        spaces: a run of characters becomes the dictionary's words, longest first (打开客厅的灯: 打开 客厅 的 灯)."""
        if _FRACTION.search(text):
            return None  # "1/2" would be said "one two"; the templates also say "half"
        words: list[str] = []
        for token in spoken(text, self._language).split():
            found = [token] if self._known(token) else _segment(token, self._known)
            if found is None:
                return None
            words += found
        return Words(tuple(words))

    @staticmethod
    def alternatives(parts: list[Node | None], *, optional: bool = False) -> Node | None:
        alive = list(dict.fromkeys(p for p in parts if p is not None))
        choices = tuple(p for p in alive if _speaks(p))
        optional = optional or len(choices) < len(alive)
        if not choices:
            return Words(()) if optional else None
        if len(choices) == 1 and not optional:
            return choices[0]
        return Choice(choices, optional)

    def _expansions(self, data: IntentData) -> dict[str, Sentence]:
        return {**self._intents.expansion_rules, **data.expansion_rules}

    def _list(self, ref: ListReference, data: IntentData) -> Node | None:
        if ref.list_name == "name":
            return self._names(data)
        if ref.list_name in ("area", "floor"):
            places = self._vocabulary.areas if ref.list_name == "area" else self._vocabulary.floors
            return self._rule(ref.list_name, [self._place(p) for p in places])
        slot_list = data.slot_lists.get(ref.list_name) or self._intents.slot_lists.get(ref.list_name)
        if isinstance(slot_list, RangeSlotList):
            step = max(slot_list.step, self._number_step)
            numbers = range(-(-slot_list.start // step) * step, slot_list.stop + 1, step)
            return self._rule(f"number_{slot_list.start}_{slot_list.stop}_{step}", self._numbers(numbers))
        if isinstance(slot_list, TextSlotList):
            values = [v.text_in.expression if isinstance(v.text_in, Sentence) else v.text_in
                      for v in slot_list.values]
            return self._rule(f"list_{ref.list_name}", [
                self.expression(v, data) if isinstance(v, Expression) else self.words(str(v)) for v in values])
        return None  # wildcards and unknown lists cannot be spoken

    def _numbers(self, numbers: range) -> list[Node | None]:
        """The numbers grouped by their first word ("fifty" then an optional "one" ... "nine"), so a sampled
        sentence says each first word as often: drawn number by number, "fifty" came ten times as often as
        "fifteen", and the language model heard every spoken "fifteen" as "fifty" (2026-12-07, four voices)."""
        groups: dict[str, list[tuple[str, ...]]] = {}
        nodes: list[Node | None] = []
        for number in numbers:
            node = self.words(number_words(number, self._language))
            if isinstance(node, Words):
                groups.setdefault(node.words[0], []).append(node.words[1:])
            else:
                nodes.append(node)
        for first, tails in groups.items():
            rest = tuple(Words(tail) for tail in tails if tail)
            nodes.append(Seq((Words((first,)), Choice(rest, optional=() in tails))) if rest else Words((first,)))
        return nodes

    def _names(self, data: IntentData) -> Node | None:
        """`{name}`: the devices of the domains the template requires (all devices if it requires none)."""
        required = data.requires_context.get("domain") if data.requires_context else None
        domains = {required} if isinstance(required, str) else set(required or ())
        by_domain: dict[str, list[Node | None]] = {}
        for thing in self._vocabulary.things:
            if not domains or thing.domain in domains:
                by_domain.setdefault(thing.domain, []).extend(self._name(n) for n in thing.names)
        return self.alternatives([self._rule(f"name_{domain}", names) for domain, names in sorted(by_domain.items())])

    def _name(self, name: str) -> Node | None:
        words = self.words(name)
        if words is None:
            self.unspeakable.add(name)
        return words

    def _place(self, place: Place) -> Node | None:
        return self.alternatives([self._name(n) for n in place.names])

    def _rule(self, name: str, parts: list[Node | None]) -> Ref | None:
        """A named rule for a list (defined once, referenced everywhere); None if nothing is speakable."""
        rule = _RULE.sub("_", name.casefold())
        if rule not in self.rules:
            body = self.alternatives(parts)
            if body is None or not _speaks(body):
                return None
            self.rules[rule] = body
        return Ref(rule)


def _glue_suffixes(items: list[Expression]) -> list[Expression]:
    """"fan[s]" and "(door|gate)[s]" as whole words: a word followed by optional letters becomes a choice of
    words (the recogniser's dictionary has "fans", not "fan" + "s")."""
    glued: list[Expression] = []
    for item in items:
        previous = glued[-1] if glued else None
        suffixes = _suffixes(item)
        words = _suffixes(previous, phrases=True) if previous is not None else None  # "(door|garage door)[s]"
        if (suffixes is not None and isinstance(previous, TextChunk) and previous.original_text
                and not previous.original_text[-1].isspace()):
            head, _, word = previous.original_text.rpartition(" ")
            glued[-1:] = [TextChunk(f"{head} "), Alternative([TextChunk(word + s) for s in suffixes])]
        elif suffixes is not None and words and all(w and not w[-1].isspace() for w in words):
            glued[-1] = Alternative([TextChunk(w + s) for w in words for s in suffixes])
        else:
            glued.append(item)
    return glued


def _suffixes(item: Expression, *, phrases: bool = False) -> list[str] | None:
    """The texts of an `Alternative` of bare text: the letters it adds to the word before it ("s" or nothing),
    or with `phrases` the words and phrases it offers ("door", "garage door")."""
    if not isinstance(item, Alternative):
        return None
    texts: list[str] = []
    for choice in item.items:
        chunks = choice.items if isinstance(choice, Sequence) else [choice]
        if not all(isinstance(c, TextChunk) for c in chunks):
            return None
        text = "".join(c.original_text for c in chunks if isinstance(c, TextChunk))
        if text[:1].isspace() or (" " in text.strip() and not phrases):
            return None
        texts.append(text)
    return [*texts, ""] if item.is_optional and "" not in texts else texts


def _segment(token: str, known: Known) -> list[str] | None:
    """A run of CJK characters as known words, longest match first; None if it cannot be covered."""
    if not all(_is_cjk(ch) for ch in token):
        return None
    words, start = [], 0
    while start < len(token):
        end = next((e for e in range(min(len(token), start + _LONGEST_WORD), start, -1) if known(token[start:e])),
                   None)
        if end is None:
            return None
        words.append(token[start:end])
        start = end
    return words


def _is_cjk(character: str) -> bool:
    return "\u3400" <= character <= "\u9fff"


def _speaks(node: Node) -> bool:
    """Whether a node can say a word (an empty `Words` or an optional of nothing says none)."""
    return not (isinstance(node, Words) and not node.words)
