"""Sound-device fixtures: each points PortAudio at its virtual devices and restores it afterwards."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from pibuddy.audio import devices
from tests.peers.alsa_file import AlsaFileDevices
from tests.peers.pulseaudio import PulseServer, pulseaudio_server

_PACER_LATENCY_MS = 100
_CLIP_MARGIN_MS = 500  # buffer beyond the clip, so PulseAudio holds all of it before it plays
_MAX_BUFFER_MS = 3000  # a longer clip plays through this much buffer (asking for more skipped part of a 50 s clip)
_PULSE_CLIENT_ENV = ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR", "HOME")


class _Environ:
    """Set variables for this process (PortAudio and libpulse read them) and put them back after."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def rescan() -> None:
    assert devices.refresh_device_list(), "a sound stream from an earlier test is still open"


@pytest.fixture
def alsa(tmp_path: Path) -> Iterator[AlsaFileDevices]:
    """ALSA file-plugin devices; call `alsa.write()` then `rescan()` after adding them."""
    environ = _Environ()
    virtual = AlsaFileDevices(tmp_path)
    virtual.write()
    environ.set(virtual.env)
    try:
        yield virtual
    finally:
        environ.restore()
        devices.refresh_device_list()


@pytest.fixture
async def pulse() -> AsyncIterator[PulseServer]:
    """A private PulseAudio with a null sink (speaker) and a remapped virtual microphone as defaults.

    A null sink renders in blocks of up to 2 s unless some client asks for low latency, which starves
    PortAudio's small ALSA buffers (callbacks stop for seconds). A `parec` with a 100 ms latency request
    on each sink's monitor keeps both null sinks running in real time, as a sound card would.
    """
    environ = _Environ()
    async with pulseaudio_server(mic=True) as server:
        environ.set({key: server.env[key] for key in _PULSE_CLIENT_ENV})
        environ.set({"PULSE_SOURCE": server.mic_source or "", "PULSE_SINK": server.sink})
        pacers = [await asyncio.create_subprocess_exec(
            "parec", "-d", f"{sink}.monitor", "--raw", f"--latency-msec={_PACER_LATENCY_MS}", env=server.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            for sink in (server.sink, server.mic_feed)]
        try:
            rescan()
            yield server
        finally:
            for pacer in pacers:
                pacer.terminate()
                await pacer.wait()
            environ.restore()
            devices.refresh_device_list()


def best_lag(reference: np.ndarray, signal: np.ndarray) -> tuple[int, float]:
    """(lag, normalised correlation) where `signal[lag:]` best matches `reference` (FFT cross-correlation)."""
    a = reference.astype(np.float64)
    b = signal.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(a.size + b.size)))
    corr = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)[: b.size]
    lag = int(np.argmax(corr))
    window = b[lag:lag + a.size]
    if window.size < a.size // 2:
        return lag, 0.0
    ref = a[:window.size]
    return lag, float(np.dot(ref, window) / (np.linalg.norm(ref) * np.linalg.norm(window) + 1e-12))


class MonitorRecorder:
    """Records a PulseAudio sink's monitor with parec, noting when each chunk arrived (loop time).

    """

    def __init__(self, server: PulseServer, *, rate: int = 16000) -> None:
        self.rate = rate
        self._server = server
        self._chunks: list[tuple[float, bytes]] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MonitorRecorder:
        self._process = await asyncio.create_subprocess_exec(
            "parec", "-d", f"{self._server.sink}.monitor", "--raw", "--format=s16le", f"--rate={self.rate}",
            "--channels=1", f"--latency-msec={_PACER_LATENCY_MS}", env=self._server.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        self._reader = asyncio.create_task(self._read())
        await asyncio.sleep(0.3)  # let the record stream connect
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._process is not None
        assert self._reader is not None
        self._process.terminate()
        await asyncio.wait_for(self._process.wait(), 5)
        await asyncio.wait_for(self._reader, 5)

    async def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        loop = asyncio.get_running_loop()
        while chunk := await self._process.stdout.read(640):
            self._chunks.append((loop.time(), chunk))

    def samples(self) -> np.ndarray:
        data = b"".join(c for _, c in self._chunks)
        return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")

    def first_sound_arrival(self, after: float, threshold: int = 200) -> float:
        """Loop time at which the first chunk holding a sample above `threshold` arrived after `after`."""
        for arrived, chunk in self._chunks:
            if arrived > after and np.abs(np.frombuffer(chunk[: len(chunk) // 2 * 2], "<i2")).max(initial=0) \
                    > threshold:
                return arrived
        raise AssertionError(f"nothing above {threshold} was recorded after {after:.2f}")

    def arrival(self, sample: int) -> float:
        """Loop time at which the chunk holding sample number `sample` of `samples()` arrived."""
        end = 0
        for arrived, chunk in self._chunks:
            end += len(chunk) // 2
            if sample < end:
                return arrived
        raise AssertionError(f"only {end} samples were recorded, not {sample + 1}")

    def last_sound_arrival(self, threshold: int = 200) -> float:
        """Loop time at which the last chunk holding a sample above `threshold` arrived."""
        loud = [t for t, c in self._chunks if np.abs(np.frombuffer(c[: len(c) // 2 * 2], "<i2")).max(initial=0)
                > threshold]
        assert loud, "nothing audible was recorded"
        return loud[-1]


async def play_into_microphone(server: PulseServer, samples: np.ndarray, rate: int = 16000) -> None:
    """"Speak" `samples` into the virtual microphone in real time (returns when played).

    The whole clip is buffered in PulseAudio before it plays (a stream latency longer than the clip): with a
    short buffer, pacat starved for CPU on a loaded machine underran and PulseAudio skipped the audio it
    wrote late, so tests heard a mangled command (best-lag correlation 0.44-0.87 in 5 of 12 plays, measured
    under load; 0.97-1.0 in 12 of 12 with the clip buffered). A clip longer than `_MAX_BUFFER_MS` plays
    through that much buffer: asked for the whole of a 50 s clip, PulseAudio skipped 16 s of it.
    """
    latency_ms = min(round(samples.size / rate * 1000) + _CLIP_MARGIN_MS, _MAX_BUFFER_MS)
    process = await asyncio.create_subprocess_exec(
        "pacat", "--playback", "-d", server.mic_feed, "--raw", "--format=s16le", f"--rate={rate}", "--channels=1",
        f"--latency-msec={latency_ms}",
        env=server.env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    await process.communicate(samples.astype("<i2").tobytes())
