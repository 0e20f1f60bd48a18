"""Helpers for device-client tests: a scripted audio pipeline and a config pointing at the test server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pibuddy.config import Config
from tests.peers.opus_audio import OpusFrameDecoder, encode_tone

UPLINK_RATE = 16000


class ScriptedAudio:
    """An `AudioPort` whose microphone plays a 16 kHz tone and whose speaker records what it is given."""

    def __init__(self, *, wake_frames: int = 3, uplink_interval: float = 0.01) -> None:
        self._tone = encode_tone(40, rate=UPLINK_RATE, freq=300.0)
        self._wake = self._tone[:wake_frames]
        self._next = 0
        self._interval = uplink_interval
        self.uplink_active = False
        self.played: list[bytes] = []
        self.playback_rates: list[int] = []
        self.stopped_at: list[float] = []
        self.sentences: list[str | None] = []

    def wake_audio(self) -> list[bytes]:
        return list(self._wake)

    async def next_uplink_frame(self) -> bytes:
        await asyncio.sleep(self._interval)
        frame = self._tone[self._next % len(self._tone)]
        self._next += 1
        return frame

    def set_uplink(self, active: bool) -> None:
        self.uplink_active = active

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
