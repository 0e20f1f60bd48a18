"""What a `pibuddy check` probe is and what it returns; features implement probes against this leaf module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pibuddy.config import Config


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Probe:
    """`loads`: the modules `run` imports when it runs (slow ones, kept out of `pibuddy check`'s start when the
    probe does not apply). They are imported before any probe's deadline starts: an import blocks the event
    loop (seconds on a slow core), so inside a probe it would use up the others' time."""

    name: str
    applies: Callable[[Config], bool]
    run: Callable[[Config], Awaitable[ProbeResult]]
    loads: tuple[str, ...] = ()
