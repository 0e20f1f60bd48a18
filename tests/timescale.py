"""How much slower than a native machine the tests run, for the waits that only guard against a hang.

`PIBUDDY_TEST_TIME_SCALE` (default 1.0) multiplies those waits: scripts/arm64-check.sh sets it for qemu-user
emulation, which runs Python about ten times slower. The product's own claims (such as a clean stop within 5 s)
are never scaled: a slow core must meet them too.
"""

from __future__ import annotations

import os


def _time_scale() -> float:
    text = os.environ.get("PIBUDDY_TEST_TIME_SCALE", "1")
    try:
        scale = float(text)
    except ValueError:
        scale = 0.0
    if not scale >= 1.0:  # also refuses nan
        raise ValueError(f"PIBUDDY_TEST_TIME_SCALE={text!r}: give a number >= 1 (how many times slower)")
    return scale


TIME_SCALE = _time_scale()


def scaled(seconds: float) -> float:
    """`seconds` on a native machine, stretched by PIBUDDY_TEST_TIME_SCALE."""
    return seconds * TIME_SCALE
