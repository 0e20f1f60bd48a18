"""A lost speaker (sink suspended or gone, PortAudio errors) drops the reply, reports drained and comes back.

The real PulseAudio covers both ways a stream dies under a sound server: its callbacks stop (suspended
sink) and PortAudio stops it (the only sink unloaded, as on a USB unplug; with another sink left, PulseAudio
would move the stream there instead). A stream that fails to start, which a
sound server does not produce on demand, is driven through a fake sounddevice module.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import sounddevice

from pibuddy.audio import devices
from pibuddy.audio.opus import OpusEncoder
from pibuddy.audio.playback import Speaker
from pibuddy.backoff import Backoff
from pibuddy.config import PlaybackConfig
from tests.audio.conftest import MonitorRecorder
from tests.peers.pulseaudio import PulseServer, pulseaudio_server

_RATE = 24000
_LOST = "speaker output lost"


def _reply(seconds: float) -> list[bytes]:
    """A 440 Hz tone as 60 ms downlink Opus packets."""
    frame = _RATE * 60 // 1000
    tone = (np.sin(2 * np.pi * 440 * np.arange(round(seconds * _RATE)) / _RATE) * 8000).astype(np.int16)
    encoder = OpusEncoder(sample_rate=_RATE, complexity=10, dtx=False)
    return [encoder.encode(tone[i:i + frame].tobytes()) for i in range(0, tone.size - frame + 1, frame)]


def _quick_retry() -> Backoff:
    return Backoff(initial=0.1, maximum=0.1)


def _speaker(backoff: Backoff, **config: Any) -> Speaker:
    return Speaker(config=PlaybackConfig(queue_packets=200, **config), backoff=backoff)


def _send(speaker: Speaker, packets: list[bytes]) -> None:
    for packet in packets:
        speaker.play_opus(packet)


def _losses(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and _LOST in r.getMessage()]


async def _play_reply_and_record(pulse: PulseServer, speaker: Speaker) -> np.ndarray:
    async with MonitorRecorder(pulse, rate=_RATE) as recorder:
        _send(speaker, _reply(1.0))
        await asyncio.wait_for(speaker.wait_drained(), 5)
        await asyncio.sleep(0.3)
    return recorder.samples()


async def _lose_mid_reply(speaker: Speaker, unplug: Any, within: float) -> None:
    """Start a 6 s reply, `unplug` after 0.5 s; drained must then be reported within `within` seconds."""
    _send(speaker, _reply(6.0))
    await asyncio.sleep(0.5)
    assert speaker.playing
    await unplug()
    await asyncio.wait_for(speaker.wait_drained(), within)
    assert not speaker.playing


@pytest.mark.peer
async def test_a_stalled_output_is_dropped_and_the_next_reply_plays(
        pulse: PulseServer, caplog: pytest.LogCaptureFixture) -> None:
    async with _speaker(_quick_retry()) as speaker:
        await _lose_mid_reply(speaker, lambda: pulse.pactl("suspend-sink", pulse.sink, "1"),
                              within=devices.STALL_SECONDS + 1.0)
        assert len(_losses(caplog)) == 1
        await pulse.pactl("suspend-sink", pulse.sink, "0")
        played = await _play_reply_and_record(pulse, speaker)
    assert np.abs(played).max() > 2000
    assert len(_losses(caplog)) == 1


@pytest.fixture
async def lone_sink() -> AsyncIterator[PulseServer]:
    """A PulseAudio whose one sink is the speaker (the `pulse` fixture adds a second one for its microphone)."""
    async with pulseaudio_server() as server:
        with pytest.MonkeyPatch.context() as environ:
            for key in ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR", "HOME"):
                environ.setenv(key, server.env[key])
            assert devices.refresh_device_list(), "a sound stream from an earlier test is still open"
            yield server
        devices.refresh_device_list()


@pytest.mark.peer
async def test_an_unplugged_sink_is_dropped_at_once_and_a_new_one_plays(
        lone_sink: PulseServer, caplog: pytest.LogCaptureFixture) -> None:
    modules = (await lone_sink.pactl("list", "short", "modules")).splitlines()
    module = next(line.split("\t")[0] for line in modules if "module-null-sink" in line)
    async with _speaker(_quick_retry()) as speaker:
        await _lose_mid_reply(speaker, lambda: lone_sink.pactl("unload-module", module), within=1.0)
        assert len(_losses(caplog)) == 1
        await lone_sink.pactl("load-module", "module-null-sink", f"sink_name={lone_sink.sink}")
        played = await _play_reply_and_record(lone_sink, speaker)
    assert np.abs(played).max() > 2000


# ---- a stream that fails to start (fake sounddevice) ---------------------------------------------------------
class _FakeOutputStream:
    """An output stream that calls back in real time from its own thread, like PortAudio's."""

    latency = 0.02

    def __init__(self, sd: _FakeSounddevice, *, callback: Any, samplerate: int, blocksize: int, **_: Any) -> None:
        self._sd = sd
        self._callback = callback
        self._block = blocksize
        self._rate = samplerate
        self._thread: threading.Thread | None = None
        self.active = False
        self.played: list[np.ndarray] = []

    @property
    def time(self) -> float:
        return time.monotonic()

    def start(self) -> None:
        if self._sd.failing_starts:
            self._sd.failing_starts -= 1
            raise self._sd.PortAudioError("Device unavailable [PaErrorCode -9985]")
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.active:
            out = np.zeros((self._block, 1), dtype=np.int16)
            # sounddevice always hands the callback a CallbackFlags (all clear here), never None.
            self._callback(out, self._block, SimpleNamespace(outputBufferDacTime=self.time + self.latency),
                           sounddevice.CallbackFlags())
            self.played.append(out[:, 0].copy())
            time.sleep(self._block / self._rate)

    def close(self, ignore_errors: bool = True) -> None:
        del ignore_errors
        self.active = False
        if self._thread is not None:
            self._thread.join()


