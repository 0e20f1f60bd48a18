"""An in-memory index of Home Assistant's areas, floors, devices and entities, as a person names them.

Fed raw rows from the registries (`config/*_registry/list`) and `get_states`, and kept fresh by
`state_changed` events; a `*_registry_updated` event tells the owner which registry to reload. Pure data:
no I/O, so name resolution can be tested over a recorded snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Entities nobody controls or asks about by voice.
_SKIPPED_DOMAINS: Final = frozenset(
    {"conversation", "event", "persistent_notification", "stt", "tts", "update", "wake_word", "zone"})

# `*_registry_updated` event -> the registry that must be reloaded.
REGISTRY_EVENTS: Final = {
    "area_registry_updated": "area",
    "floor_registry_updated": "floor",
    "device_registry_updated": "device",
    "entity_registry_updated": "entity",
}


@dataclass(frozen=True, slots=True)
class Area:
    area_id: str
    name: str
    aliases: tuple[str, ...] = ()
    floor_id: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class Floor:
    floor_id: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity as PiBuddy offers it: its spoken name, aliases, effective area and current state."""

    entity_id: str
    name: str
    state: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    area_id: str | None = None
    device_name: str | None = None

    @property
    def domain(self) -> str:
        return self.entity_id.partition(".")[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a person may use for it, the spoken name first (no duplicates)."""
        found = [self.name, *self.aliases]
        if self.device_name:
            found.append(self.device_name)
        return tuple(dict.fromkeys(n for n in found if n))

    @property
    def supported_features(self) -> int:
        value = self.attributes.get("supported_features", 0)
        return value if isinstance(value, int) else 0


class Index:
    """What Home Assistant holds, joined: entity registry entry + device + state -> `Entity`."""

    def __init__(self) -> None:
        self._areas: dict[str, Area] = {}
        self._floors: dict[str, Floor] = {}
        self._devices: dict[str, Mapping[str, Any]] = {}
        self._entries: dict[str, Mapping[str, Any]] = {}
        self._states: dict[str, Mapping[str, Any]] = {}
        self._entities: dict[str, Entity] | None = None

    # --- feeding ---

    def set_areas(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._areas = {r["area_id"]: Area(r["area_id"], r.get("name") or r["area_id"], _strings(r.get("aliases")),
                                          r.get("floor_id")) for r in rows if _has_str(r, "area_id")}
        self._entities = None

    def set_floors(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._floors = {r["floor_id"]: Floor(r["floor_id"], r.get("name") or r["floor_id"],
                                             _strings(r.get("aliases"))) for r in rows if _has_str(r, "floor_id")}

    def set_devices(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._devices = {r["id"]: r for r in rows if _has_str(r, "id")}
        self._entities = None

    def set_entries(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._entries = {r["entity_id"]: r for r in rows if _has_str(r, "entity_id")}
        self._entities = None

    def set_states(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Replace the states, except where an event already delivered a newer one (events that arrive
        while `get_states` is answered may be applied before or after it)."""
        fresh = {r["entity_id"]: r for r in rows if _has_str(r, "entity_id")}
        for entity_id, row in fresh.items():
            known = self._states.get(entity_id)
            if known is not None and _newer(known, row):
                fresh[entity_id] = known
        self._states = fresh
        self._entities = None

    def apply_event(self, event: Mapping[str, Any]) -> str | None:
        """Apply a `state_changed` event; for a `*_registry_updated` event return which registry
        ("area", "floor", "device", "entity") the owner must reload. Other events: None."""
        kind = event.get("event_type")
        if kind == "state_changed":
            data = event.get("data")
            if isinstance(data, Mapping) and isinstance(data.get("entity_id"), str):
                new_state = data.get("new_state")
                known = self._states.get(data["entity_id"])
                if isinstance(new_state, Mapping):
                    if known is None or not _newer(known, new_state):
                        self._states[data["entity_id"]] = new_state
                else:
                    self._states.pop(data["entity_id"], None)
                self._entities = None
            return None
        return REGISTRY_EVENTS.get(kind) if isinstance(kind, str) else None

    # --- reading ---

    @property
    def areas(self) -> list[Area]:
        return list(self._areas.values())

    def area(self, area_id: str | None) -> Area | None:
        return self._areas.get(area_id) if area_id else None

    @property
    def floors(self) -> list[Floor]:
        return list(self._floors.values())

    @property
    def entities(self) -> list[Entity]:
        return list(self._joined().values())

    def entity(self, entity_id: str) -> Entity | None:
        return self._joined().get(entity_id)

    def snapshot(self) -> dict[str, list[Any]]:
        """The raw rows, JSON-ready: what `from_snapshot` takes back (recorded test fixtures)."""
        return {
            "areas": [{"area_id": a.area_id, "name": a.name, "aliases": list(a.aliases), "floor_id": a.floor_id}
                      for a in self._areas.values()],
            "floors": [{"floor_id": f.floor_id, "name": f.name, "aliases": list(f.aliases)}
                       for f in self._floors.values()],
            "devices": list(self._devices.values()),
            "entities": list(self._entries.values()),
            "states": list(self._states.values()),
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Iterable[Mapping[str, Any]]]) -> Index:
        index = cls()
        index.set_areas(data.get("areas", ()))
        index.set_floors(data.get("floors", ()))
        index.set_devices(data.get("devices", ()))
        index.set_entries(data.get("entities", ()))
        index.set_states(data.get("states", ()))
        return index

    def _joined(self) -> dict[str, Entity]:
        if self._entities is None:
            joined = (self._join(entity_id, state) for entity_id, state in self._states.items())
            self._entities = {e.entity_id: e for e in joined if e is not None}
        return self._entities

    def _join(self, entity_id: str, state: Mapping[str, Any]) -> Entity | None:
        if entity_id.partition(".")[0] in _SKIPPED_DOMAINS:
            return None
        entry = self._entries.get(entity_id, {})
        if entry.get("disabled_by") or entry.get("hidden_by") or entry.get("entity_category"):
            return None
        attributes = state.get("attributes")
        attributes = attributes if isinstance(attributes, Mapping) else {}
        device = self._devices.get(entry.get("device_id") or "", {})
        name = (entry.get("name") or attributes.get("friendly_name") or entry.get("original_name")
                or entity_id.partition(".")[2].replace("_", " "))
        return Entity(
            entity_id=entity_id,
            name=str(name),
            state=str(state.get("state", "unknown")),
            attributes=attributes,
            aliases=_strings(entry.get("aliases")),
            area_id=entry.get("area_id") or device.get("area_id") or None,
            device_name=device.get("name_by_user") or device.get("name") or None,
        )


def _newer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether state `a` was updated after state `b` (HA writes `last_updated` as UTC ISO 8601, so the
    strings order like the times; a missing stamp never counts as newer)."""
    stamp_a, stamp_b = a.get("last_updated"), b.get("last_updated")
    return isinstance(stamp_a, str) and isinstance(stamp_b, str) and stamp_a > stamp_b


def _has_str(row: Mapping[str, Any], key: str) -> bool:
    return isinstance(row, Mapping) and isinstance(row.get(key), str)


def _strings(value: Any) -> tuple[str, ...]:
    """Aliases arrive as a list (or, from some HA versions, a set serialised as a list); keep strings only."""
    if not isinstance(value, list | tuple | set | frozenset):
        return ()
    return tuple(sorted(v for v in value if isinstance(v, str) and v))
