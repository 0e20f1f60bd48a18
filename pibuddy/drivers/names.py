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
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from pibuddy.errors import DriverError, NotFound

T = TypeVar("T")

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

    def __init__(self, phrase: str, candidates: Iterable[Named[T]]) -> None:
        self.candidates = tuple(candidates)
        shown = ", ".join(c.describe() for c in self.candidates[:_MAX_LISTED])
        more = len(self.candidates) - _MAX_LISTED
        super().__init__(f'"{phrase}" could mean {shown}{f" and {more} more" if more > 0 else ""}. Which one?')


def normalize(text: str) -> str:
    """Case-folded words without punctuation and filler words; 的 dropped. `The Lights!` -> `lights`."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("的", " ")
    words = re.sub(r"[^\w\s']", " ", text.replace("-", " ").replace("_", " ")).split()
    return " ".join(w for w in words if w not in _FILLER_WORDS)


def kind_of(text: str) -> str | None:
    """The kind a word names: `lights` -> light, `窗帘` -> curtain; None if it is no kind."""
    text = normalize(text)
    return _KINDS.get(text) or _KINDS.get(" ".join(_singular(w) for w in text.split()))


def resolve(phrase: str, pool: Sequence[Named[T]], *, what: str = "devices") -> list[T]:
    """The things `phrase` names (several only for room/kind/"all" phrases); `what` names the pool in errors."""
    text = normalize(phrase)
    if not text:
        raise NotFound("Say which one you mean.")
    wants_all, text = _strip_all(text)
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


def _strip_all(text: str) -> tuple[bool, str]:
    stripped = " ".join(w for w in text.split() if w not in _ALL_WORDS)
    for word in _ALL_WORDS:
        if _is_cjk(word):
            stripped = stripped.replace(word, "")
    stripped = stripped.strip()
    return stripped != text, stripped


def _find_room(pool: Sequence[Named[T]], text: str) -> tuple[str, str] | None:
    """The longest room name mentioned in `text`, and what is left around it."""
    best: tuple[str, str] | None = None
    for room in {n.room for n in pool if n.room}:
        key = normalize(room)
        rest = _remove(text, key)
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
            raise NotFound(f"There is no {rest} in {room}{_suggestion([n.describe() for n in in_room])}")
        return [n.item for n in of_kind]
    room_key = normalize(room)
    named = [n for n in in_room if rest in {_remove(normalize(name), room_key) or normalize(name) for name in n.names}]
    if named:
        return _one(phrase, named)
    return _by_words(phrase, rest, in_room, what=what)


def _remove(text: str, key: str) -> str | None:
    """`text` without `key` (whole words for Latin script, substring for CJK); None if absent."""
    if _is_cjk(key):
        if key not in text:
            return None
        before, _, after = text.partition(key)
        return " ".join(f"{before} {_CHINESE_LINKS.sub('', after.strip())}".split())
    padded = f" {text} "
    if f" {key} " not in padded:
        return None
    return " ".join(padded.replace(f" {key} ", " ", 1).split())


def _by_words(phrase: str, text: str, pool: Sequence[Named[T]], *, what: str) -> list[T]:
    containing = [n for n in pool if any(_contains(normalize(name), text) for name in n.names)]
    if containing:
        return _one(phrase, containing)
    scored = sorted(((max(_similarity(text, normalize(name)) for name in n.names), n) for n in pool),
                    key=lambda pair: pair[0], reverse=True)
    good = [(score, n) for score, n in scored if score >= _FUZZY_ACCEPT]
    if good and (len(good) == 1 or good[0][0] - good[1][0] >= _FUZZY_MARGIN):
        return [good[0][1].item]
    if good:
        raise Ambiguous(phrase, [n for _, n in good])
    close = [n.describe() for score, n in scored[:3] if score >= _FUZZY_SUGGEST]
    raise NotFound(f'I could not find "{phrase}" among the {what}{_suggestion(close)}')


def _contains(name: str, text: str) -> bool:
    if _is_cjk(text):
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
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("ches", "shes", "sses")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _suggestion(names: list[str]) -> str:
    return f". Close matches: {', '.join(names)}." if names else "."


def _is_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)
