"""The household commands against a real `pibuddy run`: `pibuddy status/volume/mute/announce/history` over the
control socket, with the sound on PulseAudio virtual devices and a conversation with the xiaozhi test server
on 127.0.0.1; the history survives a restart; with no PiBuddy running each command says so in one line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.audio.conftest import _PULSE_CLIENT_ENV, MonitorRecorder, play_into_microphone
from tests.audio.test_e2e_xiaozhi import _tone_seconds
from tests.audio.test_run_e2e import _line_containing
from tests.peers.pulseaudio import PulseServer
from tests.peers.speech import speech
from tests.peers.xiaozhi_server import XiaozhiTestServer

pytestmark = pytest.mark.peer
_STEP = 10.0
_STAGES = ["wake", "hello", "listen_start", "heard", "first_audio", "end"]


def _cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pibuddy", *args, "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


async def cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(_cli, config, env, *args)


@asynccontextmanager
async def pibuddy_run(config: Path, env: dict[str, str], log: list[str]) -> AsyncIterator[asyncio.StreamReader]:
    """`pibuddy run` until the block ends, then SIGTERM; its stderr lines are collected in `log`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pibuddy", "run", "--config", str(config), env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    try:
        try:
            await asyncio.wait_for(_line_containing(process.stderr, "control socket at", log), 60)
        except TimeoutError:
            raise AssertionError("".join(log)) from None
        yield process.stderr
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), 10)
        log.append(rest.decode(errors="replace"))
        assert process.returncode == 0, "".join(log)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "Traceback" not in "".join(log)


def _status(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_cli_commands_steer_a_running_pibuddy_and_the_history_survives_a_restart(
        pulse: PulseServer, tmp_path: Path, pibuddy_env: dict[str, str]) -> None:
    config = tmp_path / "config.yaml"
    env = pibuddy_env | {key: os.environ[key] for key in (*_PULSE_CLIENT_ENV, "PULSE_SOURCE", "PULSE_SINK")}
    async with XiaozhiTestServer(tts_frames=20, utterance_frames=20, wake_words=("Okay Nabu",),
                                 stt_text="turn on the light", reply_text="The light is on.",
                                 greeting_text=None, idle_goodbye_seconds=1.5) as server:
        config.write_text(f"device: {{device_id: '02:11:22:33:44:67'}}\n"
                          f"upstream: {{ota_url: '{server.ota_url}', transport: websocket}}\n"
                          "gateway: {enabled: false}\nbrain: {mode: upstream}\n"
                          f"control: {{socket: '{tmp_path / 'control.sock'}'}}\n")
        log: list[str] = []
        async with pibuddy_run(config, env, log) as stderr:
            await asyncio.wait_for(_line_containing(stderr, "microphone open", log), 30)
            follow = asyncio.create_task(_line_containing(stderr, "no such line", log))  # keeps the pipe drained

            volume = await cli(config, env, "volume", "35")
            assert volume.returncode == 0, volume.stderr
            assert volume.stdout.strip() == "volume 35%"
            assert "35%" in await pulse.pactl("get-sink-volume", "@DEFAULT_SINK@"), "the real mixer moved"
            assert (await cli(config, env, "volume")).stdout.strip() == "volume 35%"
            called = await cli(config, env, "tools", "call", "self.get_device_status")
            assert called.returncode == 0, called.stderr
            assert json.loads(called.stdout)["audio_speaker"]["volume"] == 35, "the service's own tool answered"

            assert (await cli(config, env, "mute", "on")).stdout.strip() == "microphone muted"
            status = _status(await cli(config, env, "status", "--json"))
            assert (status["state"], status["muted"], status["volume"]) == ("muted", True, 35)
            assert (await cli(config, env, "mute", "off")).stdout.strip() == "microphone on"
            assert _status(await cli(config, env, "status", "--json"))["muted"] is False

            async with MonitorRecorder(pulse, rate=16000) as recorder:
                announced = await cli(config, env, "announce", "Dinner", "is", "ready")
                assert announced.returncode == 0, announced.stderr
                assert announced.stdout.strip() == "announced on pi"
                await asyncio.sleep(3.0)  # chime and espeak-ng's sentence
            assert _tone_seconds(recorder.samples(), 16000, 660.0) >= 0.09, "the announcement chime played"
            refused = await cli(config, env, "announce", "hi", "--device", "all")
            assert refused.returncode == 1
            assert refused.stderr.strip() == "pibuddy: the gateway is not running, so there are no devices to " \
                                             "announce on"

            await asyncio.sleep(0.5)
            await play_into_microphone(pulse, speech("okay nahboo", pad=1.0))
            for milestone in (server.hello_received, server.listen_start):
                await asyncio.wait_for(milestone.wait(), _STEP)
            await play_into_microphone(pulse, speech("turn on the light", pad=0.3))
            await asyncio.wait_for(server.tts_done.wait(), _STEP)
            called = await server.call_tool("self.audio_speaker.set_volume", {"volume": 45})
            assert called.get("isError") is False, called

            async def turn_recorded() -> dict[str, Any]:
                while True:
                    entries = [json.loads(line) for line in (await cli(config, env, "history", "--json")).stdout
                               .splitlines()]
                    turns = [e for e in entries if e["kind"] == "turn" and e["heard"] == "turn on the light"]
                    tools = [a for t in entries if t["kind"] == "turn" for a in t["actions"]]
                    if turns and tools:
                        return {"turn": turns[0], "tool": tools[0], "entries": entries}
                    await asyncio.sleep(0.5)

            found = await asyncio.wait_for(turn_recorded(), 20)
            status = _status(await cli(config, env, "status", "--json"))
            follow.cancel()
        turn = found["turn"]
        assert (turn["brain"], turn["microphone"], turn["reply"]) == ("xiaozhi", "pi", "The light is on.")
        latency = turn["latency_ms"]
        assert list(latency) == _STAGES, "every stage was reached, in order"
        assert list(latency.values()) == sorted(latency.values())
        assert 0 < latency["hello"] < 5000
        assert found["tool"]["source"] == "xiaozhi"
        assert (found["tool"]["name"], found["tool"]["arguments"]) == ("self.audio_speaker.set_volume", {"volume": 45})
        actions = [(e["source"], e["name"]) for e in found["entries"] if e["kind"] == "action"]
        assert actions == [("cli", "set_volume"), ("cli", "self.get_device_status"), ("cli", "mute"),
                           ("cli", "unmute"), ("cli", "announce"), ("cli", "announce")]
        assert (status["last_heard"], status["last_reply"], status["volume"]) == ("turn on the light",
                                                                                 "The light is on.", 45)
        assert status["upstream"]["connected"] is True
        assert {s["name"] for s in status["services"]} >= {"audio", "upstream", "control"}
        output = "".join(log)
        assert "tool self.audio_speaker.set_volume called by xiaozhi" in output, "one INFO line per tool call"

        log = []
        async with pibuddy_run(config, env, log):
            history = await cli(config, env, "history", "-n", "100")  # conversation continuations follow the first turn
        assert history.returncode == 0, history.stderr
        assert "heard 'turn on the light'" in history.stdout, "the history survived the restart"
        assert "hello" in history.stdout
        assert "first audio" in history.stdout

    stopped = await cli(config, env, "status")
    assert stopped.returncode == 3
    assert stopped.stdout == ""
    assert stopped.stderr.count("\n") == 1
    assert stopped.stderr.startswith("pibuddy: no PiBuddy is running")
