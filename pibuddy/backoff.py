"""Capped exponential backoff with full jitter, as a pure schedule (time is passed in by the caller)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays grow `initial * factor**attempt` up to `maximum`; each is jittered into [d/2, d].

    A run that stayed healthy for `reset_after` seconds starts the schedule over, so a service that
    crashes once a day does not inherit yesterday's long delay.
    """

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0
    reset_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self, healthy_for: float = 0.0) -> float:
        """The delay before the next attempt, given how long the last attempt stayed up."""
        if healthy_for >= self.reset_after:
            self.attempt = 0
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0
