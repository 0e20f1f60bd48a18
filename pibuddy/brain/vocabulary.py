"""What the local brain can name: devices (names, aliases, room, domain) and rooms, gathered from the drivers.

The vocabulary feeds the intent matcher's slot lists and the speech grammar. Its `fingerprint` changes
whenever a name, alias, room or domain changes (not when a state does), which is when the grammar is
rebuilt. Each `Thing` remembers which driver's tools act on it (`source`). Drivers that have no domains of
their own (MIoT, BLE, GPIO) get Home Assistant's, so the intent templates that require one match them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from pibuddy.drivers.names import kind_of, normalize
from pibuddy.errors import DriverError

if TYPE_CHECKING:
    from pibuddy.config import BleConfig, RelayConfig
    from pibuddy.drivers.homeassistant import HomeAssistantService
    from pibuddy.drivers.homeassistant.index import Index
    from pibuddy.drivers.miot import MiotDriver
    from pibuddy.supervisor import Service

_LOGGER = logging.getLogger(__name__)

# Thing.source: which driver's tools act on a thing.
HOMEASSISTANT: Final = "homeassistant"
MIOT: Final = "miot"
BLE_SENSOR: Final = "ble_sensor"
BLE_DEVICE: Final = "ble_device"
GPIO: Final = "gpio"
# Domains a household command can act on or ask about; the rest (people, zones, helpers' internals) are noise.
_SPOKEN_DOMAINS: Final = frozenset({
    "light", "switch", "fan", "cover", "lock", "climate", "media_player", "scene", "script", "sensor",
    "binary_sensor", "input_boolean", "vacuum", "humidifier", "valve", "water_heater"})
# A kind of device (`pibuddy.drivers.names.KIND_WORDS`, MIoT spec types) -> the Home Assistant domain whose
# templates fit it. Anything else that can be switched is a switch.
_KIND_DOMAINS: Final = {"light": "light", "fan": "fan", "air-purifier": "fan", "curtain": "cover",
                        "air-conditioner": "climate", "heater": "climate", "lock": "lock", "vacuum": "vacuum",
                        "speaker": "media_player", "television": "media_player"}
_SWITCHED: Final = "switch"


@dataclass(frozen=True, slots=True)
class Thing:
    """One device as people name it. `key` is what its driver's tools take as the target (an entity id)."""

    key: str
    names: tuple[str, ...]
    domain: str
    area: str | None = None
    source: str = HOMEASSISTANT
    device_class: str | None = None
    brightness_range: tuple[int, int] | None = None
    """The device's own brightness scale when its tool does not take percent (a BLE action's range)."""

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def ref(self) -> str:
        """Unique across drivers (two drivers may both have a "fan"): the intent slot value."""
        return f"{self.source}:{self.key}"


@dataclass(frozen=True, slots=True)
class Place:
    """A room (area) or a floor, with its aliases."""

    name: str
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A source that could not list its devices just now, and why (said to the user instead of "I can't")."""

    source: str
    """What the user knows it as: "Home Assistant", "the Mi devices" ..."""
    error: DriverError


@dataclass(frozen=True, slots=True)
class Vocabulary:
    things: tuple[Thing, ...] = ()
    areas: tuple[Place, ...] = ()
    floors: tuple[Place, ...] = ()
    unavailable: tuple[Unavailable, ...] = ()
    """Sources left out because they could not answer (not part of the fingerprint: no names come from them)."""

    @property
    def fingerprint(self) -> str:
        """Changes exactly when something a grammar or slot list is built from changes."""
        return hashlib.sha256(repr((self.things, self.areas, self.floors)).encode()).hexdigest()[:16]

    def thing(self, ref: str) -> Thing | None:
        return next((t for t in self.things if t.ref == ref), None)

    def named(self, spoken: str, area: str | None = None) -> list[Thing]:
        """Things with `spoken` among their names (case-insensitive), in `area` when one is given."""
        wanted = _fold(spoken)
        found = [t for t in self.things if wanted in {_fold(n) for n in t.names}]
        in_room = self.in_area(area) if area is not None else []
        return [t for t in found if t in in_room] or found

    def place(self, spoken: str) -> Place | None:
        """The area (or else floor) that has `spoken` as its name or an alias."""
        wanted = _fold(spoken)
        return next((p for p in (*self.areas, *self.floors) if wanted in {_fold(n) for n in p.names}), None)

    def in_area(self, spoken: str) -> list[Thing]:
        """The things whose room is `spoken` or another name of that room (drivers may spell it differently)."""
        place = self.place(spoken)
        names = {_fold(n) for n in place.names} if place else {_fold(spoken)}
        return [t for t in self.things if t.area is not None and _fold(t.area) in names]

    @classmethod
    def merge(cls, parts: Iterable[Vocabulary]) -> Vocabulary:
        """All parts' things; a room several drivers name is listed once (as the first driver names it)."""
        parts = list(parts)
        return cls(tuple(t for p in parts for t in p.things), _unique(a for p in parts for a in p.areas),
                   _unique(f for p in parts for f in p.floors), tuple(u for p in parts for u in p.unavailable))


