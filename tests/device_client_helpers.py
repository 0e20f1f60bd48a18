"""Helpers for device-client tests: a scripted audio pipeline and a config pointing at the test server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from pibuddy.audio.contract import UPLINK_CLOSED
from pibuddy.config import Config
from tests.peers.opus_audio import OpusFrameDecoder, encode_tone

UPLINK_RATE = 16000


class ScriptedAudio:
    """An `AudioPort` whose microphone plays a 16 kHz tone and whose speaker records what it is given.

    Like the pipeline, it hands out microphone frames only while an uplink is open. With `utterance_frames`,
    an uplink opened with `end_on_silence` ends after that many frames, as if the user then fell silent.
    """

    def __init__(self, *, wake_frames: int = 3, uplink_interval: float = 0.01,
                 utterance_frames: int | None = None) -> None:
        self._tone = encode_tone(40, rate=UPLINK_RATE, freq=300.0)
        self._wake = self._tone[:wake_frames]
        self._next = 0
        self._interval = uplink_interval
        self._utterance_frames = utterance_frames
        self._turn_frames = 0
        self._uplink: ScriptedUplink | None = None
        self.end_on_silence = False
        self.uplink_changes: list[tuple[float, bool]] = []
        """(monotonic time, on) each time the uplink is switched."""
        self.cues: list[str] = []
        """"chime" and "error" in the order they were played."""
        self.played: list[bytes] = []
        self.playback_rates: list[int] = []
        self.stopped_at: list[float] = []
        self.sentences: list[str | None] = []

    def wake_audio(self) -> list[bytes]:
        return list(self._wake)

    @property
    def uplink_active(self) -> bool:
        return self._uplink is not None and self._uplink.end_reason is None

    def open_uplink(self, *, end_on_silence: bool, since_wake: bool = False) -> ScriptedUplink:
        del since_wake  # the scripted microphone holds nothing back
        self.end_on_silence = end_on_silence
        if self._uplink is None:
            self.uplink_changes.append((time.monotonic(), True))
            self._turn_frames = 0
            self._uplink = ScriptedUplink(self)
        return self._uplink

    def close_uplink(self) -> None:
        uplink, self._uplink = self._uplink, None
        if uplink is None:
            return
        if uplink.end_reason is None:  # one that ended by itself was switched off already
            self.uplink_changes.append((time.monotonic(), False))
        uplink.close()

    async def _next_frame(self, uplink: ScriptedUplink) -> bytes | None:
        """The next tone frame of `uplink`, or None once it has ended."""
        await asyncio.sleep(self._interval)
        if uplink.end_reason is not None:
            return None
        if self.end_on_silence and self._turn_frames == self._utterance_frames:
            uplink.end_reason = "silence"  # the stream ended; the client is told once
            return None
        frame = self._tone[self._next % len(self._tone)]
        self._next += 1
        self._turn_frames += 1
        return frame

    def chime(self) -> None:
        self.cues.append("chime")

    def error_tone(self) -> None:
        self.cues.append("error")

    def start_playback(self, sample_rate: int, frame_duration_ms: int) -> None:
        self.playback_rates.append(sample_rate)

    def play(self, opus: bytes) -> None:
        self.played.append(opus)

    def stop_playback(self) -> None:
        self.stopped_at.append(time.monotonic())

    async def wait_drained(self) -> None:
        return

    def speaking_sentence(self, text: str | None) -> None:
        self.sentences.append(text)

    def decoded_playback(self, rate: int) -> list[bytes]:
        """Every played frame decoded at `rate` (raises if one is not valid Opus)."""
        decoder = OpusFrameDecoder(rate=rate)
        return [decoder.decode(frame) for frame in self.played]


class ScriptedUplink:
    """One uplink of `ScriptedAudio`: tone frames until it is closed or the scripted utterance ends."""

    def __init__(self, audio: ScriptedAudio) -> None:
        self.end_reason: str | None = None
        self._audio = audio

    def close(self) -> None:
        if self.end_reason is None:
            self.end_reason = UPLINK_CLOSED

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (frame := await self._audio._next_frame(self)) is not None:
            yield frame


def device_config(tmp_path: Path, ota_url: str, *, microphone: bool = False, **upstream: object) -> Config:
    """microphone: audio on, so in `brain.mode: auto` (the default) a local brain would listen."""
    return Config.model_validate({
        "device": {"state_dir": str(tmp_path / "state"), "device_id": "02:11:22:33:44:55"},
        "audio": {"enabled": microphone},
        "upstream": {"ota_url": ota_url, **upstream},
    })

