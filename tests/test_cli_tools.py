"""`pibuddy tools list|call` as real processes, with a real PulseAudio server behind the volume tool."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.peers.pulseaudio import PulseServer, pulseaudio_server

_CONFIG = """
audio: {enabled: false}
upstream: {enabled: false}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(_CONFIG)
    return path


@pytest.fixture
async def pulse() -> AsyncIterator[PulseServer]:
    async with pulseaudio_server() as server:
        yield server


def _pibuddy(python: str, env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-m", "pibuddy", "tools", *args, "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=30, check=False)


def test_list_shows_names_descriptions_and_arguments(
    python: str, pibuddy_env: dict[str, str], config: Path
) -> None:
    done = _pibuddy(python, pibuddy_env, config, "list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESCRIPTION", "ARGUMENTS"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == ["self.get_device_status", "self.audio_speaker.set_volume"]
    assert rows["self.audio_speaker.set_volume"].endswith("volume: integer 0..100")
    assert "Sets the speaker volume" in rows["self.audio_speaker.set_volume"]
    assert rows["self.get_device_status"].endswith("-")
    everything = _pibuddy(python, pibuddy_env, config, "list", "--all")
    assert "self.get_system_info" in everything.stdout


def test_list_is_empty_when_builtins_are_off(python: str, pibuddy_env: dict[str, str], config: Path) -> None:
    done = _pibuddy(python, pibuddy_env | {"PIBUDDY_TOOLS_BUILTIN": "false"}, config, "list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == []


@pytest.mark.peer
async def test_call_sets_the_real_volume(
    python: str, pibuddy_env: dict[str, str], config: Path, pulse: PulseServer
) -> None:
    env = pibuddy_env | {"PULSE_SERVER": pulse.server}
    done = await asyncio.to_thread(
        _pibuddy, python, env, config, "call", "self.audio_speaker.set_volume", '{"volume": 37}')
    assert (done.returncode, done.stdout) == (0, "true\n"), done.stderr
    assert "37%" in await pulse.pactl("get-sink-volume", pulse.sink)
    status = await asyncio.to_thread(_pibuddy, python, env, config, "call", "self.get_device_status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["audio_speaker"] == {"volume": 37}


@pytest.mark.parametrize(("args", "message"), [
    (["call", "self.audio_speaker.set_volume", "{volume: 5}"], "the arguments are not valid JSON"),
    (["call", "self.audio_speaker.set_volume", "[5]"], "the arguments must be a JSON object"),
    (["call", "self.audio_speaker.set_volume", '{"volume": 101}'], "Value exceeds maximum allowed: 100"),
    (["call", "self.audio_speaker.set_volume"], "Missing valid argument: volume"),
    (["call", "self.nope"], "Unknown tool: self.nope"),
])
def test_call_failures_exit_1_with_a_clear_message(
    python: str, pibuddy_env: dict[str, str], config: Path, args: list[str], message: str
) -> None:
    done = _pibuddy(python, pibuddy_env, config, *args)
    assert done.returncode == 1
    assert f"pibuddy: {message}" in done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr


def test_call_without_a_name_is_a_usage_error(python: str, pibuddy_env: dict[str, str], config: Path) -> None:
    done = _pibuddy(python, pibuddy_env, config, "call")
    assert done.returncode == 2
    assert "tools call needs a tool name" in done.stderr
