"""The running timers: pure bookkeeping, time passed in (wall-clock seconds, so a timer survives a restart).

    book = TimerBook()
    book.start(480, "pasta", now)   # a pasta timer for 8 minutes
    book.due(now)                   # timers that just ended (each reported once), to ring
    book.cancel("pasta")            # by name; None: the only one (or the next to end)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any, Final

from pibuddy.control.model import TimerStatus

MAX_SECONDS: Final = 24 * 3600
MAX_TIMERS: Final = 20


class TimerError(ValueError):
    """A timer request that cannot be done; the message is for the user."""


@dataclass(frozen=True, slots=True)
class Timer:
    id: str
    name: str
    seconds: int
    ends_at: float
    ringing: bool = False

    def status(self, now: float) -> TimerStatus:
        remaining = 0 if self.ringing else max(round(self.ends_at - now), 0)
        return TimerStatus(self.id, self.name, self.seconds, remaining, self.ends_at, self.ringing)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "seconds": self.seconds, "ends_at": self.ends_at}

    @classmethod
    def from_json(cls, data: Any) -> Timer:
        if not isinstance(data, dict):
            raise TypeError("a timer is a JSON object")
        return cls(str(data["id"]), str(data["name"]), int(data["seconds"]), float(data["ends_at"]))


def describe(seconds: int) -> str:
    """8 minutes, 1 hour and 30 minutes, 45 seconds."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in ((hours, "hour"), (minutes, "minute"),
                                                                   (secs, "second")) if n]
    return " and ".join(parts) if parts else "0 seconds"


def title(timer: Timer) -> str:
    return f"the {timer.name} timer" if timer.name else "the timer"


class TimerBook:
    def __init__(self, timers: list[Timer] | None = None) -> None:
        self._timers: dict[str, Timer] = {t.id: t for t in timers or []}
        self._ids = itertools.count(1 + max((int(t.id) for t in self._timers.values() if t.id.isdigit()),
                                            default=0))

    def start(self, seconds: int, name: str, now: float) -> Timer:
        if not 1 <= seconds <= MAX_SECONDS:
            raise TimerError(f"A timer can run from 1 second to {MAX_SECONDS // 3600} hours.")
        if len(self._timers) >= MAX_TIMERS:
            raise TimerError(f"There are already {MAX_TIMERS} timers; cancel one first.")
        timer = Timer(str(next(self._ids)), " ".join(name.split()).lower(), seconds, now + seconds)
        self._timers[timer.id] = timer
        return timer

    def cancel(self, name: str | None = None, *, every: bool = False) -> list[Timer]:
        """Remove the named timer (None: the one ringing, else the only or the next to end), or all of them."""
        gone = list(self._timers.values()) if every else [self.find(name)]
        for timer in gone:
            del self._timers[timer.id]
        return gone

    def find(self, name: str | None) -> Timer:
        timers = sorted(self._timers.values(), key=lambda t: (not t.ringing, t.ends_at))
        if not timers:
            raise TimerError("No timer is running.")
        if name is None or not name.strip():
            return timers[0]
        wanted = " ".join(name.split()).lower()
        found = [t for t in timers if wanted in (t.name, t.id)]
        if not found:
            names = ", ".join(t.name or "unnamed" for t in timers)
            raise TimerError(f"There is no {wanted} timer (running: {names}).")
        return found[0]

    def due(self, now: float) -> list[Timer]:
        """Timers that have ended and are not ringing yet; they are marked ringing."""
        ended = [t for t in self._timers.values() if not t.ringing and t.ends_at <= now]
        for timer in ended:
            self._timers[timer.id] = replace(timer, ringing=True)
        return [self._timers[t.id] for t in ended]

    def silence(self) -> list[Timer]:
        """Forget the ringing timers (the user heard them)."""
        ringing = [t for t in self._timers.values() if t.ringing]
        for timer in ringing:
            del self._timers[timer.id]
        return ringing

    def next_end(self) -> float | None:
        waiting = [t.ends_at for t in self._timers.values() if not t.ringing]
        return min(waiting, default=None)

    def timers(self) -> list[Timer]:
        return sorted(self._timers.values(), key=lambda t: t.ends_at)

    def to_json(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.timers()]
