"""Timers as a supervised service: they end on time, ring until someone reacts, and survive a restart.

When a timer ends, PiBuddy rings the announcement chime and says which timer is done, again every
`_RING_EVERY_SECONDS`, until the wake word or a button press (or cancelling it), at most `_RING_FOR_SECONDS`.
Timers are kept in timers.json in the state dir with their wall-clock end, so a restart keeps them; one that
ended while PiBuddy was down rings at start, unless it ended more than `_STALE_SECONDS` ago.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from pibuddy.control.model import TimerStatus
from pibuddy.events import Command, CommandName, EventBus, Say, Subscription, TimersChanged, WakeDetected
from pibuddy.statedir import StateDir
from pibuddy.supervisor import Health, Service
from pibuddy.timers.book import Timer, TimerBook, title

_LOGGER = logging.getLogger(__name__)
TIMERS_FILE: Final = "timers.json"
_RING_EVERY_SECONDS: Final = 8.0
_RING_FOR_SECONDS: Final = 300.0
_STALE_SECONDS: Final = 3600.0
_TICK_SECONDS: Final = 1.0


class TimerService(Service):
    """Args:
    bus: rings go out as `Say` events; wake words and buttons come in and stop the ringing.
    state_dir: where timers.json is kept; None: in memory only.
    clock: wall-clock seconds (tests pass their own).
    """

    name = "timers"

    def __init__(self, bus: EventBus, state_dir: StateDir | None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._bus = bus
        self._state_dir = state_dir
        self._clock = clock
        self.book = TimerBook(self._load())
        self._changed = asyncio.Event()
        self._ring_started: float | None = None

    # --- what the tools and the control layer use -------------------------------------------------

    def timers(self) -> list[TimerStatus]:
        now = self._clock()
        return [t.status(now) for t in self.book.timers()]

    def start_timer(self, seconds: int, name: str = "") -> Timer:
        timer = self.book.start(seconds, name, self._clock())
        _LOGGER.info("%s set for %d s", title(timer), seconds)
        self._saved()
        return timer

    def cancel_timer(self, name: str | None = None, *, every: bool = False) -> list[Timer]:
        gone = self.book.cancel(name, every=every)
        _LOGGER.info("cancelled %s", ", ".join(title(t) for t in gone) or "no timer")
        self._saved()
        return gone

    # --- running ----------------------------------------------------------------------------------

    async def start(self) -> None:
        now = self._clock()
        stale = [t for t in self.book.timers() if t.ends_at < now - _STALE_SECONDS]
        for timer in stale:
            _LOGGER.info("%s ended while PiBuddy was off, %.0f min ago: dropped", title(timer),
                         (now - timer.ends_at) / 60)
            self.book.cancel(timer.id)
        if stale:
            self._saved()

    async def serve(self) -> None:
        with self._bus.subscribe() as events:
            listener = asyncio.create_task(self._follow_bus(events), name="timers-bus")
            try:
                while True:
                    self._ring_due()
                    self._changed.clear()
                    try:
                        async with asyncio.timeout(self._sleep_seconds()):
                            await self._changed.wait()
                    except TimeoutError:
                        pass
            finally:
                listener.cancel()

    async def stop(self) -> None:
        self._ring_started = None

    def health(self) -> Health:
        ringing = sum(1 for t in self.book.timers() if t.ringing)
        return Health(True, f"{len(self.book.timers())} timers" + (f", {ringing} ringing" if ringing else ""))

    def _sleep_seconds(self) -> float:
        if self._ring_started is not None:
            return _RING_EVERY_SECONDS
        next_end = self.book.next_end()
        return _TICK_SECONDS if next_end is None else min(max(next_end - self._clock(), 0.0), _TICK_SECONDS)

    def _ring_due(self) -> None:
        now = self._clock()
        if self.book.due(now):
            self._ring_started = now
            self._bus.publish(TimersChanged())
        if self._ring_started is None:
            return
        if now - self._ring_started > _RING_FOR_SECONDS:
            _LOGGER.info("nobody answered the ringing timers for %.0f s: they stop", _RING_FOR_SECONDS)
            self._silence()
            return
        ringing = [t for t in self.book.timers() if t.ringing]
        if not ringing:
            self._ring_started = None
            return
        names = " and ".join(title(t) for t in ringing)
        _LOGGER.info("ringing: %s", names)
        self._bus.publish(Say(f"{names[0].upper()}{names[1:]} {'is' if len(ringing) == 1 else 'are'} done.",
                              chime=True))

    async def _follow_bus(self, events: Subscription) -> None:
        async for event in events:
            match event:
                case WakeDetected() | Command(name=CommandName.LISTEN_START | CommandName.ABORT) \
                        if self._ring_started is not None:
                    self._silence()

    def _silence(self) -> None:
        gone = self.book.silence()
        self._ring_started = None
        if gone:
            _LOGGER.info("stopped ringing: %s", ", ".join(title(t) for t in gone))
        self._saved()

    def _saved(self) -> None:
        self._changed.set()
        self._bus.publish(TimersChanged())
        if self._state_dir is None:
            return
        try:
            self._state_dir.write_json(TIMERS_FILE, {"timers": self.book.to_json()})
        except OSError as exc:
            _LOGGER.warning("cannot save the timers (%s): a restart will forget them", exc)

    def _load(self) -> list[Timer]:
        if self._state_dir is None:
            return []
        try:
            saved = self._state_dir.read_json(TIMERS_FILE) or {}
        except OSError as exc:
            _LOGGER.warning("cannot read the saved timers (%s)", exc)
            return []
        timers = []
        for entry in saved.get("timers", []):
            try:
                timers.append(Timer.from_json(entry))
            except (KeyError, TypeError, ValueError):
                _LOGGER.warning("ignoring a saved timer that cannot be read: %r", entry)
        return timers

