"""`pibuddy run` as a real process, as systemd starts it: wake word spoken into a virtual microphone, the
conversation with a xiaozhi test server on 127.0.0.1, the reply heard on the virtual speaker, a clean stop.

The in-process e2e tests (test_e2e_xiaozhi.py) cover the details; this one proves the wiring `pibuddy run`
builds from a config file (router, audio pipeline, device client, tools) does the whole job.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.audio.conftest import _PULSE_CLIENT_ENV, MonitorRecorder, play_into_microphone
from tests.audio.test_e2e_xiaozhi import _tone_seconds, heard, listen_started, until_uplink_reaches
from tests.peers.pulseaudio import PulseServer
from tests.peers.speech import speech
from tests.peers.xiaozhi_server import XiaozhiTestServer

pytestmark = pytest.mark.peer
_STEP = 10.0


async def _line_containing(stream: asyncio.StreamReader, text: str, seen: list[str]) -> None:
    await _lines_containing(stream, (text,), seen)


async def _lines_containing(stream: asyncio.StreamReader, texts: tuple[str, ...], seen: list[str]) -> None:
    """Until each of `texts` was logged, in any order."""
    missing = set(texts)
    while missing:
        line = (await stream.readline()).decode(errors="replace")
        if not line:
            raise AssertionError(f"pibuddy run exited before logging {sorted(missing)}:\n{''.join(seen)}")
        seen.append(line)
        missing = {text for text in missing if text not in line}


async def test_pibuddy_run_answers_a_spoken_wake_word_through_the_server(
        pulse: PulseServer, tmp_path: Path, pibuddy_env: dict[str, str]) -> None:
    config = tmp_path / "config.yaml"
    wake, command = speech("okay nahboo", pad=1.0), speech("turn on the light", pad=0.3)
    # No greeting, and the reply once the command is up (as in test_e2e_xiaozhi.py).
    async with XiaozhiTestServer(tts_frames=30, utterance_frames=None, wake_words=("Okay Nabu",)) as server:
        server.settings.greeting_text = None
        config.write_text(f"device: {{device_id: '02:11:22:33:44:66'}}\n"
                          f"upstream: {{ota_url: '{server.ota_url}', transport: websocket}}\n"
                          "gateway: {enabled: false}\n")
        env = pibuddy_env | {key: os.environ[key] for key in (*_PULSE_CLIENT_ENV, "PULSE_SOURCE", "PULSE_SINK")}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pibuddy", "run", "--config", str(config), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert process.stderr is not None
        log: list[str] = []
        try:
            async with MonitorRecorder(pulse, rate=16000) as recorder:
                # Up (systemd's READY=1) and listening: a stall on the way leaves one of them unlogged.
                try:
                    await asyncio.wait_for(_lines_containing(process.stderr, ("microphone open", "PiBuddy is up"), log),
                                           30)
                except TimeoutError:
                    raise AssertionError(f"pibuddy run stalled starting up:\n{''.join(log)}") from None
                await asyncio.sleep(1.0)  # some pre-roll before the wake word
                await play_into_microphone(pulse, wake)
                for milestone in (server.hello_received, server.listen_detect):
                    await asyncio.wait_for(milestone.wait(), _STEP)
                mark = await listen_started(server)
                await play_into_microphone(pulse, command)
                await until_uplink_reaches(server, mark, asyncio.get_running_loop().time())
                server.end_utterance()
                await asyncio.wait_for(server.tts_done.wait(), _STEP)
                await asyncio.sleep(1.0)  # the last of the reply leaves the speaker
            process.send_signal(signal.SIGTERM)
            _, rest = await asyncio.wait_for(process.communicate(), 5)  # stops within 5 s
            log.append(rest.decode(errors="replace"))
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    output = "".join(log)
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert server.bad_input == [], "everything PiBuddy sent followed the protocol"
    assert heard(server.uplink_frames[:mark.frame], wake) > 0.6, "the pre-roll carried the wake word"
    assert heard(server.uplink_frames[mark.frame:], command) > 0.8, "the command went up live, whole"
    assert _tone_seconds(recorder.samples(), 16000) > 1.0, "the reply's tone came out of the speaker"
