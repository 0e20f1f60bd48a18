"""End to end: virtual mic -> AudioPipeline -> device client -> test xiaozhi server -> speaker -> monitor.

The device client (pibuddy.device_client) drives the pipeline through `PipelineAudioPort` and hears the wake
word as the `WakeDetected` event the pipeline publishes on the shared bus.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.audio.port import PipelineAudioPort
from pibuddy.config import AudioConfig
from pibuddy.device_client.client import DeviceClient
from pibuddy.device_client.service import DeviceClientService
from pibuddy.events import EventBus
from pibuddy.wiring.tools import build_registry
from pibuddy.xiaozhi import ListenMode, State
from tests.audio.conftest import MonitorRecorder, best_lag, play_into_microphone
from tests.device_client_helpers import device_config
from tests.peers.pulseaudio import PulseServer
from tests.peers.speech import speech
from tests.peers.xiaozhi_record import UplinkFrame
from tests.peers.xiaozhi_server import XiaozhiTestServer
from tests.polling import eventually

pytestmark = pytest.mark.peer
_STEP = 8.0
_CAPTURE_LATENCY_SECONDS = 0.3  # microphone to uplink: PulseAudio and PortAudio buffers, one frame


@contextlib.asynccontextmanager
async def _device(tmp_path: Path, server: XiaozhiTestServer) -> AsyncIterator[tuple[AudioPipeline, DeviceClient]]:
    """The audio pipeline on the virtual devices and the device client on one bus, as `pibuddy run` wires them;
    yields once the microphone is open."""
    config = device_config(tmp_path, server.ota_url, transport="websocket")
    bus = EventBus()
    async with AudioPipeline(AudioConfig(), bus) as pipeline:
        service = DeviceClientService(config, bus=bus, registry=build_registry(config),
                                      audio=PipelineAudioPort(pipeline))
        await service.start()
        try:
            assert service.client is not None
            await asyncio.wait_for(pipeline.microphone.opened.wait(), _STEP)
            yield pipeline, service.client
        finally:
            await service.stop()


def _tone_seconds(recorded: np.ndarray, rate: int, freq: float = 440.0) -> float:
    """Seconds of `recorded` (in 30 ms windows) dominated by a `freq` tone."""
    window = round(rate * 0.03)
    count = 0
    for i in range(0, recorded.size - window, window):
        spectrum = np.abs(np.fft.rfft(recorded[i:i + window] * np.hanning(window)))
        peak = np.argmax(spectrum) * rate / window
        count += abs(peak - freq) < 40 and spectrum.max() > 1e4
    return count * 0.03


@dataclass(frozen=True, slots=True)
class ListenMark:
    """Where the live stream begins: the uplink frame count and loop time when `listen start` arrived (the
    pre-roll with the wake word goes up before `listen detect`, so every frame after `frame` is live)."""

    frame: int
    time: float


async def listen_started(server: XiaozhiTestServer) -> ListenMark:
    await asyncio.wait_for(server.listen_start.wait(), _STEP)
    return ListenMark(len(server.uplink_frames), asyncio.get_running_loop().time())


async def until_uplink_reaches(server: XiaozhiTestServer, mark: ListenMark, moment: float) -> None:
    """Until the live uplink holds the microphone's audio up to loop time `moment`, plus the capture latency
    (the device streams in real time; on a loaded machine it lags behind, and a reply sent earlier would cut
    the command short)."""
    wanted = moment - mark.time + _CAPTURE_LATENCY_SECONDS
    await eventually(lambda: sum(f.samples for f in server.uplink_frames[mark.frame:]) / 16000 >= wanted,
                     within=_STEP)


def heard(frames: list[UplinkFrame], part: np.ndarray) -> float:
    """How well the loud part of `part` matches the audio of `frames` (best-lag correlation; 0 when the
    frames hold less than half of it)."""
    pcm = np.frombuffer(b"".join(f.pcm for f in frames), dtype=np.int16)
    loud = np.nonzero(np.abs(part) > 300)[0]
    return best_lag(part[loud[0]:loud[-1]], pcm)[1]


async def test_spoken_turn_reaches_the_server_and_the_reply_plays_and_barge_in_aborts(
        pulse: PulseServer, tmp_path: Path) -> None:
    wake = speech("okay nahboo", pad=1.0)
    command = speech("turn on the light", pad=0.3)
    # No greeting (the half-duplex device would not hear a command said over it), and the reply only once
    # the command is up (not after a count of frames, which raced the command on a loaded machine).
    async with (XiaozhiTestServer(tts_frames=30, utterance_frames=None, wake_words=("Okay Nabu",)) as server,
                MonitorRecorder(pulse, rate=16000) as recorder, _device(tmp_path, server) as (pipeline, _)):
        server.settings.greeting_text = None
        loop = asyncio.get_running_loop()
        wakes: list[float] = []

        async def note_wakes() -> None:
            async for _ in pipeline.wake_events():
                wakes.append(loop.time())

        wake_watch = asyncio.create_task(note_wakes())
        try:
            await asyncio.sleep(1.0)  # a 2 s pre-roll exists before the wake word
            await play_into_microphone(pulse, wake)
            await asyncio.wait_for(server.listen_detect.wait(), _STEP)
            mark = await listen_started(server)
            server.reset_milestones()
            await play_into_microphone(pulse, command)
            await until_uplink_reaches(server, mark, loop.time())
            server.end_utterance()
            await asyncio.wait_for(server.tts_started.wait(), _STEP)
            await asyncio.sleep(0.6)
            command_end = len(server.uplink_frames)  # half duplex: nothing goes up while the reply plays
            await play_into_microphone(pulse, wake)  # barge in during the reply (30 frames = 1.8 s)
            await asyncio.wait_for(server.abort_received.wait(), _STEP)
            stopped_at = wakes[-1]
            await asyncio.sleep(0.5)
        finally:
            wake_watch.cancel()
    assert len(wakes) == 2
    assert server.bad_input == [], "everything the device sent followed the protocol (sequences, lengths, JSON)"
    frames = server.uplink_frames
    assert heard(frames[:mark.frame], wake) > 0.6, "the pre-roll carried the wake word"
    assert heard(frames[mark.frame:command_end], command) > 0.8, "the command went up live, whole"
    assert _tone_seconds(recorder.samples(), 16000) > 0.6  # the reply's tone came out of the speaker
    assert recorder.last_sound_arrival() - stopped_at < 0.3


async def test_a_command_said_right_after_the_wake_word_reaches_the_server_whole_after_a_chime(
        pulse: PulseServer, tmp_path: Path) -> None:
    wake = speech("okay nahboo", pad=1.0)
    command = speech("turn on the light", pad=0.1)
    async with (XiaozhiTestServer(utterance_frames=None, mcp=False, wake_words=("Okay Nabu",)) as server,
                MonitorRecorder(pulse, rate=16000) as recorder, _device(tmp_path, server)):
        server.settings.greeting_text = None  # nothing from the server after `listen start`: the mic opens itself
        await asyncio.sleep(1.0)
        marking = asyncio.create_task(listen_started(server))
        await play_into_microphone(pulse, np.concatenate([wake[:-8000], command]))  # 0.6 s pause
        await until_uplink_reaches(server, await marking, asyncio.get_running_loop().time())
    assert heard(server.uplink_frames, command) > 0.8, "no gap between the wake word audio and the live stream"
    assert server.bad_input == []
    assert _tone_seconds(recorder.samples(), 16000, freq=880.0) > 0, "the wake chime played"


async def test_a_manual_turn_ends_with_listen_stop_once_the_user_stops_talking(
        pulse: PulseServer, tmp_path: Path) -> None:
    command = speech("turn on the light", pad=0.1)
    async with XiaozhiTestServer(tts_frames=5, mcp=False) as server, _device(tmp_path, server) as (_, client):
        assert await client.start_listening(ListenMode.MANUAL)
        lead_in = np.zeros(8000, dtype=np.int16)  # the user starts talking a moment after the press
        await play_into_microphone(pulse, np.concatenate([lead_in, command]))
        spoken = asyncio.get_running_loop().time()
        assert not server.listen_stop.is_set(), "not while the user still talks"
        await asyncio.wait_for(server.listen_stop.wait(), _STEP)
        stopped = asyncio.get_running_loop().time()
        async with asyncio.timeout(_STEP):
            await client.wait_state(State.OPEN)
    assert stopped - spoken < 0.7 + 0.8, "silence_seconds after the speech, plus capture latency"
    assert heard(server.uplink_frames, command) > 0.8
