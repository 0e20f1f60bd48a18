"""A timer set by voice through the local brain of a real `pibuddy run` rings on the PulseAudio virtual
speaker, shows in `pibuddy status`, and the wake word stops it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio.conftest import _PULSE_CLIENT_ENV, MonitorRecorder, play_into_microphone
from tests.audio.test_control_run import cli, pibuddy_run
from tests.audio.test_e2e_xiaozhi import _tone_seconds
from tests.peers.pulseaudio import PulseServer
from tests.peers.speech import silence, speech

pytestmark = pytest.mark.peer
_ANNOUNCE_NOTE_HZ = 660.0  # the announcement chime's first note; the wake chime has none at this pitch


async def _status(config: Path, env: dict[str, str]) -> dict[str, Any]:
    result = await cli(config, env, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def _status_until(config: Path, env: dict[str, str], wanted: Callable[[dict[str, Any]], bool],
                        seconds: float) -> dict[str, Any]:
    """`pibuddy status --json` until `wanted` holds (each call is a fresh CLI process, about a second)."""
    deadline = asyncio.get_running_loop().time() + seconds
    status = await _status(config, env)
    while not wanted(status):
        assert asyncio.get_running_loop().time() < deadline, f"not reached within {seconds} s: {status}"
        status = await _status(config, env)
    return status


async def test_a_timer_set_by_voice_rings_on_the_speaker_until_the_wake_word(
        pulse: PulseServer, tmp_path: Path, pibuddy_env: dict[str, str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("upstream: {enabled: false}\ngateway: {enabled: false}\nbrain: {mode: local, language: en}\n"
                      f"control: {{socket: '{tmp_path / 'control.sock'}'}}\n")
    env = pibuddy_env | {key: os.environ[key] for key in (*_PULSE_CLIENT_ENV, "PULSE_SOURCE", "PULSE_SINK")}
    log: list[str] = []
    async with pibuddy_run(config, env, log):
        # The local brain's recogniser loaded (seconds on a loaded machine) before the wake word is said.
        await _status_until(config, env, lambda s: not any(
            "recogniser loading" in service.get("detail", "") for service in s["services"]), 60)
        async with MonitorRecorder(pulse, rate=16000) as speaker:
            await play_into_microphone(pulse, np.concatenate([
                silence(1.0), speech("okay nahboo", pad=0.3), speech("set a timer for five seconds", pad=0.1),
                silence(1.5)]))
            status = await _status_until(config, env, lambda s: bool(s["timers"]), 20)
            assert [(t["name"], t["seconds"]) for t in status["timers"]] == [("", 5)]
            await _status_until(config, env, lambda s: s["timers"][0]["ringing"], 20)
            await asyncio.sleep(3.0)  # the chime and "The timer is done."
            rang = _tone_seconds(speaker.samples(), 16000, _ANNOUNCE_NOTE_HZ)
        await play_into_microphone(pulse, np.concatenate([speech("okay nahboo", pad=0.3), silence(1.0)]))
        await _status_until(config, env, lambda s: not s["timers"], 15)
        history = await cli(config, env, "history", "--json")
    assert rang >= 0.09, "the announcement chime of the ringing timer reached the virtual speaker"
    turns = [json.loads(line) for line in history.stdout.splitlines()]
    timer_turns = [t for t in turns if t["kind"] == "turn" and t["actions"]]
    assert len(timer_turns) == 1, turns
    timer_turn = timer_turns[0]
    assert timer_turn["brain"] == "local"
    assert timer_turn["heard"].startswith("set a timer for five second")  # the grammar allows second[s]
    assert [(a["source"], a["name"], a["arguments"]) for a in timer_turn["actions"]] == [
        ("local-brain", "timer_start", {"seconds": 5, "name": ""})]
    output = "".join(log)
    assert "ringing: the timer" in output
    assert "stopped ringing: the timer" in output
