"""Capture and playback code paths through ALSA file-plugin devices: exact content, no timing."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

import numpy as np
import pytest
import soxr

from pibuddy.audio import devices
from pibuddy.audio.capture import Microphone
from pibuddy.audio.frames import FRAME_SAMPLES
from pibuddy.audio.opus import OpusDecoder, OpusEncoder
from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.audio.playback import Speaker
from pibuddy.audio.prompts import Prompts
from pibuddy.audio.service import AudioService
from pibuddy.backoff import Backoff
from pibuddy.config import AudioConfig, PlaybackConfig
from pibuddy.events import EventBus, Say
from tests.audio.conftest import best_lag, rescan
from tests.peers.alsa_file import AlsaFileDevices
from tests.peers.speech import speech

_FAST_RETRY = Backoff(initial=0.1, maximum=0.3)


async def _collect(microphone: Microphone, count: int) -> list:
    return [await asyncio.wait_for(microphone.read(), 5) for _ in range(count)]


async def test_capture_at_16k_delivers_the_file_frame_for_frame(alsa: AlsaFileDevices) -> None:
    source = speech("okay nahboo, what is the weather", pad=0.5)
    alsa.microphone("vmic", source)
    alsa.write()
    rescan()
    # A huge queue: the unpaced device must not overrun it before the loop first reads.
    async with Microphone("vmic", echo_cancel=False, queue_frames=10000) as microphone:
        frames = await _collect(microphone, 60)
        assert microphone.device_rate == 16000
    indices = [f.index for f in frames]
    assert indices == sorted(indices)
    in_file = [f for f in frames if (f.index + 1) * FRAME_SAMPLES <= source.size]
    assert len(in_file) > 20
    for frame in in_file:
        assert frame.pcm == source[frame.index * FRAME_SAMPLES:(frame.index + 1) * FRAME_SAMPLES].tobytes()


async def test_capture_resamples_a_48k_device_to_16k(alsa: AlsaFileDevices) -> None:
    source48 = speech("turn on the kitchen light", rate=48000, pad=0.5)
    alsa.microphone("vmic48", source48, rate=48000)
    alsa.write()
    rescan()
    async with Microphone("vmic48", echo_cancel=False, samplerate=48000, queue_frames=10000) as microphone:
        frames = await _collect(microphone, 80)
        assert microphone.device_rate == 48000
    # The callback resamples PortAudio's 60 ms (2880-sample) blocks with a soxr stream: do the same here.
    stream = soxr.ResampleStream(48000, 16000, 1, dtype="int16", quality="HQ")
    blocks = [stream.resample_chunk(source48[i:i + 2880]) for i in range(0, source48.size - 2879, 2880)]
    expected = np.concatenate(blocks)
    in_file = [f for f in frames if (f.index + 1) * FRAME_SAMPLES <= expected.size]
    assert len(in_file) > 20
    for frame in in_file:
        want = expected[frame.index * FRAME_SAMPLES:(frame.index + 1) * FRAME_SAMPLES]
        assert np.max(np.abs(frame.samples.astype(int) - want)) <= 4  # soxr's int16 output may dither
    got = np.concatenate([f.samples for f in in_file])
    assert np.abs(got).max() > 1000  # real speech came through, not just the padding


async def test_a_slow_consumer_loses_the_oldest_frames_not_the_newest(alsa: AlsaFileDevices) -> None:
    alsa.microphone("vmic", speech("hello", pad=2.0))
    alsa.write()
    rescan()
    async with Microphone("vmic", echo_cancel=False, queue_frames=5) as microphone:
        await asyncio.wait_for(microphone.opened.wait(), 5)
        await asyncio.sleep(0.2)  # the unpaced device produces far more than 5 frames meanwhile
        frames = await _collect(microphone, 5)
        assert microphone.dropped > 0
    assert frames[0].index > 5  # the first frames were dropped, the queue holds recent ones
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))


async def test_a_missing_microphone_is_retried_until_it_appears(alsa: AlsaFileDevices) -> None:
    async with Microphone("vlate", echo_cancel=False, backoff=_FAST_RETRY) as microphone:
        await asyncio.sleep(0.5)
        assert microphone.open_count == 0
        assert not microphone.opened.is_set()
        alsa.microphone("vlate", speech("hello", pad=0.5))
        alsa.write()  # "plugged in": the retry loop rescans devices
        frame = await asyncio.wait_for(microphone.read(), 5)
        assert microphone.open_count == 1
        assert len(frame.pcm) == 2 * FRAME_SAMPLES


async def test_a_rescan_while_a_stream_is_being_opened_is_refused(alsa: AlsaFileDevices,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-scan terminates PortAudio, freeing every stream: one that another thread was opening at that moment
    was counted open only afterwards, and its owner's next call on it read freed memory (a fresh-clone run
    aborted in cffi's callback, while a microphone came back during a re-scan)."""
    sd = devices.sounddevice_module()
    rescans: list[bool] = []

    def rescanned_first(open_stream: type) -> Callable[..., object]:
        def opening(*args: object, **kwargs: object) -> object:
            rescans.append(devices.refresh_device_list())  # another thread's re-scan, at the worst moment
            return open_stream(*args, **kwargs)
        return opening

    for name in ("InputStream", "OutputStream"):
        monkeypatch.setattr(sd, name, rescanned_first(getattr(sd, name)))
    alsa.microphone("vmic", speech("hello", pad=0.5))
    alsa.speaker("vspk", rate=24000)
    alsa.write()
    rescan()
    async with Microphone("vmic", echo_cancel=False, backoff=_FAST_RETRY) as microphone:
        await asyncio.wait_for(microphone.read(), 5)
    packets, _ = _tts()
    async with Speaker("vspk", config=PlaybackConfig(idle_close_seconds=0, queue_packets=100)) as speaker:
        await _play(speaker, packets[:5])
    assert rescans == [False, False], "a re-scan went ahead while a stream was being opened"


