"""The status-light logic without pins: which light a bus state shows, pattern timing, APA102 frames."""

from __future__ import annotations

import pytest

from pibuddy.config import ButtonHoldAction, LightEffect, LightPattern, LightPatterns
from pibuddy.drivers.gpio.button import PushToTalk
from pibuddy.drivers.gpio.outputs import apa102_frame
from pibuddy.drivers.gpio.patterns import LightState, level_at, light_for, next_change, pattern_for, rgb
from pibuddy.events import DeviceState


@pytest.mark.parametrize(("state", "muted", "light"), [
    (DeviceState.STARTING, False, LightState.OFFLINE),
    (DeviceState.CONNECTING, True, LightState.OFFLINE),
    (DeviceState.DISCONNECTED, False, LightState.OFFLINE),
    (DeviceState.IDLE, False, LightState.IDLE),
    (DeviceState.IDLE, True, LightState.MUTED),
    (DeviceState.LISTENING, True, LightState.LISTENING),
    (DeviceState.THINKING, False, LightState.THINKING),
    (DeviceState.SPEAKING, True, LightState.SPEAKING),
    (DeviceState.ACTIVATING, False, LightState.ACTIVATING),
])
def test_light_for_state(state: DeviceState, muted: bool, light: LightState) -> None:
    assert light_for(state, muted) is light


def test_every_light_state_has_a_configurable_pattern() -> None:
    patterns = LightPatterns(thinking=LightPattern(effect=LightEffect.SOLID, color="#123456"))
    assert pattern_for(patterns, LightState.THINKING).color == "#123456"
    assert {pattern_for(patterns, light).effect for light in LightState} >= {LightEffect.OFF, LightEffect.BLINK}


def test_blink_timing() -> None:
    blink = LightPattern(effect=LightEffect.BLINK, on_seconds=0.2, off_seconds=0.6)
    assert [level_at(blink, t) for t in (0.0, 0.19, 0.21, 0.79, 0.81, 1.05)] == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert next_change(blink, 0.05, 0.025) == pytest.approx(0.15)
    assert next_change(blink, 0.5, 0.025) == pytest.approx(0.3)


def test_pulse_and_steady_patterns() -> None:
    pulse = LightPattern(effect=LightEffect.PULSE, period_seconds=2.0)
    assert [round(level_at(pulse, t), 3) for t in (0.0, 0.5, 1.0, 1.5, 2.0)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    assert next_change(pulse, 0.3, 0.025) == 0.025
    assert level_at(LightPattern(effect=LightEffect.SOLID), 9.0) == 1.0
    assert level_at(LightPattern(effect=LightEffect.OFF), 9.0) == 0.0
    assert next_change(LightPattern(effect=LightEffect.SOLID), 9.0, 0.025) is None


def test_rgb_parsing() -> None:
    assert rgb("#ff8000") == (1.0, 128 / 255, 0.0)


def test_apa102_frame_layout() -> None:
    frame = apa102_frame([(1.0, 0.0, 0.0), (0.0, 64 / 255, 1.0)], brightness=0.5)
    assert frame.hex() == "00000000" + "f00000ff" + "f0ff4000" + "ffffffff"
    assert len(apa102_frame([(0.0, 0.0, 0.0)] * 100, brightness=1.0)) == 4 + 400 + 7  # end frame: n/2 clocks


@pytest.mark.parametrize(("hold_action", "long_press"), [
    (ButtonHoldAction.TOGGLE_MUTE, ["listen_start", "abort", "toggle_mute"]),
    (ButtonHoldAction.ABORT, ["listen_start", "abort"]),
    (ButtonHoldAction.NONE, ["listen_start", "listen_stop"]),
])
def test_push_to_talk_decisions(hold_action: ButtonHoldAction, long_press: list[str]) -> None:
    logic = PushToTalk(hold_action)
    assert [*logic.pressed(), *logic.released()] == ["listen_start", "listen_stop"]
    assert [*logic.pressed(), *logic.held(), *logic.released()] == long_press
    assert [*logic.pressed(), *logic.released()] == ["listen_start", "listen_stop"]  # the hold did not stick
