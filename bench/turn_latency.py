"""Per-stage turn latency from PiBuddy's own history: real turns of a real `pibuddy run` through the xiaozhi
test server.

A `pibuddy run` process hears "okay nabu" (espeak-ng) on a private PulseAudio virtual microphone and talks to
the xiaozhi test server (tests/peers/xiaozhi_server.py) on 127.0.0.1 over WebSocket, which answers each turn
with a transcript and 20 paced TTS frames (60 ms each) once it has 20 uplink frames; the bench then closes
the connection, as a server ends a conversation, so each wake opens a fresh one. After the turns, the
history is read over the control socket (what `pibuddy history` shows) and each stage's milliseconds from
the wake word are summarised: hello (the server's hello arrived),
listen start (the microphone streams up), heard (the server's transcript), first audio (the first reply
packet reached the speaker), end (tts stop). Hello includes opening the WebSocket (a fresh session per turn).
The server's own pacing dominates heard (20 uplink frames) and end (the reply's length); hello, listen start
and first audio are PiBuddy's and the link's.

Usage: .venv/bin/python bench/turn_latency.py [--turns N] [--record]
`--record` appends the table to bench/RESULTS.md under today's date.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.peers: the servers, speech

import numpy as np
from _results import publish

from pibuddy.control.client import request
from tests.audio.conftest import play_into_microphone
from tests.peers.pulseaudio import PulseServer, pulseaudio_server
from tests.peers.speech import silence, speech
from tests.peers.xiaozhi_server import XiaozhiTestServer

_PULSE_CLIENT_ENV: Final = ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR", "HOME")
_STAGES: Final = (("hello", "hello"), ("listen_start", "listen start"), ("heard", "heard"),
                  ("first_audio", "first audio"), ("end", "end"))
_TURN_SECONDS: Final = 20.0


async def _until_logged(stream: asyncio.StreamReader, text: str) -> None:
    while text not in (await stream.readline()).decode(errors="replace"):
        pass


async def _turn_recorded(socket: Path, count: int) -> None:
    """Until the history holds `count` turns that began with the wake word."""
    deadline = asyncio.get_running_loop().time() + _TURN_SECONDS
    while len(await asyncio.to_thread(_turns, socket)) < count:
        assert asyncio.get_running_loop().time() < deadline, f"turn {count} was not recorded"
        await asyncio.sleep(0.3)


def _turns(socket: Path) -> list[dict[str, Any]]:
    entries = request([socket], "history", count=1000)["entries"]
    return [e for e in entries if e["kind"] == "turn" and "wake" in e["latency_ms"]]


async def _run(pulse: PulseServer, workdir: Path, turns: int) -> list[dict[str, Any]]:
    socket = workdir / "control.sock"
    async with XiaozhiTestServer(tts_frames=20, utterance_frames=20, wake_words=("Okay Nabu",), greeting_text=None,
                                 stt_text="turn on the light") as server:
        config = workdir / "config.yaml"
        config.write_text(f"device: {{device_id: '02:11:22:33:44:68'}}\n"
                          f"upstream: {{ota_url: '{server.ota_url}', transport: websocket}}\n"
                          f"gateway: {{enabled: false}}\nbrain: {{mode: upstream}}\ncontrol: {{socket: '{socket}'}}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIBUDDY_", "NOTIFY_SOCKET"))}
        env |= {key: pulse.env[key] for key in _PULSE_CLIENT_ENV}
        env |= {"PULSE_SOURCE": pulse.mic_source or "", "PULSE_SINK": pulse.sink,
                "PIBUDDY_DEVICE_STATE_DIR": str(workdir / "state")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pibuddy", "run", "--config", str(config), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert process.stderr is not None
        drain: asyncio.Task[None] | None = None
        try:
            await asyncio.wait_for(_until_logged(process.stderr, "waiting for the wake word"), 60)
            drain = asyncio.create_task(_until_logged(process.stderr, "\0"))  # keeps the pipe from filling
            await asyncio.sleep(2.0)  # a full pre-roll before the first wake word
            wake = np.concatenate([speech("okay nahboo", pad=0.5), silence(0.5)])
            for number in range(1, turns + 1):
                await play_into_microphone(pulse, wake)
                await _turn_recorded(socket, number)
                await server.close_connection()  # the server ends the conversation: each wake opens a fresh one
                await asyncio.sleep(1.0)
            return await asyncio.to_thread(_turns, socket)
        finally:
            if drain is not None:
                drain.cancel()
            process.terminate()
            await process.wait()


def _row(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"| {label} | {statistics.median(values):.0f} | {p90:.0f} | {min(values):.0f} | {max(values):.0f} |"


def report(turns: list[dict[str, Any]]) -> list[str]:
    lines = [f"{len(turns)} turns of `pibuddy run` (WebSocket, xiaozhi test server on 127.0.0.1), from "
             "`pibuddy history`:", "milliseconds from the wake word. The test server answers after 20 uplink "
             "frames and speaks 20 frames of 60 ms, so heard and end are mostly its pacing.", "",
             "| stage | median | p90 | min | max |", "|---|---|---|---|---|"]
    for key, label in _STAGES:
        values = [t["latency_ms"][key] for t in turns if key in t["latency_ms"]]
        if values:
            lines.append(_row(label, values))
    first = [t["latency_ms"]["first_audio"] - t["latency_ms"]["heard"] for t in turns
             if {"first_audio", "heard"} <= t["latency_ms"].keys()]
    if first:
        lines += ["", f"Transcript to first reply audio: median {statistics.median(first):.0f} ms."]
    return lines


async def _main(count: int) -> list[dict[str, Any]]:
    async with pulseaudio_server(mic=True) as pulse:
        with tempfile.TemporaryDirectory(prefix="pibuddy-bench-turns-") as directory:
            return await _run(pulse, Path(directory), count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10, help="turns to measure (default 10)")
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args(argv)
    turns = asyncio.run(_main(args.turns))
    publish("turn latency per stage, from the history", __file__, report(turns), record=args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