class _HeldOpen:
    """Holds an owner's `_open` in its worker thread: the real open runs, then the thread waits until the test
    `release`s it, so the owner's task is awaiting an open in progress for exactly as long as the test wants."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Microphone | Speaker) -> None:
        self.streams: list[object] = []
        self.opened = threading.Event()
        self.release = threading.Event()
        open_stream = owner._open

        def held() -> object:
            stream = open_stream()
            self.streams.append(stream)
            self.opened.set()
            self.release.wait(10)
            return stream

        monkeypatch.setattr(owner, "_open", held)

    async def stop_while_opening(self, stop: Callable[[], Awaitable[None]]) -> None:
        """`stop` (cancelling the owner's task) while the open is held, then release it: the stream the thread
        opened for no one must be closed, and device re-scans (a re-plugged USB card) allowed again."""
        try:
            assert await asyncio.to_thread(self.opened.wait, 5), "the stream was never opened"
            await asyncio.wait_for(stop(), 5)
        finally:
            self.release.set()
        async with asyncio.timeout(5):
            while not devices.refresh_device_list():  # noqa: ASYNC110 (the abandoned stream closes in a thread)
                await asyncio.sleep(0.02)
        assert [getattr(stream, "closed", None) for stream in self.streams] == [True]


async def test_a_microphone_stopped_while_its_stream_opens_closes_that_stream(
        alsa: AlsaFileDevices, monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervising task cancelled in `asyncio.to_thread(self._open)`: the thread still opened the stream, no
    one closed it, and it stayed counted open, so no device re-scan was ever allowed again."""
    alsa.microphone("vmic", speech("hello", pad=0.5))
    alsa.write()
    rescan()
    microphone = Microphone("vmic", echo_cancel=False)
    held = _HeldOpen(monkeypatch, microphone)
    await microphone.start()
    await held.stop_while_opening(microphone.stop)


async def test_a_speaker_stopped_while_its_stream_opens_closes_that_stream(
        alsa: AlsaFileDevices, monkeypatch: pytest.MonkeyPatch) -> None:
    alsa.speaker("vspk", rate=24000)
    alsa.write()
    rescan()
    speaker = Speaker("vspk", config=PlaybackConfig(samplerate=24000))
    held = _HeldOpen(monkeypatch, speaker)
    await speaker.start()
    speaker.play_pcm(speech("hello", rate=24000).tobytes(), 24000)  # the playout task opens the stream for it
    await held.stop_while_opening(speaker.stop)


async def test_no_default_microphone_at_all_is_one_warning_and_retried_until_one_is_plugged_in(
        alsa: AlsaFileDevices, caplog: pytest.LogCaptureFixture) -> None:
    alsa.default_to(None)
    alsa.write()
    rescan()
    with caplog.at_level(logging.DEBUG, logger="pibuddy.audio.capture"):
        async with Microphone(echo_cancel=False, backoff=_FAST_RETRY) as microphone:
            await asyncio.sleep(1.0)  # several retries
            assert not microphone.opened.is_set()
            alsa.microphone("usbmic", speech("hello", pad=0.5))
            alsa.default_to("usbmic")
            alsa.write()  # plugged in
            frame = await asyncio.wait_for(microphone.read(), 5)
    assert len(frame.pcm) == 2 * FRAME_SAMPLES
    failures = [r for r in caplog.records if r.getMessage().startswith("microphone unavailable")]
    assert len(failures) >= 2, "it kept retrying"
    assert [r.levelno for r in failures].count(logging.WARNING) == 1, "one warning, not one per retry"
    assert "the default input device is not usable" in failures[0].getMessage()


def _tts(rate: int = 24000) -> tuple[list[bytes], np.ndarray]:
    """Opus packets of speech at `rate` (60 ms) and what a fresh decoder makes of them."""
    pcm = speech("the weather today is sunny and warm", rate=rate, pad=0.3)
    frame = rate * 60 // 1000
    encoder = OpusEncoder(sample_rate=rate, complexity=10, dtx=False)
    packets = [encoder.encode(pcm[i:i + frame].tobytes()) for i in range(0, pcm.size - frame + 1, frame)]
    decoder = OpusDecoder(sample_rate=rate)
    return packets, np.frombuffer(b"".join(decoder.decode(p) for p in packets), dtype=np.int16)


async def _play(speaker: Speaker, packets: list[bytes]) -> None:
    for packet in packets:
        speaker.play_opus(packet)
    # The end of the stream is marked before the speaker's task runs (wait_for would start wait_drained in a
    # task of its own, later): the file device consumes faster than real time, so a reply released packet by
    # packet would be written with gaps of silence between them.
    async with asyncio.timeout(10):
        await speaker.wait_drained()


async def test_playback_decodes_resamples_and_writes_everything(alsa: AlsaFileDevices) -> None:
    out = alsa.speaker("vspk", rate=48000)
    alsa.write()
    rescan()
    packets, decoded = _tts()
    config = PlaybackConfig(samplerate=48000, volume=100, idle_close_seconds=0, queue_packets=100)
    async with Speaker("vspk", config=config) as speaker:
        await _play(speaker, [*packets[:5], b"\xff\xfe garbage", *packets[5:]])
        assert not speaker.playing
    written = np.fromfile(out, dtype="<i2")
    expected = soxr.resample(decoded, 24000, 48000)
    lag, correlation = best_lag(expected, written)
    assert correlation > 0.97  # one concealed packet in the middle, the rest exact
    assert np.count_nonzero(written[lag + expected.size:]) == 0  # nothing after the stream, no stray repeat


async def test_volume_scales_what_is_played(alsa: AlsaFileDevices) -> None:
    outputs = {}
    packets, _ = _tts()
    for volume in (100, 25):
        outputs[volume] = alsa.speaker(f"vspk{volume}", rate=24000)
        alsa.write()
        rescan()
        config = PlaybackConfig(volume=volume, idle_close_seconds=0, queue_packets=100)
        async with Speaker(f"vspk{volume}", config=config) as speaker:
            assert speaker.volume == volume
            await _play(speaker, packets)
    loud, quiet = (np.fromfile(outputs[v], dtype="<i2").astype(float) for v in (100, 25))
    loud = loud[np.nonzero(loud)[0][0]:]
    lag, correlation = best_lag(loud[:24000], quiet)
    assert correlation > 0.99
    aligned = quiet[lag:lag + loud.size]
    assert np.dot(aligned, loud[:aligned.size]) / np.dot(loud[:aligned.size], loud[:aligned.size]) == \
        pytest.approx(0.25, abs=0.01)


async def test_say_events_are_spoken_and_the_chime_plays(alsa: AlsaFileDevices) -> None:
    out = alsa.speaker("vspk", rate=24000)
    alsa.write()
    rescan()
    bus = EventBus()
    async with Speaker("vspk", config=PlaybackConfig(idle_close_seconds=0, queue_packets=100)) as speaker:
        prompts = Prompts(speaker)
        serving = asyncio.create_task(prompts.serve(bus))
        await asyncio.sleep(0)  # subscribed
        bus.publish(Say("Your code is 493021"))
        async with asyncio.timeout(10):
            while not speaker.playing:  # noqa: ASYNC110 (espeak-ng runs, then the speech is queued)
                await asyncio.sleep(0.02)
        await asyncio.wait_for(speaker.wait_drained(), 10)
        serving.cancel()
        spoken = np.count_nonzero(np.abs(np.fromfile(out, dtype="<i2")) > 300) / 24000
        prompts.chime()
        await asyncio.wait_for(speaker.wait_drained(), 5)
    written = np.fromfile(out, dtype="<i2")
    assert spoken > 1.5  # the prompt was spoken (the digit spelling itself: test_units)
    chime = written[np.nonzero(np.abs(written) > 300)[0][-1] - 2000:]
    assert np.abs(chime).max() > 5000  # the chime came after the speech


async def test_a_bug_that_ends_an_audio_task_fails_the_audio_service_so_the_supervisor_restarts_it(
        alsa: AlsaFileDevices, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> int:
        raise ZeroDivisionError("a bug in the device code")

    monkeypatch.setattr(devices, "choose_samplerate", broken)
    service = AudioService(AudioPipeline(AudioConfig(echo_cancel=False), EventBus()))
    await service.start()
    try:
        with pytest.raises(RuntimeError, match="the audio task 'microphone' ended") as failed:
            await asyncio.wait_for(service.serve(), 5)
        assert isinstance(failed.value.__cause__, ZeroDivisionError)
    finally:
        await service.stop()
