"""Test audio made at test time: espeak-ng speech and sox noise, as 16-bit mono numpy arrays.

espeak-ng's robotic voice is what the wake-word engines were measured with when they were chosen; "okay nahboo" is
spelled so that espeak says "nabu". Every clip is padded with silence (PulseAudio drops ~0.5 s at start).
Skips the calling test when espeak-ng or sox is missing.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

_TIMEOUT_SECONDS = 30


def _tools() -> None:
    for tool, package in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install {package})")


@functools.cache
def _quiet_home() -> str:
    return tempfile.mkdtemp(prefix="pibuddy-espeak-")  # espeak-ng opens libpulse even when writing a file


@functools.cache
def speech(text: str, voice: str = "en-us", *, rate: int = 16000, pad: float = 1.0, speed: int = 150) -> np.ndarray:
    """`text` spoken by espeak-ng, resampled to `rate`, normalised to -3 dBFS, `pad` s of silence both sides."""
    _tools()
    # No sound server: espeak-ng opens libpulse even when writing a file, and how that went (a fresh HOME, a test's
    # PulseAudio) changed what its voice variants (+f3) drew from rand(): the same sentence came out different on
    # each run, and the recogniser heard it right on one and wrong on the next.
    env = {**os.environ, "HOME": _quiet_home(), "PULSE_SERVER": "unix:/nonexistent"}
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True,
                         check=True, env=env, timeout=_TIMEOUT_SECONDS).stdout
    # -R: sox dithers when it resamples, with fresh random bits each run unless told not to; the recogniser's
    # result moved with them (the same sentence heard right on one run and not the next).
    raw = subprocess.run(["sox", "-R", "-t", "wav", "-", "-t", "raw", "-r", str(rate), "-c", "1", "-b", "16", "-e",
                          "signed", "-", "pad", str(pad), str(pad), "norm", "-3"], input=wav, capture_output=True,
                         check=True, timeout=_TIMEOUT_SECONDS).stdout
    return np.frombuffer(raw, dtype=np.int16)


def television(text: str) -> np.ndarray:
    """Another voice, far away and muffled over a rumble: a television in the next room."""
    far = speech(text, "en-gb", pad=0.5, speed=170).astype(np.float64) * 0.15
    return far + noise("brownnoise", far.size / 16000 + 0.1, volume=0.05)[:far.size]


@functools.cache
def noise(kind: str, seconds: float, *, volume: float = 0.3, rate: int = 16000) -> np.ndarray:
    """sox `synth` noise: whitenoise, pinknoise or brownnoise; `-R` makes it the same on every run."""
    _tools()
    raw = subprocess.run(["sox", "-R", "-n", "-t", "raw", "-r", str(rate), "-c", "1", "-b", "16", "-e", "signed", "-",
                          "synth", str(seconds), kind, "vol", str(volume)], capture_output=True, check=True,
                         timeout=_TIMEOUT_SECONDS).stdout
    return np.frombuffer(raw, dtype=np.int16)


def cough(rate: int = 16000) -> np.ndarray:
    """A cough-like burst: 0.25 s of loud pink noise with a sharp attack and an exponential decay."""
    burst = noise("pinknoise", 0.25, volume=0.9, rate=rate).astype(np.float64)
    envelope = np.exp(-np.arange(burst.size) / (0.06 * rate))
    return (burst * envelope).astype(np.int16)


def silence(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.int16)


def frames(samples: np.ndarray, frame_samples: int = 480) -> list[bytes]:
    """Whole frames of `samples` (the tail shorter than a frame is dropped)."""
    return [samples[i:i + frame_samples].tobytes() for i in range(0, samples.size - frame_samples + 1, frame_samples)]
