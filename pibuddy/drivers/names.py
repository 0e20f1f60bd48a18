"""Spoken names -> things, for any driver: "living room light", "客厅的灯", "the desk lamp", "all fans".

A driver wraps each thing in `Named(item, names, room, kind)` and calls `resolve(phrase, pool)`; things
that carry `name`, `aliases` and `area` attributes can use `find_named(phrase, things)` directly. Order,
first hit wins:
1. an exact name or alias (case, punctuation and filler words ignored);
2. a room (longest match) plus a kind ("lights", "灯") -> every thing of that kind in the room; a room plus
   a name within it ("study lamp" for "lamp" in the study); a room alone -> everything in it;
3. a kind alone -> the one thing of that kind, or all of them when "all"/"所有" was said;
4. every word of the phrase inside one name ("lamp" -> "Floor Lamp"; CJK as a substring);
5. fuzzy similarity, with a margin over the runner-up.
Equally good candidates raise `Ambiguous` listing them, so the LLM can ask; nothing close raises
`NotFound` with the closest names. Kinds are MIoT device types (`light`, `fan`, `air-conditioner` ...),
which map one-to-one onto most Home Assistant domains.

A driver with its own index and targets (Home Assistant) builds its resolver from the public helpers:
`normalize`, `lookup_kind`, `strip_all`, `remove_phrase`, `match_words`, `rank_by_similarity`, `closest`,
`suggestion` and `shortlist`.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

from pibuddy.errors import DriverError, NotFound

T = TypeVar("T")
X = TypeVar("X")
K = TypeVar("K")

_FILLER_WORDS: Final = frozenset({"the", "a", "an", "my", "our", "in", "on", "of", "at", "please", "room's"})
_ALL_WORDS: Final = frozenset({"all", "every", "each", "所有", "全部"})
_CHINESE_LINKS: Final = re.compile(r"^(里面|里边|里|内|中)?的?")  # 卧室[里][的]灯
_FUZZY_ACCEPT: Final = 0.8
_FUZZY_MARGIN: Final = 0.1
_FUZZY_SUGGEST: Final = 0.45
_MAX_LISTED: Final = 8

KIND_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "light": ("light", "lamp", "lighting", "bulb", "灯", "灯光", "电灯", "台灯", "吸顶灯", "照明"),
    "switch": ("switch", "wall switch", "开关", "墙壁开关"),
    "outlet": ("plug", "socket", "outlet", "smart plug", "插座", "插头"),
    "fan": ("fan", "风扇", "电扇", "电风扇"),
    "curtain": ("curtain", "blind", "shade", "shutter", "窗帘", "百叶窗", "卷帘"),
    "air-conditioner": ("air conditioner", "air conditioning", "ac", "aircon", "空调"),
    "air-purifier": ("air purifier", "purifier", "空气净化器", "净化器"),
    "humidifier": ("humidifier", "加湿器"),
    "heater": ("heater", "heating", "取暖器", "暖气", "电暖器"),
    "vacuum": ("vacuum", "robot vacuum", "vacuum cleaner", "扫地机", "扫地机器人"),
    "speaker": ("speaker", "smart speaker", "音箱", "音响"),
    "television": ("tv", "television", "电视", "电视机"),
    "lock": ("lock", "door lock", "锁", "门锁"),
    "scene": ("scene", "场景"),
}
_KINDS: Final = {word: kind for kind, words in KIND_WORDS.items() for word in words}


@dataclass(frozen=True, slots=True)
class Named(Generic[T]):
    """A thing with every name a person may use for it (spoken name first), its room and its kind."""

    item: T
    names: tuple[str, ...]
    room: str | None = None
    kind: str | None = None

    def describe(self) -> str:
        return f"{self.names[0]} ({self.room})" if self.room else self.names[0]


class Ambiguous(DriverError):
    """A phrase fits several things equally well; the message lists them so the LLM can ask."""

    code = "ambiguous"

    def __init__(self, phrase: str, candidates: Iterable[Named[Any]]) -> None:
        self.candidates = tuple(candidates)
        super().__init__(f'"{phrase}" could mean {shortlist([c.describe() for c in self.candidates])}. Which one?')


def normalize(text: str) -> str:
    """Case-folded words without punctuation and filler words; 的 dropped. `The Lights!` -> `lights`."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("的", " ")
    words = re.sub(r"[^\w\s']", " ", text.replace("-", " ").replace("_", " ")).split()
    return " ".join(w for w in words if w not in _FILLER_WORDS)


