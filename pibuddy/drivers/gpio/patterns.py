"""What the status lights show: a light state from the bus, and a pattern's brightness over time.

Pure functions (time is an argument), so the animation is tested in microseconds and every output (single
LED, RGB LED, LED ring) shows the same pattern the same way.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Final

from pibuddy.config import LightEffect, LightPattern, LightPatterns
from pibuddy.events import DeviceState

Rgb = tuple[float, float, float]


class LightState(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    MUTED = "muted"
    ERROR = "error"
    OFFLINE = "offline"
    ACTIVATING = "activating"


_FROM_DEVICE: Final = {
    DeviceState.STARTING: LightState.OFFLINE,
    DeviceState.CONNECTING: LightState.OFFLINE,
    DeviceState.DISCONNECTED: LightState.OFFLINE,
    DeviceState.IDLE: LightState.IDLE,
    DeviceState.LISTENING: LightState.LISTENING,
    DeviceState.THINKING: LightState.THINKING,
    DeviceState.SPEAKING: LightState.SPEAKING,
    DeviceState.ACTIVATING: LightState.ACTIVATING,
}


def light_for(state: DeviceState, muted: bool) -> LightState:
    """Muted shows while the buddy idles; any activity (or trouble) shows over it."""
    light = _FROM_DEVICE[state]
    return LightState.MUTED if muted and light is LightState.IDLE else light


def pattern_for(patterns: LightPatterns, light: LightState) -> LightPattern:
    pattern: LightPattern = getattr(patterns, light.value)
    return pattern


def level_at(pattern: LightPattern, elapsed: float) -> float:
    """Brightness 0-1 of `pattern`, `elapsed` seconds after it started. Blink starts on; pulse starts dark,
    peaks at half the period (a raised cosine, which looks smoother than a triangle)."""
    match pattern.effect:
        case LightEffect.OFF:
            return 0.0
        case LightEffect.SOLID:
            return 1.0
        case LightEffect.BLINK:
            cycle = pattern.on_seconds + pattern.off_seconds
            return 1.0 if elapsed % cycle < pattern.on_seconds else 0.0
        case LightEffect.PULSE:
            phase = (elapsed % pattern.period_seconds) / pattern.period_seconds
            return (1 - math.cos(2 * math.pi * phase)) / 2


def next_change(pattern: LightPattern, elapsed: float, frame_seconds: float) -> float | None:
    """Seconds until `level_at` next changes: the next blink edge, one frame for pulse, None when steady."""
    match pattern.effect:
        case LightEffect.BLINK:
            cycle = pattern.on_seconds + pattern.off_seconds
            into = elapsed % cycle
            return (pattern.on_seconds - into) if into < pattern.on_seconds else (cycle - into)
        case LightEffect.PULSE:
            return frame_seconds
    return None


def rgb(color: str) -> Rgb:
    """'#ff8000' -> (1.0, 0.502, 0.0)."""
    value = int(color.removeprefix("#"), 16)
    return ((value >> 16 & 0xFF) / 255, (value >> 8 & 0xFF) / 255, (value & 0xFF) / 255)
