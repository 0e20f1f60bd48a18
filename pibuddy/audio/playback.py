"""The speaker: jitter buffer -> Opus decode -> soxr resample -> a PCM ring the PortAudio callback plays.

The callback thread only copies from the ring (a deque of numpy chunks; each side owns one counter),
applies the volume and short fades, and signals the loop when the ring runs dry; it never blocks. On the
loop, one playout task releases packets from the jitter buffer as the ring empties, opens the stream on
demand and closes it after `idle_close_seconds` of silence.

A lost output (USB unplug, sound server gone or suspended: PortAudio errors, or a started stream whose
callback stopped) never ends the playout task: the queued audio is dropped with one warning, the stream is
closed and drained is reported, and the next audio reopens it once a backoff delay has passed.

A gap the listener hears although the jitter buffer had the audio is counted (`starved`) and logged: the sound
card ran dry because the callback thread was not run in time (PortAudio's output underflow), or the ring ran
dry because the playout task was not (the machine was too busy for PiBuddy).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Final

import numpy as np
import soxr

from pibuddy.audio import devices
from pibuddy.audio.errors import CodecError
from pibuddy.audio.jitter import JitterBuffer
from pibuddy.audio.loopsignal import LoopSignal
from pibuddy.audio.opus import FRAME_MS, OpusDecoder
from pibuddy.backoff import Backoff
from pibuddy.config import PlaybackConfig
from pibuddy.drops import DropCounter

_LOGGER = logging.getLogger(__name__)
_TICK_SECONDS: Final = 0.02  # how often the playout task looks at the ring while audio is flowing
_LATE_SECONDS: Final = 0.1  # the playout task away this long (5 ticks) and longer than the ring lasted: starved
_BLOCK_SECONDS: Final = 0.02  # PortAudio callback block: bounds how late a stop() takes effect
# Device buffer: rides out scheduling hiccups, still well inside barge-in. Measured through PulseAudio: a barge-in
# is silent 0.14-0.16 s after stop at 0.1, 0.20-0.21 s at 0.2, 0.36 s at 0.3; and a buffer larger than the jitter
# target (0.12 s) is filled from the ring at start, which then runs dry: gaps and needless jitter underruns.
_DEVICE_LATENCY_SECONDS: Final = 0.1
_MAX_EXTRA_LATENCY_SECONDS: Final = 0.5  # a DAC time further off than this is not believed
_FADE_SECONDS: Final = 0.005  # ramps at start after silence and on stop, so neither clicks
_DEFAULT_DOWNLINK_RATE: Final = 24000
_RETRY_INITIAL_SECONDS: Final = 0.5  # after a lost output, audio arriving sooner is dropped, not tried
_RETRY_MAX_SECONDS: Final = 5.0  # retries only happen when audio arrives, so the ceiling can stay short


class _Ring:
    """Decoded PCM at the device rate. The loop appends and owns `written`; the callback owns `played`."""

    def __init__(self) -> None:
        self.chunks: deque[tuple[int, np.ndarray]] = deque()  # (start sample, int16 samples)
        self.written = 0
        self.played = 0
        self.offset = 0  # samples of chunks[0] already played
        self.flush_until = 0  # stop(): the callback discards everything written before this
        self.gain = 1.0
        self.was_dry = True
        self.dry_signal: LoopSignal | None = None
        self.rate = 0  # the device rate, set when a stream opens
        self.heard_at = 0.0  # stream time (PortAudio's clock) at which the last sample written reaches the DAC
        self.last_callback = 0.0  # time.monotonic() of the latest callback, for the stall watchdog
        self.underflows = 0  # blocks the device played before this callback could fill them (PortAudio's flag)

    @property
    def queued(self) -> int:
        return self.written - self.played

    def write(self, samples: np.ndarray) -> None:
        if samples.size:
            self.chunks.append((self.written, samples))
            self.written += samples.size

    def clear(self) -> None:
        """Forget everything queued. Only while no stream calls back."""
        self.chunks.clear()
        self.played = self.written
        self.offset = 0

    def callback(self, outdata: np.ndarray, frame_count: int, time_info: Any, status: Any) -> None:
        self.last_callback = time.monotonic()
        if status.output_underflow:
            self.underflows += 1
        out = np.zeros(frame_count, dtype=np.float32)
        fade = max(1, round(frame_count * _FADE_SECONDS / _BLOCK_SECONDS))
        if self.chunks and self.chunks[0][0] < self.flush_until:
            filled = self._take(out, min(fade, frame_count))
            out[:filled] *= np.linspace(1.0, 0.0, filled, dtype=np.float32)
            self._discard_until(self.flush_until)
        else:
            starting = self.was_dry
            filled = self._take(out, frame_count)
            if starting and filled:
                ramp = min(fade, filled)
                out[:ramp] *= np.linspace(0.0, 1.0, ramp, dtype=np.float32)
        self.was_dry = not self.chunks
        if filled and self.rate:
            self.heard_at = time_info.outputBufferDacTime + filled / self.rate
        outdata[:, 0] = np.clip(out * self.gain, -32768, 32767).astype(np.int16)
        if self.was_dry and self.dry_signal is not None:
            self.dry_signal.set_threadsafe()

    def _take(self, out: np.ndarray, count: int) -> int:
        filled = 0
        while filled < count and self.chunks:
            _, chunk = self.chunks[0]
            n = min(count - filled, chunk.size - self.offset)
            out[filled:filled + n] = chunk[self.offset:self.offset + n]
            filled += n
            self.offset += n
            self.played += n
            if self.offset == chunk.size:
                self.chunks.popleft()
                self.offset = 0
        return filled

    def _discard_until(self, mark: int) -> None:
        while self.chunks and self.chunks[0][0] < mark:
            start, chunk = self.chunks.popleft()
            self.played = max(self.played, start + chunk.size)
            self.offset = 0


class Speaker:
    """Plays downlink Opus and local PCM prompts on an output device chosen by partial name.

    Args:
        device: Partial output device name; None for the default.
        config: Jitter buffer, volume, rate and idle-close settings.
        echo_cancel: With no `device`, play to a PulseAudio/PipeWire echo-cancel sink if present (its reference).
        backoff: Earliest reopen after the output was lost; a reply played to its end resets it.
    """

    def __init__(self, device: str | None = None, *, config: PlaybackConfig | None = None,
                 backoff: Backoff | None = None, echo_cancel: bool = False) -> None:
        self._device_name = device
        self._echo_cancel = echo_cancel and device is None
        self._config = config or PlaybackConfig()
        self._decoder = OpusDecoder(sample_rate=_DEFAULT_DOWNLINK_RATE, frame_ms=FRAME_MS)
        self._jitter = self._new_jitter()
        self._ring = _Ring()
        self._pending_pcm: deque[tuple[np.ndarray, int]] = deque()
        self._ring.gain = self._config.volume / 100
        self._stream: Any = None
        self._started = False
        self._backoff = backoff or Backoff(initial=_RETRY_INITIAL_SECONDS, maximum=_RETRY_MAX_SECONDS)
        self._retry_at: float | None = None  # set while the output is lost: no reopen before this
        self._device_rate = 0
        self._resampler: Any = None
        self._activity: LoopSignal | None = None
        self._task: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        self._drained.set()
        self._drops = DropCounter("downlink audio packets (jitter buffer full)", _LOGGER)
        self._bad_packets = DropCounter("undecodable downlink audio packets", _LOGGER)
        self._unavailable = DropCounter("speaker audio (output unavailable)", _LOGGER)
        self._starved = DropCounter("speaker audio in time (a gap was heard: the machine is too busy)", _LOGGER)
        self._underflows_seen = 0
        self._last_feed = 0.0  # time.monotonic() the playout task last topped up the ring
        self._ring_after_feed = 0.0  # seconds the ring held then, with more to follow (0: none, or the end)
        self._last_sound = time.monotonic()

    # ---- lifecycle -------------------------------------------------------------------------------
    @property
    def task(self) -> asyncio.Task[None] | None:
        """The playout task; it only ends when stopped (or by a bug)."""
        return self._task

    async def start(self) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._activity = LoopSignal(loop)
            self._ring.dry_signal = self._activity
            self._task = asyncio.create_task(self._playout(), name="speaker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._close_stream()

    async def __aenter__(self) -> Speaker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- what the device client calls ------------------------------------------------------------
    def set_format(self, sample_rate: int, frame_ms: int = FRAME_MS) -> None:
        """Decode at the server hello's rate and frame duration from the next packet on."""
        if (sample_rate, frame_ms) != (self._decoder.sample_rate, self._decoder.frame_ms):
            self._decoder = OpusDecoder(sample_rate=sample_rate, frame_ms=frame_ms)
            self._jitter = self._new_jitter()
            self._resampler = None

    def play_opus(self, packet: bytes) -> None:
        """Queue one downlink Opus packet. Never blocks; a full buffer drops it (counted, logged)."""
        if not self._jitter.push(packet, time.monotonic()):
            self._drops.count()
            return
        self._drained.clear()
        self._wake()

    def play_pcm(self, pcm: bytes, sample_rate: int) -> None:
        """Queue local int16 mono PCM (prompts) behind whatever is playing."""
        samples = np.frombuffer(pcm, dtype=np.int16)
        if samples.size:
            self._pending_pcm.append((samples, sample_rate))
            self._drained.clear()
            self._wake()

    def interrupt(self) -> None:
        """Barge-in: drop everything queued; the callback fades out within one block."""
        self._jitter.clear()
        self._pending_pcm.clear()
        self._ring.flush_until = self._ring.written
        self._drained.set()
        self._wake()

    async def wait_drained(self) -> None:
        """Mark the end of the current stream (tts stop) and return once its last sample has been heard."""
        self._jitter.end()
        self._wake()
        await self._drained.wait()

    @property
    def playing(self) -> bool:
        return not self._drained.is_set()

    @property
    def unheard_seconds(self) -> float:
        """Seconds until the device plays the last sample written (0 with no stream open).

        From PortAudio's DAC times where the host API gives them: they include the sound server's buffer,
        which the nominal latency does not (0.16-0.18 s against 0.12 s through PulseAudio). Where it gives
        none, the nominal latency."""
        if self._stream is None:
            return 0.0
        nominal = float(self._stream.latency)
        if self._ring.heard_at <= 0:
            return nominal
        return min(max(0.0, self._ring.heard_at - self._stream.time), nominal + _MAX_EXTRA_LATENCY_SECONDS)

    @property
    def volume(self) -> int:
        return round(self._ring.gain * 100)

    def set_volume(self, percent: int) -> None:
        """0-100, applied in the callback so it takes effect within one block."""
        self._ring.gain = max(0, min(100, percent)) / 100

    @property
    def underruns(self) -> int:
        """Times the jitter buffer ran dry: the network was late (then it buffers deeper)."""
        return self._jitter.underruns

    @property
    def starved(self) -> int:
        """Gaps with the audio at hand: the sound card or the ring ran dry because PiBuddy was not run in time."""
        return self._starved.total

    # ---- the playout task ------------------------------------------------------------------------
    def _new_jitter(self) -> JitterBuffer:
        return JitterBuffer(frame_seconds=self._decoder.frame_ms / 1000,
                            target_seconds=self._config.jitter_target_ms / 1000,
                            max_target_seconds=max(self._config.jitter_max_ms, self._config.jitter_target_ms) / 1000,
                            max_packets=self._config.queue_packets)

    def _wake(self) -> None:
        if self._activity is not None:
            self._activity.set()

    async def _playout(self) -> None:
        assert self._activity is not None
        while True:
            busy = not self._jitter.empty or self._pending_pcm or self._ring.queued > 0
            await self._activity.wait(_TICK_SECONDS if busy or self._stream is not None else None)
            try:
                with devices.portaudio_errors("speaker"):
                    await self._feed()
            except devices.AudioDeviceError as exc:
                await self._lose_output(exc)
            more = not (self._jitter.ended and self._jitter.empty)
            self._last_feed, self._ring_after_feed = time.monotonic(), self._ring_seconds if more else 0.0

    async def _feed(self) -> None:
        now = time.monotonic()
        if self._started and devices.stream_lost(self._stream, self._ring.last_callback, now):
            raise devices.AudioDeviceLost("the output stopped playing")
        self._count_starving(now)
        packets = self._jitter.release(now, self._ring_seconds)
        if packets or self._pending_pcm:
            if self._retry_at is not None and now < self._retry_at:
                self._unavailable.count("waiting to reopen it")
                self.interrupt()
                return
            await self._ensure_stream()
            self._ring.write(self._decode(packets))
            while self._pending_pcm:
                samples, rate = self._pending_pcm.popleft()
                self._ring.write(soxr.resample(samples, rate, self._device_rate) if rate != self._device_rate
                                 else samples)
            if not self._started:  # started only once audio is queued: no initial underrun
                self._ring.last_callback = now  # the stall watchdog counts from the start
                await asyncio.to_thread(self._stream.start)
                self._started = True
        if self._ring.queued > 0 or not self._jitter.empty:
            self._last_sound = now
        elif self._stream is not None:
            await self._finish_drain(now)

    def _count_starving(self, now: float) -> None:
        """Gaps that were not the network's: the callback was run too late (PortAudio says so), or this task
        was away longer than the ring lasted (a gap the jitter buffer then counts as an underrun, as if the
        network had been late); not a tick or two late as the ring runs out at the end of a reply."""
        while self._underflows_seen < self._ring.underflows:
            self._underflows_seen += 1
            self._starved.count("the sound card ran dry")
        if self._ring_after_feed and now - self._last_feed > max(self._ring_after_feed, _LATE_SECONDS):
            self._starved.count("the playout task came late")

    async def _finish_drain(self, now: float) -> None:
        """The ring is empty: wait until the device has played its last sample, then report drained; close
        when idle."""
        if not self._drained.is_set() and self._jitter.empty and not self._pending_pcm:
            await asyncio.sleep(self.unheard_seconds)
            if self._ring.queued == 0 and self._jitter.empty:
                self._drained.set()
                self._backoff.reset()
        if self._drained.is_set() and now - self._last_sound >= self._config.idle_close_seconds:
            await self._close_stream()

    async def _lose_output(self, exc: devices.AudioDeviceError) -> None:
        """Drop what is queued, close the stream and report drained; the next audio after a backoff delay
        reopens it. One warning per loss; audio dropped by failed reopens is only counted."""
        dropped = self._ring_seconds + self._jitter.buffered_seconds
        delay = self._backoff.next_delay()
        if self._retry_at is None:
            _LOGGER.warning("speaker output lost (%s): dropped %.1f s of audio; the next audio reopens it "
                            "(not before %.1f s)", exc, dropped, delay)
        else:
            self._unavailable.count(str(exc))
        self.interrupt()
        await self._close_stream()
        self._retry_at = time.monotonic() + delay

    @property
    def _ring_seconds(self) -> float:
        return self._ring.queued / self._device_rate if self._device_rate else 0.0

    def _decode(self, packets: list[bytes]) -> np.ndarray:
        """Decode (concealing bad packets) and resample to the device rate, as one block for the ring."""
        pcm = bytearray()
        for packet in packets:
            try:
                pcm += self._decoder.decode(packet)
            except CodecError as exc:
                self._bad_packets.count(str(exc))
                pcm += self._decoder.conceal()
        return self._resample_stream(np.frombuffer(bytes(pcm), dtype=np.int16))

    def _resample_stream(self, samples: np.ndarray) -> np.ndarray:
        if self._decoder.sample_rate == self._device_rate:
            return samples
        if self._resampler is None:
            self._resampler = soxr.ResampleStream(self._decoder.sample_rate, self._device_rate, 1, dtype="int16")
        return self._resampler.resample_chunk(samples)

    async def _ensure_stream(self) -> None:
        if self._stream is None:
            if self._retry_at is not None:  # a re-plugged USB card is only listed after a re-scan
                await asyncio.to_thread(devices.refresh_device_list)
            self._stream = await devices.open_stream_in_thread(self._open)
            self._retry_at = None

    def _open(self) -> Any:
        """Blocking: open (but do not start) the output stream."""
        sd = devices.sounddevice_module()
        if self._echo_cancel:  # the canceller must hear what PiBuddy plays (its reference)
            devices.follow_echo_canceller("PULSE_SINK", devices.echo_cancel_sink())
        index = devices.device_index(self._device_name, "output")
        rate = self._config.samplerate or devices.choose_samplerate(index, self._decoder.sample_rate, "output")
        try:
            with devices.opening_stream():
                stream = sd.OutputStream(device=index, samplerate=rate, channels=1, dtype="int16",
                                         blocksize=round(rate * _BLOCK_SECONDS), latency=_DEVICE_LATENCY_SECONDS,
                                         callback=self._ring.callback)
        except (sd.PortAudioError, ValueError) as exc:
            raise devices.AudioDeviceError(f"cannot open output {self._device_name or 'default'}: {exc}") from None
        if rate != self._device_rate:
            self._resampler = None
        self._device_rate = rate
        self._ring.rate = rate
        self._ring.heard_at = 0.0
        self._ring.was_dry = True
        _LOGGER.debug("speaker open at %d Hz", rate)
        return stream

    async def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        self._started = False
        if stream is not None:
            await devices.close_stream_in_thread(stream)
            self._ring.clear()
