"""Pure pieces of the audio pipeline, fed synthetic frames and explicit time (no sound devices)."""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pytest

from pibuddy.audio import devices
from pibuddy.audio.errors import CodecError
from pibuddy.audio.frames import FRAME_SECONDS, Frame, PreRoll, Rechunker, loudness_dbfs
from pibuddy.audio.jitter import JitterBuffer, Phase
from pibuddy.audio.opus import OpusDecoder, OpusEncoder
from pibuddy.audio.prompts import CHIME, spell_digits
from pibuddy.audio.uplink import STOPPED, UplinkStream
from pibuddy.audio.vad.segmenter import EndOfUtterance, EndReason
from pibuddy.audio.wakeword.base import Detection
from pibuddy.audio.wakeword.gate import WakeGate


def _tone(samples: int, rate: int = 16000, freq: float = 440.0) -> bytes:
    return (np.sin(2 * np.pi * freq * np.arange(samples) / rate) * 8000).astype(np.int16).tobytes()


def test_rechunker_cuts_fixed_pieces_and_keeps_the_remainder() -> None:
    chunker = Rechunker(512)
    data = np.arange(480 * 3, dtype=np.int16).tobytes()
    out = chunker.push(data[:960]) + chunker.push(data[960:])
    assert [len(c) for c in out] == [1024, 1024]
    assert b"".join(out) == data[:2048]
    assert chunker.push(np.zeros(64, np.int16).tobytes()) == []
    assert chunker.push(np.zeros(32, np.int16).tobytes())[0][:2 * 416] == data[2048:]


def test_preroll_keeps_the_newest_seconds_and_hands_them_out_once() -> None:
    ring = PreRoll(0.3)  # 10 frames
    for i in range(25):
        ring.append(Frame(bytes([i]) * 960, i))
    assert ring.recent(2) == bytes([23]) * 960 + bytes([24]) * 960
    taken = ring.take(since=20)
    assert [p[0] for p in taken] == [20, 21, 22, 23, 24]
    assert ring.take(since=0) == []


def test_loudness() -> None:
    assert loudness_dbfs(bytes(960)) == -120.0
    full_scale_square = np.array([32767, -32767] * 240, dtype=np.int16).tobytes()
    assert loudness_dbfs(full_scale_square) == pytest.approx(0.0, abs=0.01)
    assert loudness_dbfs(_tone(480)) == pytest.approx(20 * np.log10(8000 / 32768 / np.sqrt(2)), abs=0.3)


# ---- end of utterance ---------------------------------------------------------------------------------
def _run(segmenter: EndOfUtterance, pattern: list[tuple[float, bool]]) -> tuple[EndReason | None, float]:
    for seconds, speech in pattern:
        for _ in range(round(seconds / FRAME_SECONDS)):
            reason = segmenter.process(FRAME_SECONDS, speech)
            if reason is not None:
                return reason, segmenter.elapsed
    return None, segmenter.elapsed


def test_utterance_ends_after_the_configured_silence() -> None:
    reason, at = _run(EndOfUtterance(), [(0.5, False), (1.2, True), (0.3, False), (0.3, True), (2.0, False)])
    assert reason is EndReason.SILENCE
    assert at == pytest.approx(0.5 + 1.2 + 0.3 + 0.3 + 0.7, abs=0.031)  # the 0.3 s pause did not end it


def test_short_noise_does_not_start_an_utterance_and_quiet_times_out_as_no_speech() -> None:
    segmenter = EndOfUtterance(timeout_seconds=3.0)
    reason, at = _run(segmenter, [(0.24, True), (0.06, False)] * 20)
    assert not segmenter.started
    assert (reason, at) == (EndReason.NO_SPEECH, pytest.approx(3.0, abs=0.031))


def test_endless_talking_times_out() -> None:
    reason, at = _run(EndOfUtterance(timeout_seconds=15.0), [(20.0, True)])
    assert (reason, at) == (EndReason.TIMEOUT, pytest.approx(15.0, abs=0.031))


# ---- wake gate ----------------------------------------------------------------------------------------
def _hit(score: float, phrase: str = "Okay Nabu") -> Detection:
    return Detection("okay_nabu", phrase, score, 0.85)