def kind_of(text: str) -> str | None:
    """The kind a word names: `lights` -> light, `窗帘` -> curtain; None if it is no kind."""
    return lookup_kind(_KINDS, normalize(text))


def lookup_kind(table: Mapping[str, K], text: str) -> K | None:
    """`table`'s entry for normalized `text`, or for its singular (`ceiling lights` -> `ceiling light`)."""
    return table.get(text) or table.get(" ".join(_singular(w) for w in text.split()))


def resolve(phrase: str, pool: Sequence[Named[T]], *, what: str = "devices") -> list[T]:
    """The things `phrase` names (several only for room/kind/"all" phrases); `what` names the pool in errors."""
    text = normalize(phrase)
    if not text:
        raise NotFound("Say which one you mean.")
    wants_all, text = strip_all(text)
    exact = [n for n in pool if any(normalize(name) == text for name in n.names)]
    if exact:
        return _one(phrase, exact)
    room_hit = _find_room(pool, text)
    if room_hit is not None:
        return _in_room(phrase, pool, *room_hit, what=what)
    kind = kind_of(text)
    if kind is not None:
        of_kind = [n for n in pool if n.kind == kind]
        if of_kind:
            return [n.item for n in of_kind] if wants_all else _one(phrase, of_kind)
    return _by_words(phrase, text, pool, what=what)


class Nameable(Protocol):
    """Anything with a spoken name, aliases and an area (a config entry, a sensor ...)."""

    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> Sequence[str]: ...

    @property
    def area(self) -> str | None: ...


N = TypeVar("N", bound=Nameable)


def find_named(phrase: str, things: Iterable[N]) -> list[N]:
    """`resolve` over things with name/aliases/area: the matches, several when ambiguous, [] when none."""
    pool = [Named(t, (t.name, *t.aliases), t.area) for t in things]
    try:
        return resolve(phrase, pool)
    except Ambiguous as exc:
        return [c.item for c in exc.candidates]
    except NotFound:
        return []


def strip_all(text: str) -> tuple[bool, str]:
    """(whether "all"/"所有" was said, the normalized `text` without it)."""
    stripped = " ".join(w for w in text.split() if w not in _ALL_WORDS)
    for word in _ALL_WORDS:
        if is_cjk(word):
            stripped = stripped.replace(word, "")
    stripped = stripped.strip()
    return stripped != text, stripped


def _find_room(pool: Sequence[Named[T]], text: str) -> tuple[str, str] | None:
    """The longest room name mentioned in `text`, and what is left around it."""
    best: tuple[str, str] | None = None
    for room in {n.room for n in pool if n.room}:
        key = normalize(room)
        rest = remove_phrase(text, key)
        if key and rest is not None and (best is None or len(key) > len(normalize(best[0]))):
            best = (room, rest)
    return best


def _in_room(phrase: str, pool: Sequence[Named[T]], room: str, rest: str, *, what: str) -> list[T]:
    in_room = [n for n in pool if n.room == room]
    if not rest:
        return [n.item for n in in_room]
    kind = kind_of(rest)
    if kind is not None:
        of_kind = [n for n in in_room if n.kind == kind]
        if not of_kind:
            raise NotFound(f"There is no {rest} in {room}{suggestion([n.describe() for n in in_room])}")
        return [n.item for n in of_kind]
    room_key = normalize(room)
    named = [n for n in in_room
             if rest in {remove_phrase(normalize(name), room_key) or normalize(name) for name in n.names}]
    if named:
        return _one(phrase, named)
    return _by_words(phrase, rest, in_room, what=what)


