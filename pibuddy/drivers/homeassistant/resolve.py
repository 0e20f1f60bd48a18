"""Name resolution: what a person says ("living room light", "客厅的灯", "the lights in the bedroom")
-> the entities or the area it means.

Order, first hit wins:
1. an entity id (`light.kitchen`);
2. an exact name or alias of an entity (case, punctuation and filler words ignored);
3. an area (name or alias) plus a kind of device ("lights", "灯", "blinds") -> every entity of that kind in
   the area, acted on as `target: {area_id}` when there are several; or an area plus a name within it;
4. a kind alone -> the one entity of that kind, or all of them when "all"/"所有" was said;
5. the words of the phrase inside one entity's name ("lamp" -> "Floor Lamp");
6. fuzzy similarity.
Several equally good candidates raise `Ambiguous` listing them, so the LLM can ask which one; nothing
close raises `NotFound` with the closest names. The matching itself (normalizing, "all", CJK, plurals,
fuzzy thresholds) is `pibuddy.drivers.names`'s, shared with the other drivers; what is Home Assistant's own
lives here: entity ids, areas and their aliases, domains as kinds, area targets.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.drivers.homeassistant.index import Area, Entity, Index
from pibuddy.drivers.names import (
    closest,
    lookup_kind,
    match_words,
    normalize,
    rank_by_similarity,
    remove_phrase,
    shortlist,
    strip_all,
    suggestion,
)
from pibuddy.errors import DriverError, NotFound

# Kinds of device people name, in English and Chinese -> (domain, sensor device_class or None).
_KIND_WORDS: Final[dict[tuple[str, str | None], tuple[str, ...]]] = {
    ("light", None): ("light", "lamp", "lighting", "灯", "灯光", "电灯", "照明"),
    ("switch", None): ("switch", "plug", "socket", "outlet", "开关", "插座"),
    ("fan", None): ("fan", "风扇", "电扇", "电风扇"),
    ("cover", None): ("blind", "curtain", "shade", "shutter", "cover", "窗帘", "百叶窗", "卷帘"),
    ("lock", None): ("lock", "door lock", "锁", "门锁"),
    ("climate", None): ("thermostat", "heating", "heater", "air conditioner", "air conditioning", "ac", "aircon",
                        "climate", "空调", "暖气", "温控器", "恒温器"),
    ("media_player", None): ("speaker", "media player", "tv", "television", "music", "音箱", "电视", "播放器"),
    ("vacuum", None): ("vacuum", "robot vacuum", "扫地机", "扫地机器人"),
    ("sensor", "temperature"): ("temperature", "temp", "温度", "气温"),
    ("sensor", "humidity"): ("humidity", "湿度"),
    ("scene", None): ("scene", "场景"),
    ("script", None): ("script", "脚本"),
}
_KINDS: Final = {word: kind for kind, words in _KIND_WORDS.items() for word in words}


@dataclass(frozen=True, slots=True)
class Target:
    """What a phrase resolved to. With `area` set (several entities of `domain` in one area), services are
    called with `target: {area_id}` so Home Assistant expands the area itself."""

    entities: tuple[Entity, ...]
    area: Area | None = None
    domain: str | None = None

    @property
    def service_target(self) -> dict[str, Any]:
        if self.area is not None and self.domain is not None:
            return {"area_id": self.area.area_id}
        return {"entity_id": [e.entity_id for e in self.entities]}


class Ambiguous(DriverError):
    """A phrase fits several entities equally well; the message lists them so the LLM can ask."""

    code = "ambiguous"

    def __init__(self, phrase: str, candidates: Iterable[Entity], index: Index) -> None:
        self.candidates = tuple(candidates)
        shown = shortlist([describe(e, index) for e in self.candidates])
        super().__init__(f'"{phrase}" could mean several devices: {shown}. Which one?')


def describe(entity: Entity, index: Index) -> str:
    """`Floor Lamp (Living Room)` — the name a person knows, with its area when it has one."""
    area = index.area(entity.area_id)
    return f"{entity.name} ({area.name})" if area else entity.name


def resolve(index: Index, phrase: str, *, domains: Collection[str] | None = None) -> Target:
    """The entities (or area) `phrase` names, among entities of `domains` (None: any domain).

    Raises `NotFound` (with close matches) or `Ambiguous` (with the candidates).
    """
    pool = [e for e in index.entities if domains is None or e.domain in domains]
    text = normalize(phrase)
    if not text:
        raise NotFound("Say which device you mean.")
    if re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", phrase.strip()):
        return _by_entity_id(index, phrase.strip(), pool)
    wants_all, text = strip_all(text)
    exact = [e for e in pool if any(normalize(name) == text for name in e.names)]
    if exact:
        return _one_or_ambiguous(phrase, exact, index)
    area_hit = _find_area(index, text)
    if area_hit is not None:
        return _in_area(index, phrase, pool, *area_hit)
    kind = _kind(text)
    if kind is not None:
        of_kind = [e for e in pool if _is_kind(index, e, kind)]
        if len(of_kind) > 1 and wants_all:
            return Target(tuple(of_kind), domain=kind[0])
        if of_kind:
            return _one_or_ambiguous(phrase, of_kind, index)
    return _by_words(index, phrase, text, pool)


def _by_entity_id(index: Index, entity_id: str, pool: list[Entity]) -> Target:
    for entity in pool:
        if entity.entity_id == entity_id:
            return Target((entity,))
    close = difflib.get_close_matches(entity_id, [e.entity_id for e in pool], n=3, cutoff=0.6)
    raise NotFound(f"There is no {entity_id} in Home Assistant{suggestion(close)}")


def _find_area(index: Index, text: str) -> tuple[Area, str] | None:
    """The longest area name or alias mentioned in `text`, and what is left around it."""
    best: tuple[int, Area, str] | None = None
    for area in index.areas:
        for name in area.names:
            key = normalize(name)
            rest = remove_phrase(text, key)
            if key and rest is not None and (best is None or len(key) > best[0]):
                best = (len(key), area, rest)
    return (best[1], best[2]) if best else None


def _in_area(index: Index, phrase: str, pool: list[Entity], area: Area, rest: str) -> Target:
    in_area = [e for e in pool if e.area_id == area.area_id]
    if not rest:
        if not in_area:
            raise NotFound(f"There is no device in {area.name} that can do that.")
        domains = {e.domain for e in in_area}
        if len(domains) == 1:
            return _area_target(area, in_area)
        raise Ambiguous(phrase, in_area, index)
    kind = _kind(rest)
    if kind is not None:
        of_kind = [e for e in in_area if _is_kind(index, e, kind)]
        if not of_kind:
            raise NotFound(f"There is no {rest} in {area.name}{suggestion([describe(e, index) for e in in_area])}")
        return _area_target(area, of_kind)
    area_keys = [normalize(n) for n in area.names]
    named = [e for e in in_area if rest in {_without_area(normalize(n), area_keys) for n in e.names}]
    if named:
        return _one_or_ambiguous(phrase, named, index)
    return _by_words(index, phrase, rest, in_area)


def _area_target(area: Area, entities: list[Entity]) -> Target:
    if len(entities) == 1:
        return Target((entities[0],))
    domains = {e.domain for e in entities}
    return Target(tuple(entities), area=area, domain=domains.pop() if len(domains) == 1 else None)


def _without_area(name: str, area_keys: list[str]) -> str:
    """`living room light` in area `living room` -> `light` (the generic name people use inside a room)."""
    for key in area_keys:
        rest = remove_phrase(name, key)
        if rest:
            return rest
    return name


def kind_domain(text: str) -> str | None:
    """The domain a kind word names: `lights` -> light, `窗帘` -> cover; None if it is no kind."""
    kind = _kind(normalize(text))
    return kind[0] if kind else None


def _kind(text: str) -> tuple[str, str | None] | None:
    return lookup_kind(_KINDS, text)


def _is_kind(index: Index, entity: Entity, kind: tuple[str, str | None]) -> bool:
    """Of that domain (and sensor class), or named after the kind within its room: a helper called
    "Kitchen Fan" is a fan to the people who named it, whatever its domain."""
    domain, device_class = kind
    if entity.domain == domain and (device_class is None or entity.attributes.get("device_class") == device_class):
        return True
    area = index.area(entity.area_id)
    area_keys = [normalize(n) for n in area.names] if area else []
    return any(_kind(_without_area(normalize(name), area_keys)) == kind for name in entity.names)


def _by_words(index: Index, phrase: str, text: str, pool: list[Entity]) -> Target:
    """Steps 5 and 6: the phrase's words inside a name, then fuzzy similarity."""
    found, ranked = match_words(text, pool, _names)
    if found:
        return _one_or_ambiguous(phrase, found, index)
    def described(entity: Entity) -> str:
        return describe(entity, index)

    close = (closest(ranked, described)  # else suggest from everything, not just the pool
             or closest(rank_by_similarity(text, index.entities, _names), described))
    raise NotFound(f'I could not find "{phrase}" in Home Assistant{suggestion(close)}')


def _names(entity: Entity) -> tuple[str, ...]:
    return entity.names


def _one_or_ambiguous(phrase: str, found: list[Entity], index: Index) -> Target:
    if len(found) == 1:
        return Target((found[0],))
    raise Ambiguous(phrase, found, index)
