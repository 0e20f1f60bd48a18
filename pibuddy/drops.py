"""Counting dropped items on a hot path, with a log line at most once per interval."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

_DEFAULT_INTERVAL_SECONDS: Final = 10.0


@dataclass
class DropCounter:
    """`count()` once per dropped item; warns as `what` (e.g. "downlink audio packets") rate-limited."""

    what: str
    logger: logging.Logger
    interval: float = _DEFAULT_INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    total: int = 0
    _last_log: float = field(default=float("-inf"))

    def count(self, reason: str = "queue full") -> None:
        self.total += 1
        now = self.clock()
        if now - self._last_log >= self.interval:
            self._last_log = now
            self.logger.warning("dropping %s (%s); %d dropped so far", self.what, reason, self.total)
