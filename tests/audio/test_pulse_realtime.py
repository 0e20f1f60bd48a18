"""The pipeline in real time through a private PulseAudio: a virtual mic (remap source) and speaker (null sink)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Final

import numpy as np
import pytest

from pibuddy.audio.capture import Microphone
from pibuddy.audio.opus import OpusEncoder
from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.audio.playback import Speaker
from pibuddy.audio.vad import EndReason
from pibuddy.backoff import Backoff
from pibuddy.config import AudioConfig, PlaybackConfig
from pibuddy.events import EventBus, WakeDetected
from tests.audio.conftest import MonitorRecorder, best_lag, play_into_microphone
from tests.peers.opus_audio import OpusFrameDecoder
from tests.peers.pulseaudio import PulseServer
from tests.peers.speech import silence, speech

pytestmark = pytest.mark.peer
_ATTEMPTS: Final = 3


async def _next_wake(pipeline: AudioPipeline, seconds: float) -> WakeDetected:
    return await asyncio.wait_for(anext(aiter(pipeline.wake_events())), seconds)


async def test_wake_word_then_command_goes_up_as_opus_and_okay_google_wakes_nothing(pulse: PulseServer) -> None:
    negative = speech("okay google, turn on the lights", pad=0.5)
    wake = speech("okay nahboo", pad=0.3)
    command = speech("what is the weather like today", pad=0.1)
    spoken = np.concatenate([silence(1.0), negative, wake, silence(0.4), command, silence(1.5)])
    bus = EventBus()
    with bus.subscribe() as events:
        async with AudioPipeline(AudioConfig(), bus) as pipeline:
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(pipeline.microphone.opened.wait(), 5)
            started = loop.time()
            player = asyncio.create_task(play_into_microphone(pulse, spoken))
            event = await _next_wake(pipeline, 10)
            woke_after = loop.time() - started
            uplink = pipeline.uplink_opus(preroll=True, end_on_silence=True)
            packets = [p async for p in _bounded(uplink, 8.0)]
            await player
        published = [e for e in _drain(events) if isinstance(e, WakeDetected)]
    assert (event.wake_word, published) == ("Okay Nabu", [event])
    assert event.score > 0.85
    assert -40 < event.loudness_dbfs < 0
    wake_start = 1.0 + negative.size / 16000
    wake_end = wake_start + wake.size / 16000
    assert wake_start + 0.3 < woke_after < wake_end + 0.5  # during "okay nahboo", not "okay google"
    assert uplink.end_reason is EndReason.SILENCE
    decoder = OpusFrameDecoder()
    heard = np.frombuffer(b"".join(decoder.decode(p) for p in packets), dtype=np.int16)
    for part in (wake, command):  # the pre-roll carried the wake word, then the command followed live
        _, correlation = best_lag(part, heard)
        assert correlation > 0.6


async def _bounded(uplink, seconds: float):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        async for packet in uplink:
            yield packet


def _drain(subscription) -> list:  # type: ignore[no-untyped-def]
    found = []
    while not subscription.queue.empty():
        found.append(subscription.queue.get_nowait())
    return found


def _tts_packets(rate: int = 24000) -> tuple[list[bytes], np.ndarray]:
    pcm = speech("the weather today is sunny and warm with a light breeze", rate=rate, pad=0.2)
    frame = rate * 60 // 1000
    encoder = OpusEncoder(sample_rate=rate, complexity=10, dtx=False)
    return [encoder.encode(pcm[i:i + frame].tobytes()) for i in range(0, pcm.size - frame + 1, frame)], pcm


async def _send_like_a_server(pipeline: AudioPipeline, packets: list[bytes], *, seed: int = 3) -> None:
    """5 packets at once, then one per 60 ms with 0-3 ms jitter and 5% of packets 100 ms late."""
    rng = np.random.default_rng(seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    due = sorted([0.0] * 5 + [(i - 4) * 0.06 + rng.uniform(0, 0.003) + (0.1 if rng.random() < 0.05 else 0.0)
                              for i in range(5, len(packets))])
    for packet, at in zip(packets, due, strict=True):
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        pipeline.play_opus(packet)


def _longest_quiet(samples: np.ndarray, rate: int, threshold: int = 100) -> float:
    loud = np.nonzero(np.abs(samples) > threshold)[0]
    inner = np.diff(loud) if loud.size > 1 else np.array([0])
    return float(inner.max()) / rate


@dataclass(frozen=True)
class _Downlink:
    drained_after: float
    """Seconds from the first packet to `wait_drained()` returning."""
    recorded: np.ndarray
    """The speaker's sink monitor, 24 kHz."""
    underruns: int
    starved: int


