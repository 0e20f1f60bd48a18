"""What the local brain can name: devices (names, aliases, room, domain) and rooms, gathered from the drivers.

The vocabulary feeds the intent matcher's slot lists and the speech grammar. Its `fingerprint` changes
whenever a name, alias, room or domain changes (not when a state does), which is when the grammar is
rebuilt. Each `Thing` remembers which driver's tools act on it (`source`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from pibuddy.errors import DriverError

if TYPE_CHECKING:
    from pibuddy.drivers.homeassistant import HomeAssistantService
    from pibuddy.drivers.homeassistant.index import Index
    from pibuddy.supervisor import Service

_LOGGER = logging.getLogger(__name__)

HOMEASSISTANT: Final = "homeassistant"
# Domains a household command can act on or ask about; the rest (people, zones, helpers' internals) are noise.
_SPOKEN_DOMAINS: Final = frozenset({
    "light", "switch", "fan", "cover", "lock", "climate", "media_player", "scene", "script", "sensor",
    "binary_sensor", "input_boolean", "vacuum", "humidifier", "valve", "water_heater"})


@dataclass(frozen=True, slots=True)
class Thing:
    """One device as people name it. `key` is what its driver's tools take as the target (an entity id)."""

    key: str
    names: tuple[str, ...]
    domain: str
    area: str | None = None
    source: str = HOMEASSISTANT
    device_class: str | None = None

    @property
    def name(self) -> str:
        return self.names[0]


@dataclass(frozen=True, slots=True)
class Place:
    """A room (area) or a floor, with its aliases."""

    name: str
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    things: tuple[Thing, ...] = ()
    areas: tuple[Place, ...] = ()
    floors: tuple[Place, ...] = ()

    @property
    def fingerprint(self) -> str:
        """Changes exactly when something a grammar or slot list is built from changes."""
        return hashlib.sha256(repr((self.things, self.areas, self.floors)).encode()).hexdigest()[:16]

    def thing(self, key: str) -> Thing | None:
        return next((t for t in self.things if t.key == key), None)

    def named(self, spoken: str, area: str | None = None) -> list[Thing]:
        """Things with `spoken` among their names (case-insensitive), in `area` when one is given."""
        wanted = _fold(spoken)
        found = [t for t in self.things if wanted in {_fold(n) for n in t.names}]
        in_area = [t for t in found if area is not None and t.area is not None and _fold(t.area) == _fold(area)]
        return in_area or found

    def place(self, spoken: str) -> Place | None:
        """The area (or else floor) that has `spoken` as its name or an alias."""
        wanted = _fold(spoken)
        return next((p for p in (*self.areas, *self.floors) if wanted in {_fold(n) for n in p.names}), None)

    @classmethod
    def merge(cls, parts: Iterable[Vocabulary]) -> Vocabulary:
        parts = list(parts)
        return cls(tuple(t for p in parts for t in p.things),
                   tuple(dict.fromkeys(a for p in parts for a in p.areas)),
                   tuple(dict.fromkeys(f for p in parts for f in p.floors)))


def _fold(text: str) -> str:
    return " ".join(text.casefold().replace("_", " ").split())


class VocabularySource(Protocol):
    """A driver that knows names: its vocabulary now (raises `DriverError` when it cannot tell)."""

    async def vocabulary(self) -> Vocabulary: ...


def from_homeassistant(index: Index) -> Vocabulary:
    """Home Assistant's entities (names, aliases, device name), areas and floors."""
    areas = {a.area_id: a for a in index.areas}
    things = tuple(
        Thing(e.entity_id, e.names, e.domain, areas[e.area_id].name if e.area_id in areas else None,
              HOMEASSISTANT, e.attributes.get("device_class") if isinstance(e.attributes.get("device_class"), str)
              else None)
        for e in index.entities if e.domain in _SPOKEN_DOMAINS and e.names)
    return Vocabulary(things, tuple(Place(a.name, a.aliases) for a in index.areas),
                      tuple(Place(f.name, f.aliases) for f in index.floors))


class HomeAssistantVocabulary:
    """The live index of a `HomeAssistantService` as a vocabulary."""

    def __init__(self, service: HomeAssistantService) -> None:
        self._service = service

    async def vocabulary(self) -> Vocabulary:
        return from_homeassistant(await self._service.index())


def vocabulary_sources(services: Sequence[Service]) -> list[VocabularySource]:
    """The one place that knows which driver services can name their devices."""
    from pibuddy.drivers.homeassistant import HomeAssistantService  # noqa: PLC0415 (drivers import tools)

    return [HomeAssistantVocabulary(s) for s in services if isinstance(s, HomeAssistantService)]


async def gather_vocabulary(sources: Sequence[VocabularySource]) -> Vocabulary:
    """Every source's vocabulary; one that cannot answer (driver down) is logged and left out."""
    parts = []
    for source in sources:
        try:
            parts.append(await source.vocabulary())
        except DriverError as exc:
            _LOGGER.warning("the local brain cannot list the devices of %s: %s", type(source).__name__, exc.message)
    return Vocabulary.merge(parts)
