"""The latest readings of every BLE sensor heard, with when and how loudly it was heard.

Pure bookkeeping: time is passed in (`now`, monotonic seconds), so tests run without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pibuddy.drivers.ble.adverts import Advert, Problem, Protocol, Reading


@dataclass(slots=True)
class SensorRecord:
    """What is known about one sensor address. `values_at` moves only when fresh values arrive;
    `heard_at` moves on every advertisement, even one that could not be decrypted."""

    address: str
    protocol: Protocol
    title: str
    readings: dict[str, Reading] = field(default_factory=dict)
    heard_at: float = 0.0
    values_at: float | None = None
    rssi: int | None = None
    problem: Problem | None = None


class SensorCache:
    """address -> `SensorRecord`, fed with parsed advertisements."""

    def __init__(self) -> None:
        self._records: dict[str, SensorRecord] = {}

    def record(self, advert: Advert, rssi: int | None, now: float) -> SensorRecord:
        found = self._records.get(advert.address)
        if found is None:
            found = self._records[advert.address] = SensorRecord(advert.address, advert.protocol, advert.title)
        found.title, found.heard_at, found.rssi = advert.title, now, rssi
        if advert.problem is not None:
            found.problem = advert.problem
        elif advert.readings:
            found.problem = None
            found.readings.update((reading.key, reading) for reading in advert.readings)
            found.values_at = now
        return found

    def get(self, address: str) -> SensorRecord | None:
        return self._records.get(address.upper())

    def records(self) -> list[SensorRecord]:
        return list(self._records.values())


def reading_text(reading: Reading) -> str:
    """ "temperature 21.5 °C", "battery 90 %", "door open"."""
    label = reading.name.lower() if reading.name else reading.key.replace("_", " ")
    value = reading.value
    if isinstance(value, bool):
        return f"{label} {'on' if value else 'off'}"
    if isinstance(value, float):
        value = round(value, 2)
    return f"{label} {value} {reading.unit}".rstrip()


def age_text(seconds: float) -> str:
    """A spoken duration: "12 seconds", "1 minute", "10 minutes", "2 hours"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    count = max(int(seconds), 0)
    return f"{count} second{'s' if count != 1 else ''}"