async def _play_downlink(pulse: PulseServer, packets: list[bytes]) -> _Downlink:
    async with MonitorRecorder(pulse, rate=24000) as recorder, AudioPipeline(AudioConfig()) as pipeline:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await _send_like_a_server(pipeline, packets)
        await asyncio.wait_for(pipeline.wait_drained(), 10)
        drained_after = loop.time() - started
        assert not pipeline.speaker.playing
        assert pipeline.speaker.unheard_seconds == 0  # the device's own clock says the last sample was played
        await asyncio.sleep(0.3)
    return _Downlink(drained_after, recorder.samples(), pipeline.speaker.underruns, pipeline.speaker.starved)


async def test_downlink_plays_through_jitter_without_gaps_and_drains(pulse: PulseServer) -> None:
    """What the jitter buffer does with a server's jitter: no gap, nothing lost or reordered, drained on time.

    A run in which the speaker reports it was starved (the sound card, or its ring, ran dry although the audio
    was at hand, because the machine did not run PiBuddy in time: ALSA's "underrun occurred", seen with
    another test suite on the same 2 cores) measured the machine, not the jitter buffer: it is played again,
    up to `_ATTEMPTS` times. The run that counts must be gapless and is checked sample by sample."""
    packets, source = _tts_packets()
    runs = [await _play_downlink(pulse, packets)]
    while runs[-1].starved and len(runs) < _ATTEMPTS:
        runs.append(await _play_downlink(pulse, packets))
    run = runs[-1]
    assert not run.starved, f"the speaker was starved in each of {_ATTEMPTS} runs: {[r.starved for r in runs]}"
    duration = len(packets) * 0.06
    # Never reported before the audio was played, nor later than the jitter buffer's ceiling (0.4 s) allows.
    assert duration - 0.05 < run.drained_after < duration + 0.6
    assert run.underruns == 0
    loud = np.nonzero(np.abs(run.recorded) > 100)[0]
    played = run.recorded[loud[0]:loud[-1] + 1].astype(float)
    # A fresh stream into a null sink loses its first few hundred ms before the monitor shows it
    # (reference §4.3 measured 0.55 s); find where the recording starts within the source.
    offset, correlation = best_lag(played[:24000], source)
    assert correlation > 0.9
    assert offset / 24000 < 0.6
    expected = source[offset:offset + played.size].astype(float)
    assert np.corrcoef(played[:expected.size], expected)[0, 1] > 0.9  # the rest, in order, undistorted
    source_loud = np.nonzero(np.abs(source) > 100)[0]
    assert played.size > source_loud[-1] - source_loud[0] - 0.6 * 24000
    assert _longest_quiet(played, 24000) <= _longest_quiet(source, 24000) + 0.12


async def test_a_machine_too_busy_to_run_pibuddy_is_counted_as_starved_not_as_the_networks_lateness(
        pulse: PulseServer, caplog: pytest.LogCaptureFixture) -> None:
    """This process stopped (SIGSTOP) for 0.4 s mid-reply, longer than the sound card's and the ring's buffers:
    the gap is counted and said in one warning, and the reply still plays to its end and drains."""
    packets, _ = _tts_packets()
    stopper = f"sleep 1.5; kill -STOP {os.getpid()}; sleep 0.4; kill -CONT {os.getpid()}"
    async with AudioPipeline(AudioConfig()) as pipeline:
        stalls = await asyncio.create_subprocess_exec("sh", "-c", stopper)
        await _send_like_a_server(pipeline, packets)
        await asyncio.wait_for(pipeline.wait_drained(), 10)
        assert await asyncio.wait_for(stalls.wait(), 5) == 0
        starved = pipeline.speaker.starved
    assert starved >= 1
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "a gap was heard" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "the sound card ran dry" in warnings[0] or "the playout task came late" in warnings[0]


async def test_wake_word_during_playback_and_barge_in_silences_within_300_ms(pulse: PulseServer) -> None:
    rate = 24000
    encoder = OpusEncoder(sample_rate=rate, complexity=5, dtx=False)
    t = np.arange(rate * 6) / rate
    tone = (np.sin(2 * np.pi * 330 * t) * 9000).astype(np.int16)
    packets = [encoder.encode(tone[i:i + 1440].tobytes()) for i in range(0, tone.size, 1440)]
    async with MonitorRecorder(pulse, rate=16000) as recorder, AudioPipeline(AudioConfig()) as pipeline:
        await asyncio.wait_for(pipeline.microphone.opened.wait(), 5)
        pipeline.set_speaking("Here is a long answer about the weather.")
        sender = asyncio.create_task(_send_like_a_server(pipeline, packets))
        player = asyncio.create_task(play_into_microphone(pulse, speech("okay nahboo", pad=1.0)))
        event = await _next_wake(pipeline, 8)
        assert pipeline.speaker.playing
        stopped_at = asyncio.get_running_loop().time()
        sender.cancel()  # the device client drops downlink audio after abort
        pipeline.stop_playback()
        await asyncio.wait_for(pipeline.wait_drained(), 1)
        pipeline.set_speaking(None)
        await asyncio.sleep(0.6)
        await player
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    assert event.wake_word == "Okay Nabu"
    assert recorder.last_sound_arrival() - stopped_at < 0.3


