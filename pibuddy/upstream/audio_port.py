"""What a conversation needs from the audio pipeline, as a narrow interface.

`pibuddy.audio` implements it with the microphone and speaker; a headless hub uses `NoAudio`; tests script
it. Opus in both directions: the pipeline owns encoding, decoding, buffering and the devices.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class AudioPort(Protocol):
    def wake_audio(self) -> list[bytes]:
        """Opus frames (16 kHz, 60 ms) of the pre-roll that holds the wake word, oldest first."""
        ...

    async def next_uplink_frame(self) -> bytes:
        """The next 60 ms Opus frame from the microphone (blocks until there is one)."""
        ...

    def set_uplink(self, active: bool) -> None:
        """Whether the conversation wants microphone frames now (encode only then)."""

    def start_playback(self, sample_rate: int, frame_duration_ms: int) -> None:
        """A new reply begins: decode what follows at this rate."""

    def play(self, opus: bytes) -> None:
        """Queue one downlink Opus frame (never blocks; drops when the buffer is full)."""

    def stop_playback(self) -> None:
        """Barge-in: fall silent at once and forget what is buffered."""

    async def wait_drained(self) -> None:
        """Return once everything queued has been played."""
        ...

    def speaking_sentence(self, text: str | None) -> None:
        """The sentence being spoken (the wake-word guard raises its threshold if it names the wake word)."""


class NoAudio:
    """A buddy without microphone or speaker (a headless hub): no uplink, downlink discarded."""

    def wake_audio(self) -> list[bytes]:
        return []

    async def next_uplink_frame(self) -> bytes:
        await asyncio.Event().wait()  # there is never a microphone frame
        raise AssertionError("unreachable")

    def set_uplink(self, active: bool) -> None:
        del active

    def start_playback(self, sample_rate: int, frame_duration_ms: int) -> None:
        del sample_rate, frame_duration_ms

    def play(self, opus: bytes) -> None:
        del opus

    def stop_playback(self) -> None:
        """Nothing ever plays."""

    async def wait_drained(self) -> None:
        return

    def speaking_sentence(self, text: str | None) -> None:
        del text
