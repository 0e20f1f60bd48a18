"""The microphone: 16 kHz mono int16 frames from any device rate, into a bounded queue, forever.

The PortAudio callback thread only converts (first channel, soxr resampling, 30 ms re-chunking) and appends
to a bounded deque, dropping the oldest frame when the loop falls behind; it never blocks and never logs.
A supervising task on the loop reopens the stream with backoff whenever it fails to open or stops
delivering (USB unplug, sound server restart). It never gives up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Final

import numpy as np

from pibuddy.audio import devices
from pibuddy.audio.frames import FRAME_SAMPLES, SAMPLE_RATE, Frame, Rechunker
from pibuddy.audio.loopsignal import LoopSignal
from pibuddy.backoff import Backoff
from pibuddy.drops import DropCounter

_LOGGER = logging.getLogger(__name__)
_QUEUE_FRAMES: Final = 100  # 3 s of 30 ms frames
_STALL_SECONDS: Final = 2.0  # no callback for this long means the device is gone
_WATCH_INTERVAL_SECONDS: Final = 0.5
# PortAudio block, 4 frames: every block wakes the callback thread, libpulse's and the event loop. Idle listening
# through PulseAudio measured 2.4-2.8 % of a core at 60 ms, 2.3 % at 90 ms, 1.7-2.1 % at 120 ms (30 ms: 2-20x
# more); the price is up to 60 ms more before a wake word is heard (bench/RESULTS.md 2026-12-07 07:00).
_BLOCK_SECONDS: Final = 0.12


class _CaptureState:
    """Everything the callback thread touches. The loop side reads `frames`, `last_callback` and `produced`."""

    def __init__(self, device_rate: int, queue_frames: int) -> None:
        self.frames: deque[Frame] = deque(maxlen=queue_frames)
        self.rechunker = Rechunker(FRAME_SAMPLES)
        self.resampler = None
        if device_rate != SAMPLE_RATE:
            import soxr  # noqa: PLC0415 (only needed for devices that cannot do 16 kHz)

            self.resampler = soxr.ResampleStream(device_rate, SAMPLE_RATE, 1, dtype="int16", quality="HQ")
        self.produced = 0
        self.dropped = 0
        self.last_callback = time.monotonic()
        self.signal: LoopSignal | None = None

    def callback(self, indata: np.ndarray, frame_count: int, time_info: Any, status: Any) -> None:
        del frame_count, time_info, status  # overflows show up as gaps in Frame.index at worst
        self.last_callback = time.monotonic()
        mono = np.ascontiguousarray(indata[:, 0])
        if self.resampler is not None:
            mono = self.resampler.resample_chunk(mono)
        produced = self.produced
        for pcm in self.rechunker.push(mono.tobytes()):
            if len(self.frames) == self.frames.maxlen:
                self.dropped += 1  # deque(maxlen) drops the oldest on append
            self.frames.append(Frame(pcm, self.produced))
            self.produced += 1
        if self.produced != produced and self.signal is not None:
            self.signal.set_threadsafe()


class Microphone:
    """Capture frames from a device chosen by partial name (None: the default, or the echo-cancel source).

    Args:
        device: Partial input device name, as in `pibuddy audio-devices`; None for the default.
        echo_cancel: With no `device`, capture from a PulseAudio/PipeWire echo-cancel source if present.
        queue_frames: Frames held for a slow consumer; beyond this the oldest are dropped.
        samplerate: Device rate to capture at (then resampled to 16 kHz); None: 16 kHz when the device
            takes it, else its default rate.
        backoff: Reopen schedule after failures.
    """

    def __init__(self, device: str | None = None, *, echo_cancel: bool = True, queue_frames: int = _QUEUE_FRAMES,
                 samplerate: int | None = None, backoff: Backoff | None = None) -> None:
        self._device_name = device
        self._samplerate = samplerate
        self._echo_cancel = echo_cancel and device is None
        self._queue_frames = queue_frames
        self._backoff = backoff or Backoff(initial=0.5, maximum=30.0)
        self._state: _CaptureState | None = None
        self._signal: LoopSignal | None = None
        self._task: asyncio.Task[None] | None = None
        self._drops = DropCounter("microphone frames (consumer too slow)", _LOGGER)
        self._dropped_seen = 0
        self.opened = asyncio.Event()
        """Set while a stream is delivering; cleared when it is lost."""
        self.open_count = 0
        """How many times a stream was opened (1 + reopens)."""
        self.echo_cancelled = False
        """Whether the current stream reads an echo-cancel source (then barge-in works while speaking)."""
        self.device_rate = 0

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task that keeps the microphone open; it only ends when stopped (or by a bug)."""
        return self._task

    async def start(self) -> None:
        if self._task is None:
            self._signal = LoopSignal(asyncio.get_running_loop())
            self._task = asyncio.create_task(self._supervise(), name="microphone")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def __aenter__(self) -> Microphone:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def dropped(self) -> int:
        """Frames dropped on the current stream because the consumer fell behind."""
        return self._state.dropped if self._state is not None else 0

    async def read(self) -> Frame:
        """The next frame, waiting for one (across reopens)."""
        assert self._signal is not None, "Microphone.start() first"
        while True:
            state = self._state
            if state is not None and state.frames:
                if state.dropped != self._dropped_seen:
                    for _ in range(state.dropped - self._dropped_seen):
                        self._drops.count()
                    self._dropped_seen = state.dropped
                return state.frames.popleft()
            await self._signal.wait()

    def drain(self) -> None:
        """Throw away queued frames (e.g. audio captured while the pipeline was paused)."""
        if self._state is not None:
            self._state.frames.clear()

    async def _supervise(self) -> None:
        unavailable = ""  # why the last open failed; the same reason again is not a new warning
        while True:
            try:
                stream = await devices.open_stream_in_thread(self._open)
            except devices.AudioDeviceError as exc:
                delay = self._backoff.next_delay()
                level = logging.DEBUG if str(exc) == unavailable else logging.WARNING
                _LOGGER.log(level, "microphone unavailable (%s); retrying in %.1f s", exc, delay)
                unavailable = str(exc)
                await asyncio.sleep(delay)
                await asyncio.to_thread(devices.refresh_device_list)
                continue
            unavailable = ""
            opened_at = time.monotonic()
            self.opened.set()
            try:
                await self._watch(stream)
            finally:
                self.opened.clear()
                await devices.close_stream_in_thread(stream)
            delay = self._backoff.next_delay(healthy_for=time.monotonic() - opened_at)
            _LOGGER.warning("microphone stopped delivering audio; reopening in %.1f s", delay)
            await asyncio.sleep(delay)
            await asyncio.to_thread(devices.refresh_device_list)

    def _open(self) -> Any:
        """Blocking: resolve the device, pick a rate, open and start the stream."""
        sd = devices.sounddevice_module()
        source = devices.echo_cancel_source() if self._echo_cancel else None
        self.echo_cancelled = self._echo_cancel and devices.follow_echo_canceller("PULSE_SOURCE", source)
        index = devices.device_index(self._device_name, "input")
        rate = self._samplerate or devices.choose_samplerate(index, SAMPLE_RATE, "input")
        state = _CaptureState(rate, self._queue_frames)
        state.signal = self._signal
        try:
            with devices.opening_stream():
                stream = sd.InputStream(device=index, samplerate=rate, channels=1, dtype="int16",
                                        blocksize=round(rate * _BLOCK_SECONDS), callback=state.callback)
                stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise devices.AudioDeviceError(f"cannot open input {self._device_name or 'default'}: {exc}") from None
        self._state = state
        self._dropped_seen = 0
        self.device_rate = rate
        self.open_count += 1
        _LOGGER.info("microphone open: %s at %d Hz%s", self._device_name or "default", rate,
                     f" (echo-cancel source {source})" if self.echo_cancelled else "")
        return stream

    async def _watch(self, stream: Any) -> None:
        """Return when the stream has died: inactive, or silent (no callbacks) for too long."""
        assert self._state is not None
        # Polling on purpose: a dead device produces no callback that could set an event.
        while stream.active and time.monotonic() - self._state.last_callback < _STALL_SECONDS:  # noqa: ASYNC110
            await asyncio.sleep(_WATCH_INTERVAL_SECONDS)