def test_refractory_period_blocks_repeats() -> None:
    gate = WakeGate(refractory_seconds=2.0)
    assert gate.accept(_hit(0.9), now=10.0)
    assert not gate.accept(_hit(0.99), now=11.9)
    assert gate.accept(_hit(0.9), now=12.1)


def test_threshold_rises_while_speaking_and_more_when_the_sentence_says_the_wake_word() -> None:
    gate = WakeGate(refractory_seconds=0.0, speaking_raise=0.5, echo_raise=0.9)
    gate.set_speaking("The weather is sunny.")
    assert gate.threshold(_hit(0.9)) == pytest.approx(0.925)
    assert not gate.accept(_hit(0.92), now=1.0)
    assert gate.accept(_hit(0.93), now=2.0)
    gate.set_speaking("You can say: OKAY, nabu! to wake me.")
    assert gate.threshold(_hit(0.9)) == pytest.approx(0.985)
    assert not gate.accept(_hit(0.98), now=3.0)
    gate.set_speaking(None)
    assert gate.accept(_hit(0.86), now=4.0)


def test_a_yes_no_engine_is_refused_only_while_the_reply_says_its_phrase() -> None:
    gate = WakeGate(refractory_seconds=0.0)
    heard = Detection("hey buddy", "hey buddy", 1.0, 0.0, graded=False)  # pocketsphinx: no score to raise
    gate.set_speaking("Say hey buddy when you need me.")
    assert not gate.accept(heard, now=1.0), "its own voice saying the phrase"
    gate.set_speaking("The weather is sunny.")
    assert gate.accept(heard, now=2.0), "barge-in over another sentence still works"


# ---- jitter buffer ------------------------------------------------------------------------------------
class _Device:
    """A speaker that plays queued seconds in real time, for driving the jitter buffer in simulated time."""

    def __init__(self) -> None:
        self.queued = 0.0
        self.gap_seconds = 0.0
        self.started = False

    def advance(self, dt: float) -> None:
        if self.started and self.queued < dt:
            self.gap_seconds += dt - self.queued
        self.queued = max(0.0, self.queued - dt)


def _simulate(arrivals: list[float], buffer: JitterBuffer, until: float, step: float = 0.005) -> _Device:
    device, now, pending = _Device(), 0.0, sorted(arrivals)
    while now < until:
        while pending and pending[0] <= now:
            buffer.push(b"x", now)
            pending.pop(0)
        if not pending and buffer.empty and not buffer.ended:
            buffer.end()
        released = buffer.release(now, device.queued)
        device.queued += len(released) * buffer.frame_seconds
        device.started = device.started or bool(released)
        if buffer.ended and buffer.empty and device.queued == 0:
            device.started = False  # the stream is over: silence is not a gap
        device.advance(step)
        now += step
    return device


def test_playback_waits_for_the_target_then_absorbs_late_packets() -> None:
    buffer = JitterBuffer(frame_seconds=0.06, target_seconds=0.12)
    assert buffer.push(b"a", 0.0)
    assert buffer.release(0.0, 0.0) == []
    assert buffer.phase is Phase.BUFFERING
    buffer.push(b"b", 0.06)
    assert buffer.release(0.06, 0.0) == []
    buffer.push(b"c", 0.12)
    assert buffer.release(0.12, 0.0) == [b"a", b"b", b"c"]  # target (120 ms) + the frame being played
    rng = np.random.default_rng(7)
    # 100 packets paced at 60 ms with 0-3 ms jitter, and 5% of them 100 ms late (less than the target).
    arrivals = [i * 0.06 + rng.uniform(0, 0.003) + (0.1 if rng.random() < 0.05 else 0.0) for i in range(100)]
    buffer = JitterBuffer(frame_seconds=0.06, target_seconds=0.12)
    device = _simulate(arrivals, buffer, until=7.0)
    assert buffer.underruns == 0
    assert device.gap_seconds < 1e-9
    assert buffer.empty


def test_an_underrun_grows_the_target_up_to_its_ceiling_and_stability_shrinks_it() -> None:
    arrivals = [i * 0.06 for i in range(20)] + [1.2 + 0.3 + i * 0.06 for i in range(20)]  # a 300 ms stall
    buffer = JitterBuffer(frame_seconds=0.06, target_seconds=0.12, max_target_seconds=0.4)
    _simulate(arrivals, buffer, until=3.0)
    assert buffer.underruns == 1
    assert buffer.target_seconds == pytest.approx(0.18)
    for _ in range(5):
        buffer._underrun(now=0.0)
    assert buffer.target_seconds == pytest.approx(0.4)
    buffer.push(b"x", 0.0)
    buffer.phase = Phase.PLAYING
    buffer.release(now=10.0, queued_seconds=1.0)
    assert buffer.target_seconds == pytest.approx(0.34)


