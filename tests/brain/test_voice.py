"""The local brain's piper voice against a stand-in `piper` program on PATH that behaves like piper-tts 1.3's
command line: text on stdin, the voice's sample rate from the .onnx.json beside the model, and a WAV on
stdout only with `--output_file -` (otherwise it writes output.wav, as the real one does without ffplay)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from pibuddy.audio.errors import AudioError
from pibuddy.brain.errors import BrainUnavailable
from pibuddy.brain.voice import EspeakVoice, PiperVoice, get_voice
from pibuddy.config import BrainConfig

_FAKE_PIPER = """#!{python}
import argparse, json, sys, wave
parser = argparse.ArgumentParser()
parser.add_argument("-m", "--model", required=True)
parser.add_argument("-f", "--output-file", "--output_file")
args = parser.parse_args()
text = sys.stdin.read().strip()
if text == "fail":
    sys.exit("piper: the voice model is broken")
rate = json.load(open(args.model + ".json"))["audio"]["sample_rate"]
out = wave.open(sys.stdout.buffer if args.output_file == "-" else args.output_file or "output.wav", "wb")
out.setnchannels(1)
out.setsampwidth(2)
out.setframerate(rate)
out.writeframes(b"".join(ord(c).to_bytes(2, "little") for c in text))  # one sample per character
out.close()
"""


@pytest.fixture
def piper_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "piper"
    program.write_text(_FAKE_PIPER.format(python=sys.executable))
    program.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.chdir(tmp_path)  # where a misused piper would drop output.wav
    return program


@pytest.fixture
def voice_model(tmp_path: Path) -> Path:
    model = tmp_path / "en_US-test-medium.onnx"
    model.write_bytes(b"onnx")
    Path(f"{model}.json").write_text(json.dumps({"audio": {"sample_rate": 22050}}))
    return model


async def test_text_goes_to_piper_and_its_wav_comes_back(piper_on_path: Path, voice_model: Path,
                                                         tmp_path: Path) -> None:
    voice = get_voice(BrainConfig(piper_voice_path=voice_model), "en")
    assert isinstance(voice, PiperVoice)
    samples, rate = await voice.synthesize("Turned on the 台灯")
    assert rate == 22050
    assert samples.dtype == np.int16
    assert "".join(chr(s) for s in samples) == "Turned on the 台灯"
    assert not (tmp_path / "output.wav").exists()


async def test_a_failing_piper_is_an_audio_error_with_its_reason(piper_on_path: Path, voice_model: Path) -> None:
    voice = get_voice(BrainConfig(piper_voice_path=voice_model), "en")
    with pytest.raises(AudioError, match="piper failed: piper: the voice model is broken"):
        await voice.synthesize("fail")


def test_a_missing_piper_program_is_named(tmp_path: Path, voice_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BrainUnavailable, match="piper_voice_path is set but the piper program is not installed"):
        get_voice(BrainConfig(piper_voice_path=voice_model), "en")


def test_a_missing_voice_model_is_named(piper_on_path: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(BrainUnavailable, match=f"no such voice model {missing}"):
        get_voice(BrainConfig(piper_voice_path=missing), "en")


@pytest.mark.parametrize(("language", "configured", "voice"), [("en-US", None, "en"), ("zh-CN", None, "cmn"),
                                                                ("zh-CN", "cmn-latn-pinyin", "cmn-latn-pinyin")])
def test_espeak_speaks_without_a_piper_model(language: str, configured: str | None, voice: str) -> None:
    chosen = get_voice(BrainConfig(espeak_voice=configured), language)
    assert isinstance(chosen, EspeakVoice)
    assert chosen.voice == voice
