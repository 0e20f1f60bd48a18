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
    name: str
    applies: Callable[[Config], bool]
    run: Callable[[Config], Awaitable[ProbeResult]]