def test_full_buffer_drops_newest_end_flushes_and_clear_forgets() -> None:
    buffer = JitterBuffer(max_packets=3, target_seconds=1.0)
    assert [buffer.push(bytes([i]), 0.0) for i in range(4)] == [True, True, True, False]
    assert buffer.dropped == 1
    assert buffer.release(0.0, 0.0) == []  # 180 ms < 1 s target
    buffer.end()
    assert buffer.release(0.0, 0.0) == [b"\x00", b"\x01", b"\x02"]
    buffer.push(b"n", 1.0)
    buffer.clear()
    assert buffer.empty
    assert buffer.phase is Phase.BUFFERING


# ---- opus -----------------------------------------------------------------------------------------------
def test_opus_round_trip_and_rejections() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder(sample_rate=16000)
    pcm = _tone(960 * 5)
    packets = [encoder.encode(pcm[i:i + 1920]) for i in range(0, len(pcm), 1920)]
    decoded = np.frombuffer(b"".join(decoder.decode(p) for p in packets), np.int16).astype(float)
    source = np.frombuffer(pcm, np.int16).astype(float)
    lag = int(np.argmax([np.dot(source[1000:4000], decoded[1000 + k:4000 + k]) for k in range(0, 400)]))
    assert np.corrcoef(source[1000:4000], decoded[1000 + lag:4000 + lag])[0, 1] > 0.95
    with pytest.raises(CodecError, match="960 samples"):
        encoder.encode(pcm[:100])
    for bad in (b"", b"\xff" * 9, b"\x00" * 5000):
        with pytest.raises(CodecError):
            decoder.decode(bad)
    with pytest.raises(CodecError):  # 60 ms packet into a decoder told frames are 20 ms
        OpusDecoder(sample_rate=16000, frame_ms=20).decode(packets[0])
    assert len(decoder.conceal()) == 1920


def test_uplink_stream_drops_oldest_and_delivers_queued_packets_before_ending() -> None:
    async def scenario() -> tuple[list[bytes], object]:
        stream = UplinkStream(OpusEncoder(), max_packets=3, end_on_silence=False)
        for i in range(5):
            stream.feed(_tone(960, freq=300 + 100 * i))
        stream.stop()
        return [p async for p in stream], stream.end_reason

    packets, reason = asyncio.run(scenario())
    assert len(packets) == 3
    assert reason == STOPPED


def test_prompts_are_click_free_and_codes_are_spelled() -> None:
    assert abs(int(CHIME[0])) < 50
    assert abs(int(CHIME[-1])) < 500
    assert spell_digits("Your code is 493021.") == "Your code is 4 9 3 0 2 1."
    assert spell_digits("room 7") == "room 7"


# ---- echo canceller routing ---------------------------------------------------------------------------
def test_the_echo_canceller_variable_is_set_followed_and_taken_back_but_a_users_own_is_never_touched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULSE_SOURCE", raising=False)
    assert devices.follow_echo_canceller("PULSE_SOURCE", "alsa_input.echo-cancel")
    assert os.environ["PULSE_SOURCE"] == "alsa_input.echo-cancel"
    assert devices.follow_echo_canceller("PULSE_SOURCE", "echo-cancel-source")  # renamed (PipeWire restarted)
    assert os.environ["PULSE_SOURCE"] == "echo-cancel-source"
    assert not devices.follow_echo_canceller("PULSE_SOURCE", None)  # the canceller is gone
    assert "PULSE_SOURCE" not in os.environ, "back to the plain default device"

    monkeypatch.setenv("PULSE_SOURCE", "my_usb_mic")  # the user's choice
    assert not devices.follow_echo_canceller("PULSE_SOURCE", "echo-cancel-source")
    assert not devices.follow_echo_canceller("PULSE_SOURCE", None)
    assert os.environ["PULSE_SOURCE"] == "my_usb_mic"