def _unique(places: Iterable[Place]) -> tuple[Place, ...]:
    """Places in order, without those an earlier one already names ("study" after 书房 aliased study)."""
    kept: list[Place] = []
    known: set[str] = set()
    for place in places:
        if _fold(place.name) not in known:
            kept.append(place)
            known.update(_fold(n) for n in place.names)
    return tuple(kept)


def _fold(text: str) -> str:
    return " ".join(text.casefold().replace("_", " ").split())


class VocabularySource(Protocol):
    """A driver that knows names: its vocabulary now (raises `DriverError` when it cannot tell)."""

    label: str
    """What the user calls the driver ("Home Assistant"), for "I can't reach Home Assistant"."""

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

    label = "Home Assistant"

    def __init__(self, service: HomeAssistantService) -> None:
        self._service = service

    async def vocabulary(self) -> Vocabulary:
        return from_homeassistant(await self._service.index())


def domain_of_kind(kind: str | None) -> str:
    """The Home Assistant domain for a kind of device: a MIoT spec type or a kind word's kind."""
    if kind is not None and kind.endswith("sensor"):
        return "sensor"
    return _KIND_DOMAINS.get(kind or "", _SWITCHED)


def _named_domain(names: Sequence[str]) -> str:
    """A configured output's domain from what its names end with: "hall lamp" -> light, "pump" -> switch."""
    for name in names:
        words = normalize(name).split()
        kind = kind_of(words[-1]) if words else None
        if kind is not None:
            return domain_of_kind(kind)
    return _SWITCHED


def _rooms(things: Iterable[Thing]) -> tuple[Place, ...]:
    return _unique(Place(t.area) for t in things if t.area)


def _vocabulary(things: Iterable[Thing]) -> Vocabulary:
    things = tuple(things)
    return Vocabulary(things, _rooms(things))


class MiotVocabulary:
    """The MIoT driver's devices (saved cloud list and config), typed by their cached spec or model."""

    label = "the Mi devices"

    def __init__(self, driver: MiotDriver) -> None:
        self._driver = driver

    async def vocabulary(self) -> Vocabulary:
        return _vocabulary(Thing(d.name, (d.name, *d.aliases), domain_of_kind(self._driver.kind(d)), d.room, MIOT)
                           for d in self._driver.devices())


class BleVocabulary:
    """The configured BLE sensors (read by `ble_read_sensor`) and GATT devices (driven by `ble_control`)."""

    label = "Bluetooth"

    def __init__(self, config: BleConfig) -> None:
        self._config = config

    async def vocabulary(self) -> Vocabulary:
        sensors = [Thing(s.name, (s.name, *s.aliases), "sensor", s.area, BLE_SENSOR) for s in self._config.sensors]
        devices = []
        for device in self._config.devices:
            names = (device.name, *device.aliases)
            brightness = next((a for n, a in device.actions.items() if normalize(n) == "brightness"), None)
            domain = "light" if brightness is not None else _named_domain(names)
            scale = (brightness.minimum, brightness.maximum) if brightness is not None else None
            devices.append(Thing(device.name, names, domain, device.area, BLE_DEVICE, brightness_range=scale))
        return _vocabulary([*sensors, *devices])


class RelayVocabulary:
    """The GPIO relays `gpio_switch` drives."""

    label = "the relays"

    def __init__(self, relays: Sequence[RelayConfig]) -> None:
        self._relays = relays

    async def vocabulary(self) -> Vocabulary:
        return _vocabulary(Thing(r.name, (r.name, *r.aliases), _named_domain((r.name, *r.aliases)), r.area, GPIO)
                           for r in self._relays)


# Service.name -> its vocabulary, from what each driver service exposes (`driver`, `relays`).
_SOURCES: Final[dict[str, Callable[[Any], VocabularySource]]] = {
    "homeassistant": HomeAssistantVocabulary,
    "miot": lambda service: MiotVocabulary(service.driver),
    "ble": lambda service: BleVocabulary(service.driver.config),
    "gpio_relays": lambda service: RelayVocabulary(service.relays.configs),
}


def vocabulary_sources(services: Sequence[Service]) -> list[VocabularySource]:
    """The one place that knows which driver services can name their devices (matched by service name, so
    that drivers' heavy imports, bleak and gpiozero, stay out of the brain)."""
    return [_SOURCES[s.name](s) for s in services if s.name in _SOURCES]


async def gather_vocabulary(sources: Sequence[VocabularySource]) -> Vocabulary:
    """Every source's vocabulary; one that cannot answer (driver down) is logged and left out."""
    parts = []
    for source in sources:
        try:
            parts.append(await source.vocabulary())
        except DriverError as exc:
            label = getattr(source, "label", type(source).__name__)
            _LOGGER.warning("the local brain cannot list the devices of %s: %s", label, exc.message)
            parts.append(Vocabulary(unavailable=(Unavailable(label, exc),)))
    return Vocabulary.merge(parts)