async def test_microphone_is_reopened_when_it_stops_delivering(pulse: PulseServer) -> None:
    async with Microphone(backoff=Backoff(initial=0.2, maximum=0.5)) as microphone:
        await asyncio.wait_for(microphone.read(), 5)
        await pulse.pactl("suspend-source", pulse.mic_source or "", "1")  # the device stops delivering
        await asyncio.sleep(0.1)
        microphone.drain()
        async with asyncio.timeout(8):
            while microphone.open_count < 2:  # noqa: ASYNC110 (the watchdog noticed and reopened)
                await asyncio.sleep(0.1)
        await pulse.pactl("suspend-source", pulse.mic_source or "", "0")  # "plugged back in"
        frame = await asyncio.wait_for(microphone.read(), 3)
        assert len(frame.pcm) == 960
        assert microphone.opened.is_set()


async def test_an_echo_cancel_source_is_captured_from_when_present(pulse: PulseServer,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    await pulse.pactl("load-module", "module-echo-cancel", "source_name=ec_mic", f"source_master={pulse.mic_source}",
                      f"sink_master={pulse.sink}", "aec_method=null")
    monkeypatch.delenv("PULSE_SOURCE")  # what a real session has: no override, so the default would be used
    async with Microphone() as microphone:
        frame = await asyncio.wait_for(microphone.read(), 5)
        assert microphone.echo_cancelled
    assert os.environ["PULSE_SOURCE"] == "ec_mic"
    assert len(frame.pcm) == 960


async def _sink_of_the_only_client_stream(pulse: PulseServer) -> str | None:
    """The sink the one client's playback stream plays to, if there is one (modules' own streams, such as the
    echo canceller's to its master sink, do not count)."""
    streams = [line.split("\t") for line in (await pulse.pactl("list", "short", "sink-inputs")).splitlines()]
    clients = [stream for stream in streams if stream[3] == "protocol-native.c"]
    sinks = dict(line.split("\t")[:2] for line in (await pulse.pactl("list", "short", "sinks")).splitlines())
    return sinks.get(clients[0][1]) if len(clients) == 1 else None


async def test_with_an_echo_cancel_module_the_speaker_plays_to_its_sink_the_cancellers_reference(
        pulse: PulseServer, monkeypatch: pytest.MonkeyPatch) -> None:
    await pulse.pactl("load-module", "module-echo-cancel", "source_name=ec_mic", "sink_name=ec_speaker",
                      f"source_master={pulse.mic_source}", f"sink_master={pulse.sink}", "aec_method=null")
    monkeypatch.delenv("PULSE_SINK")  # a real session: no override, so the hardware sink would be used
    tone = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16)
    async with Speaker(config=PlaybackConfig(idle_close_seconds=5), echo_cancel=True) as speaker:
        speaker.play_pcm(tone.tobytes(), 16000)
        played_to = None
        async with asyncio.timeout(5):
            while played_to is None:
                played_to = await _sink_of_the_only_client_stream(pulse)
                await asyncio.sleep(0.05)
        await asyncio.wait_for(speaker.wait_drained(), 5)
    assert played_to == "ec_speaker", "the canceller must hear what PiBuddy plays"
    assert os.environ["PULSE_SINK"] == "ec_speaker"


async def test_an_uplink_opened_late_since_the_wake_holds_the_whole_command_and_ends_it(pulse: PulseServer) -> None:
    """A turn that opens its uplink only after the command was said (the server was tried for 2 s first) gets
    the command from the pre-roll ring, not the wake word, through the VAD, which ends it there."""
    wake = speech("okay nahboo", pad=0.3)
    command = speech("turn on the big lamp", pad=0.1)
    async with AudioPipeline(AudioConfig(), EventBus()) as pipeline:
        await asyncio.wait_for(pipeline.microphone.opened.wait(), 5)
        woken = asyncio.create_task(_next_wake(pipeline, 10))
        await play_into_microphone(pulse, np.concatenate([silence(1.0), wake]))
        await woken
        await play_into_microphone(pulse, np.concatenate([command, silence(1.0)]))  # all said and done
        uplink = pipeline.uplink_opus(preroll=False, end_on_silence=True, since_wake=True)
        packets = [p async for p in _bounded(uplink, 1.0)]  # nothing live is needed: it ended in the ring
    assert uplink.end_reason is EndReason.SILENCE
    decoder = OpusFrameDecoder()
    heard = np.frombuffer(b"".join(decoder.decode(p) for p in packets), dtype=np.int16)
    assert best_lag(command, heard)[1] > 0.8, "the whole command"
    assert best_lag(wake, heard)[1] < 0.5, "not the wake word"