def remove_phrase(text: str, key: str) -> str | None:
    """`text` without `key` (whole words for Latin script, substring for CJK); None if absent."""
    if is_cjk(key):
        if key not in text:
            return None
        before, _, after = text.partition(key)
        return " ".join(f"{before} {_CHINESE_LINKS.sub('', after.strip())}".split())
    padded = f" {text} "
    if f" {key} " not in padded:
        return None
    return " ".join(padded.replace(f" {key} ", " ", 1).split())


def _by_words(phrase: str, text: str, pool: Sequence[Named[T]], *, what: str) -> list[T]:
    found, ranked = match_words(text, pool, lambda n: n.names)
    if found:
        return _one(phrase, found)
    raise NotFound(f'I could not find "{phrase}" among the {what}{suggestion(closest(ranked, Named.describe))}')


def match_words(text: str, pool: Sequence[X], names_of: Callable[[X], Iterable[str]]
                ) -> tuple[list[X], list[tuple[float, X]]]:
    """Steps 4 and 5 over any pool, for normalized `text`: (found, ranked).

    `found` holds the things with every word of `text` in a name; failing those, the fuzzy winner when it
    leads the runner-up by the margin, or every thing close enough when none does (the caller calls that
    ambiguous); else it is empty. `ranked` is the pool ranked by similarity (empty when words matched),
    for `closest`.
    """
    containing = [x for x in pool if any(_contains(normalize(name), text) for name in names_of(x))]
    if containing:
        return containing, []
    ranked = rank_by_similarity(text, pool, names_of)
    good = [x for score, x in ranked if score >= _FUZZY_ACCEPT]
    if len(good) > 1 and ranked[0][0] - ranked[1][0] >= _FUZZY_MARGIN:
        return good[:1], ranked
    return good, ranked


def rank_by_similarity(text: str, pool: Iterable[X], names_of: Callable[[X], Iterable[str]]
                       ) -> list[tuple[float, X]]:
    """(best similarity of any of its names to normalized `text`, thing), best first; ties keep pool order."""
    scored = ((max(_similarity(text, normalize(name)) for name in names_of(x)), x) for x in pool)
    return sorted(scored, key=lambda pair: pair[0], reverse=True)


def closest(ranked: Sequence[tuple[float, X]], describe: Callable[[X], str]) -> list[str]:
    """The descriptions of up to three ranked things close enough to suggest."""
    return [describe(x) for score, x in ranked[:3] if score >= _FUZZY_SUGGEST]


def _contains(name: str, text: str) -> bool:
    if is_cjk(text):
        return text in name
    words = {_singular(w) for w in name.split()}
    return all(_singular(w) in words for w in text.split())


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _one(phrase: str, found: Sequence[Named[T]]) -> list[T]:
    if len(found) == 1:
        return [found[0].item]
    raise Ambiguous(phrase, found)


def _singular(word: str) -> str:
    """`lights` -> `light`, `switches` -> `switch`, `batteries` -> `battery`; `glass` stays."""
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("ches", "shes", "sses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def suggestion(names: Sequence[str]) -> str:
    """The end of a not-found sentence: `. Close matches: a, b.` or just `.`."""
    return f". Close matches: {', '.join(names)}." if names else "."


def shortlist(descriptions: Sequence[str]) -> str:
    """`a, b, c` or, past the first eight, `a, ..., h and 3 more`."""
    more = len(descriptions) - _MAX_LISTED
    return ", ".join(descriptions[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def is_cjk(text: str) -> bool:
    """Whether `text` holds Chinese characters (matched as substrings, spoken without articles)."""
    return any("\u3400" <= ch <= "\u9fff" for ch in text)
