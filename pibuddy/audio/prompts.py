"""Short local sounds (wake chime, error tone) and spoken prompts through espeak-ng; `run_synthesizer` runs
any text-to-speech program that writes a WAV to stdout (espeak-ng here, piper for the local brain).

Spoken prompts arrive as `Say` events on the bus (the activation code, pairing hints); digits are spelled
one by one so "493021" is read as "4 9 3 0 2 1", not as a large number.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import shutil
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np

from pibuddy.audio.errors import AudioError
from pibuddy.audio.playback import Speaker
from pibuddy.events import EventBus, Say

_LOGGER = logging.getLogger(__name__)
_TONE_RATE: Final = 24000
_TONE_AMPLITUDE: Final = 0.3
_EDGE_SECONDS: Final = 0.01
_ESPEAK_TIMEOUT_SECONDS: Final = 10.0


def tone(frequencies: list[float], *, note_seconds: float = 0.09, rate: int = _TONE_RATE) -> np.ndarray:
    """Consecutive sine notes with 10 ms raised edges (no clicks), as int16."""
    t = np.arange(round(note_seconds * rate)) / rate
    edge = min(round(_EDGE_SECONDS * rate), t.size // 2)
    envelope = np.ones(t.size)
    envelope[:edge] = np.linspace(0, 1, edge)
    envelope[t.size - edge:] = np.linspace(1, 0, edge)
    notes = [np.sin(2 * np.pi * f * t) * envelope for f in frequencies]
    return (np.concatenate(notes) * _TONE_AMPLITUDE * 32767).astype(np.int16)


CHIME: Final = tone([880.0, 1320.0])
ERROR_TONE: Final = tone([440.0, 220.0], note_seconds=0.15)
ANNOUNCE_CHIME: Final = tone([660.0, 880.0, 1320.0], note_seconds=0.15)


def spell_digits(text: str) -> str:
    """Space out runs of digits so a speech engine reads them one by one."""
    return re.sub(r"\d{2,}", lambda m: " ".join(m.group()), text)


async def espeak(text: str, voice: str = "en") -> tuple[np.ndarray, int]:
    """Speak `text` with espeak-ng into memory: (int16 samples, rate). Raises AudioError if it cannot."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise AudioError("espeak-ng is not installed (apt install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="pibuddy-espeak-") as home:  # it probes libpulse under $HOME
        return await run_synthesizer([binary, "-v", voice, "--stdout", text], env={"HOME": home},
                                     max_seconds=_ESPEAK_TIMEOUT_SECONDS)


async def run_synthesizer(command: Sequence[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None,
                          max_seconds: float) -> tuple[np.ndarray, int]:
    """Run a text-to-speech program that writes one WAV to stdout: (int16 samples, rate).

    `stdin` is fed to it (None: no input). Raises AudioError naming the program when it fails, runs past
    `max_seconds` (it is killed) or writes no readable WAV.
    """
    name = Path(command[0]).name
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE)
    try:
        wav, err = await asyncio.wait_for(process.communicate(stdin), max_seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AudioError(f"{name} took too long") from None
    if process.returncode != 0:
        raise AudioError(f"{name} failed: {err.decode(errors='replace').strip()[-200:]}")
    try:
        with wave.open(io.BytesIO(wav)) as reader:
            return np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16), reader.getframerate()
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"{name} produced no usable WAV: {exc}") from None


class Prompts:
    """Plays chimes and speaks `Say` events from the bus.

    Args:
        speaker: Where the sounds go.
        voice: espeak-ng voice.
        chime: Whether chime() and error() make a sound at all.
    """

    def __init__(self, speaker: Speaker, *, voice: str = "en", chime: bool = True) -> None:
        self._speaker = speaker
        self._voice = voice
        self._chime = chime

    def chime(self) -> None:
        if self._chime:
            self._speaker.play_pcm(CHIME.tobytes(), _TONE_RATE)

    def error(self) -> None:
        if self._chime:
            self._speaker.play_pcm(ERROR_TONE.tobytes(), _TONE_RATE)

    async def say(self, text: str) -> None:
        """Speak `text` (digits one by one); logs and returns if espeak-ng is unavailable."""
        try:
            samples, rate = await espeak(spell_digits(text), self._voice)
        except AudioError as exc:
            _LOGGER.warning("cannot speak prompt: %s", exc)
            return
        self._speaker.play_pcm(samples.tobytes(), rate)

    async def serve(self, bus: EventBus) -> None:
        """Speak every `Say` event published on `bus`, forever."""
        with bus.subscribe() as subscription:
            async for event in subscription:
                if isinstance(event, Say):
                    if event.chime:  # an announcement or a timer: rung even with the wake chime off
                        self._speaker.play_pcm(ANNOUNCE_CHIME.tobytes(), _TONE_RATE)
                    await self.say(event.text)
