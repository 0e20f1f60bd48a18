"""The speaker volume: PulseAudio/PipeWire through `pactl`, else ALSA through `amixer`, else PiBuddy's own
software gain on its speaker.

The system mixers are driven as subprocesses (no C bindings to install), each with a timeout. Percentages
are the mixers' own: pactl's are linear in the sink volume, `amixer -M` maps them to perceived loudness as
alsamixer does, and the software gain multiplies the samples by percent/100. That gain is the last resort (a
USB speaker without mixer controls, no pactl or amixer): it can only attenuate, and only PiBuddy's own sound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import Final, Protocol

from pibuddy.errors import DriverError

_LOGGER = logging.getLogger(__name__)

_COMMAND_TIMEOUT_SECONDS: Final = 3.0
_PERCENT: Final = re.compile(r"(\d+)%")
# Playback controls worth driving, most general first.
_ALSA_CONTROLS: Final = ("Master", "PCM", "Speaker", "Headphone")


class MixerFailed(Exception):
    """This mixer cannot be used here; the message says why, in one line."""


async def run_command(*argv: str) -> str:
    """Run a command and return its stdout; MixerFailed if it is missing, fails or hangs."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError:
        raise MixerFailed(f"{argv[0]} is not installed") from None
    try:
        async with asyncio.timeout(_COMMAND_TIMEOUT_SECONDS):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        with contextlib.suppress(ProcessLookupError):
            await process.wait()
        raise MixerFailed(f"{argv[0]} did not answer within {_COMMAND_TIMEOUT_SECONDS:g} s") from None
    if process.returncode != 0:
        lines = stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit status {process.returncode}"
        raise MixerFailed(f"{' '.join(argv[:2])}: {reason}")
    return stdout.decode(errors="replace")


def parse_percent(output: str) -> int:
    """The mean of every channel's `NN%` in pactl or amixer output."""
    values = [int(v) for v in _PERCENT.findall(output)]
    if not values:
        raise MixerFailed("no volume percentage in the mixer's answer")
    return round(sum(values) / len(values))


class Mixer(Protocol):
    name: str

    async def get(self) -> int: ...

    async def set(self, percent: int) -> None: ...


class PulseMixer:
    """The default sink of the PulseAudio (or PipeWire-Pulse) server pactl finds through the environment."""

    name = "pulseaudio"

    async def get(self) -> int:
        return parse_percent(await run_command("pactl", "get-sink-volume", "@DEFAULT_SINK@"))

    async def set(self, percent: int) -> None:
        await run_command("pactl", "set-sink-volume", "@DEFAULT_SINK@", f"{percent}%")


class AlsaMixer:
    """The first of Master/PCM/Speaker/Headphone on an ALSA control device."""

    name = "alsa"

    def __init__(self, device: str | None = None) -> None:
        """Args:
        device: an `amixer -D` control device such as `hw:1`; None means the default card.
        """
        self._device = device
        self._control: str | None = None

    async def get(self) -> int:
        return parse_percent(await self._amixer("-M", "sget", await self._find_control()))

    async def set(self, percent: int) -> None:
        await self._amixer("-M", "-q", "sset", await self._find_control(), f"{percent}%")

    async def _find_control(self) -> str:
        if self._control is None:
            listed = await self._amixer("scontrols")
            names = set(re.findall(r"'([^']+)',\d+", listed))
            self._control = next((c for c in _ALSA_CONTROLS if c in names), None)
            if self._control is None:
                raise MixerFailed(f"no playback control named {'/'.join(_ALSA_CONTROLS)}")
        return self._control

    async def _amixer(self, *args: str) -> str:
        device = ("-D", self._device) if self._device else ()
        return await run_command("amixer", *device, *args)


class SoftwareGain(Protocol):
    """What the volume tool needs of PiBuddy's speaker (`audio.playback.Speaker`), so tools/ need not
    import audio/."""

    @property
    def volume(self) -> int: ...

    def set_volume(self, percent: int) -> None: ...


class SpeakerGainMixer:
    """PiBuddy's software gain on its own speaker: 100 % plays the samples as decoded, less scales them."""

    name = "pibuddy"

    def __init__(self, speaker: SoftwareGain) -> None:
        self._speaker = speaker

    async def get(self) -> int:
        return self._speaker.volume

    async def set(self, percent: int) -> None:
        self._speaker.set_volume(percent)


class SystemVolume:
    """Gets and sets the speaker volume with the first mixer that works, trying each on every call (a
    PulseAudio server may come and go while PiBuddy runs)."""

    def __init__(self, mixers: tuple[Mixer, ...] | None = None, *, speaker: SoftwareGain | None = None,
                 on_change: Callable[[int], None] | None = None) -> None:
        """Args:
        mixers: the system mixers in order of preference; default PulseAudio, then ALSA's default card.
        speaker: PiBuddy's own speaker, whose software gain is used when no system mixer works; None (no
            audio pipeline) means the tool reports that no mixer is available.
        on_change: told the new percentage after each successful set (the control layer publishes it).
        """
        self._on_change = on_change
        system = mixers if mixers is not None else (PulseMixer(), AlsaMixer())
        self._fallback = SpeakerGainMixer(speaker) if speaker is not None else None
        self._mixers: tuple[Mixer, ...] = (*system, self._fallback) if self._fallback is not None else system

    async def get_volume(self) -> int:
        """The current volume in percent (0..100, more if PulseAudio is boosted above 100 %)."""
        failures = []
        for mixer in self._mixers:
            try:
                return await mixer.get()
            except MixerFailed as exc:
                failures.append(f"{mixer.name}: {exc}")
        raise _no_mixer(failures)

    async def set_volume(self, percent: int) -> None:
        failures = []
        for mixer in self._mixers:
            try:
                await mixer.set(percent)
            except MixerFailed as exc:
                failures.append(f"{mixer.name}: {exc}")
                continue
            if mixer is self._fallback:
                _LOGGER.debug("system mixers failed: %s", "; ".join(failures))
                _LOGGER.info("speaker volume set to %d%% (%s software gain: no system mixer works)",
                             percent, mixer.name)
            else:
                _LOGGER.info("speaker volume set to %d%% (%s)", percent, mixer.name)
            if self._on_change is not None:
                self._on_change(percent)
            return
        raise _no_mixer(failures)


def _no_mixer(failures: list[str]) -> DriverError:
    """Not an unreachable device (nothing to retry): the sentence itself is what the user hears."""
    _LOGGER.warning("no usable volume control: %s", "; ".join(failures))
    return DriverError("The speaker volume cannot be changed: no sound mixer is available.", code="no_mixer")