class _FakeSounddevice:
    """The sounddevice calls a Speaker makes with a fixed samplerate and the default device."""

    class PortAudioError(Exception):
        pass

    def __init__(self, failing_starts: int) -> None:
        self.failing_starts = failing_starts
        self.streams: list[_FakeOutputStream] = []
        self.calls: list[str] = []

    def OutputStream(self, **kwargs: Any) -> _FakeOutputStream:
        self.calls.append("open")
        self.streams.append(_FakeOutputStream(self, **kwargs))
        return self.streams[-1]

    def _terminate(self) -> None:
        self.calls.append("rescan")

    def _initialize(self) -> None:
        pass


@pytest.fixture
def fake_sd(monkeypatch: pytest.MonkeyPatch) -> _FakeSounddevice:
    fake = _FakeSounddevice(failing_starts=1)
    monkeypatch.setattr(devices, "sounddevice_module", lambda: fake)
    return fake


async def test_a_stream_that_fails_to_start_is_dropped_and_the_next_reply_reopens_it(
        fake_sd: _FakeSounddevice, caplog: pytest.LogCaptureFixture) -> None:
    async with _speaker(_quick_retry(), samplerate=_RATE) as speaker:
        _send(speaker, _reply(1.0))
        await asyncio.wait_for(speaker.wait_drained(), 1)
        assert not speaker.playing
        assert len(_losses(caplog)) == 1
        assert "Device unavailable" in _losses(caplog)[0]
        await asyncio.sleep(0.2)  # past the backoff
        _send(speaker, _reply(0.5))
        await asyncio.wait_for(speaker.wait_drained(), 3)
    assert fake_sd.calls == ["open", "rescan", "open"]  # a re-plugged card gets a new index: re-scan first
    assert np.abs(np.concatenate(fake_sd.streams[1].played)).max() > 2000


async def test_audio_during_the_backoff_is_dropped_without_reopening(
        fake_sd: _FakeSounddevice, caplog: pytest.LogCaptureFixture) -> None:
    async with _speaker(Backoff(initial=30.0, maximum=30.0), samplerate=_RATE) as speaker:
        _send(speaker, _reply(0.5))
        await asyncio.wait_for(speaker.wait_drained(), 1)
        _send(speaker, _reply(0.5))
        await asyncio.wait_for(speaker.wait_drained(), 1)
        assert not speaker.playing
    assert fake_sd.calls == ["open"]
    assert len(_losses(caplog)) == 1
    assert any("output unavailable" in r.getMessage() for r in caplog.records)
