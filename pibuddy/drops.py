"""Counting dropped items on a hot path, with a log line at most once per interval."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

_DEFAULT_INTERVAL_SECONDS: Final = 10.0
_REASONS_PER_LINE: Final = 4


@dataclass
class DropCounter:
    """`count(reason)` once per dropped item; warns as `what` (e.g. "downlink audio packets"), rate-limited.

    Each line names every reason counted since the previous line (the commonest first, at most four, then
    how many other reasons), so a rare reason is not hidden behind the one that opened the interval. Keep
    reasons to a fixed set of texts: each distinct text is a counter that lives as long as this one.
    """

    what: str
    logger: logging.Logger
    interval: float = _DEFAULT_INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    total: int = 0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    """Every drop so far, by reason."""
    _unlogged: collections.Counter[str] = field(default_factory=collections.Counter)
    _last_log: float = field(default=float("-inf"))

    def count(self, reason: str = "queue full") -> None:
        self.total += 1
        self.reasons[reason] += 1
        self._unlogged[reason] += 1
        now = self.clock()
        if now - self._last_log >= self.interval:
            self._last_log = now
            common = self._unlogged.most_common()
            detail = ", ".join(f"{text}: {n}" for text, n in common[:_REASONS_PER_LINE])
            if len(common) > _REASONS_PER_LINE:
                detail += f", {len(common) - _REASONS_PER_LINE} other reasons: " \
                          f"{sum(n for _, n in common[_REASONS_PER_LINE:])}"
            self._unlogged.clear()
            self.logger.warning("dropping %s (%s); %d dropped so far", self.what, detail, self.total)
