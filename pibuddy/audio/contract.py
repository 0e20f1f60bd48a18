"""What a conversation needs from the audio pipeline, as a narrow interface.

`pibuddy.audio` implements it with the microphone and speaker (`audio/port.py`); a headless hub uses
`NoAudio`; tests script it. Opus in both directions: the pipeline owns encoding, decoding, buffering and the
devices. Wake words are not part of it: the pipeline publishes them on the bus (`WakeDetected`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final, Protocol

UPLINK_CLOSED: Final = "stopped"
"""`Uplink.end_reason` when the uplink was closed or replaced, rather than ended by the user falling silent."""


class Uplink(Protocol):
    """One turn of microphone audio going up: 16 kHz 60 ms Opus frames, read with `async for`.

    Iteration ends when the uplink is closed (`AudioPort.close_uplink`, or another uplink replaces it) or,
    when opened with `end_on_silence`, at the end of the user's utterance. `end_reason` then says why: the
    pipeline's `EndReason` (silence, timeout, no_speech), "muted", or `UPLINK_CLOSED`.
    """

    @property
    def end_reason(self) -> str | None: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class AudioPort(Protocol):
    def wake_audio(self) -> list[bytes]:
        """Opus frames (16 kHz, 60 ms) of the pre-roll that holds the wake word, oldest first.

        The microphone audio that follows is kept for the next `open_uplink`, so nothing is lost between
        the pre-roll and the live stream.
        """
        ...

    def open_uplink(self, *, end_on_silence: bool, since_wake: bool = False) -> Uplink:
        """The microphone from now on, until `close_uplink` (encoding happens only while one is open).

        Calling it again while the uplink is open returns the same one with `end_on_silence` updated.
        end_on_silence: end the stream when the user stops talking, or at the VAD timeout (manual turns).
        since_wake: a new uplink that starts with what was said after the last wake word or button press
            (the wake word itself left out): a turn that opens late, after the server did not answer, still
            gets the whole command.
        """
        ...

    def close_uplink(self) -> None:
        """The conversation wants no microphone audio now: the open uplink, if any, ends."""

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


class _NoUplink:
    """A microphone that is never there: the stream is over before it starts."""

    end_reason = UPLINK_CLOSED

    async def __aiter__(self) -> AsyncIterator[bytes]:
        return
        yield  # an async generator that yields nothing


class NoAudio:
    """A buddy without microphone or speaker (a headless hub): no uplink, downlink discarded."""

    def wake_audio(self) -> list[bytes]:
        return []

    def open_uplink(self, *, end_on_silence: bool, since_wake: bool = False) -> Uplink:
        del end_on_silence, since_wake
        return _NoUplink()

    def close_uplink(self) -> None:
        """No microphone, nothing to close."""

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
