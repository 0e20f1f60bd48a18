"""Helpers for device-client tests: a scripted audio pipeline and a config pointing at the test server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pibuddy.audio.contract import UtteranceEnded
from pibuddy.config import Config
from tests.peers.opus_audio import OpusFrameDecoder, encode_tone

UPLINK_RATE = 16000


class ScriptedAudio:
    """An `AudioPort` whose microphone plays a 16 kHz tone and whose speaker records what it is given.

    Like the pipeline, it hands out microphone frames only while the uplink is on. With `utterance_frames`,
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
        self._uplink_on = asyncio.Event()
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
        return self._uplink_on.is_set()

    async def next_uplink_frame(self) -> bytes:
        await asyncio.sleep(self._interval)
        await self._uplink_on.wait()
        if self.end_on_silence and self._turn_frames == self._utterance_frames:
            self._uplink_on.clear()  # the stream ended; the client is told once
            raise UtteranceEnded("silence")
        frame = self._tone[self._next % len(self._tone)]
        self._next += 1
        self._turn_frames += 1
        return frame

    def set_uplink(self, active: bool, *, end_on_silence: bool = False) -> None:
        self.end_on_silence = end_on_silence
        if active is self.uplink_active:
            return
        self.uplink_changes.append((time.monotonic(), active))
        self._turn_frames = 0
        if active:
            self._uplink_on.set()
        else:
            self._uplink_on.clear()

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


def device_config(tmp_path: Path, ota_url: str, **upstream: object) -> Config:
    return Config.model_validate({
        "device": {"state_dir": str(tmp_path / "state"), "device_id": "02:11:22:33:44:55"},
        "audio": {"enabled": False},
        "upstream": {"ota_url": ota_url, **upstream},
    })

