"""What a conversation needs from the audio pipeline, as a narrow interface.

`pibuddy.audio` implements it with the microphone and speaker; a headless hub uses `NoAudio`; tests script
it. Opus in both directions: the pipeline owns encoding, decoding, buffering and the devices.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class UtteranceEnded(Exception):
    """`next_uplink_frame` reached the end of the user's utterance on an uplink opened with `end_on_silence`.

    A signal, like StopAsyncIteration, not a PiBuddyError.

    `reason` is the pipeline's `EndReason` value: silence, timeout or no_speech.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AudioPort(Protocol):
    def wake_audio(self) -> list[bytes]:
        """Opus frames (16 kHz, 60 ms) of the pre-roll that holds the wake word, oldest first.

        The microphone audio that follows is kept for the next `set_uplink(True)`, so nothing is lost
        between the pre-roll and the live stream.
        """
        ...

    async def next_uplink_frame(self) -> bytes:
        """The next 60 ms Opus frame from the microphone while the uplink is on (blocks until there is one).

        Raises `UtteranceEnded` once when an uplink opened with `end_on_silence` ends.
        """
        ...

    def set_uplink(self, active: bool, *, end_on_silence: bool = False) -> None:
        """Whether the conversation wants microphone frames now (encode only then).

        end_on_silence: end the stream when the user stops talking, or at the VAD timeout (manual turns).
        """

    def chime(self) -> None:
        """A wake word was answered: play the wake chime (if prompts.chime is on)."""

    def error_tone(self) -> None:
        """A conversation could not be opened: play the error tone (if prompts.chime is on)."""

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

    def set_uplink(self, active: bool, *, end_on_silence: bool = False) -> None:
        del active, end_on_silence

    def chime(self) -> None:
        """No speaker, no chime."""

    def error_tone(self) -> None:
        """No speaker, no tone."""

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
