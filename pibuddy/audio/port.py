"""The device client's `AudioPort` (pibuddy/upstream/audio_port.py) implemented over `AudioPipeline`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.audio.uplink import UplinkStream


class PipelineAudioPort:
    """Adapts the pipeline's per-turn `UplinkStream` to the client's pull-one-frame-at-a-time interface.

    Wake events are not part of the port: the pipeline publishes `WakeDetected` on the bus, where the device
    client (and the brain router) pick them up.
    """

    def __init__(self, pipeline: AudioPipeline) -> None:
        self._pipeline = pipeline
        self._uplink: UplinkStream | None = None
        self._frames: AsyncIterator[bytes] | None = None
        self._active = asyncio.Event()

    def wake_audio(self) -> list[bytes]:
        return self._pipeline.wake_audio_opus()

    async def next_uplink_frame(self) -> bytes:
        while True:
            frames = self._frames
            if frames is None:
                await self._active.wait()
                continue
            try:
                return await anext(frames)
            except StopAsyncIteration:  # this turn's stream ended: wait for the next one
                if self._frames is frames:
                    self._frames = None
                    self._uplink = None
                    self._active.clear()

    def set_uplink(self, active: bool) -> None:
        if active and self._uplink is None:
            self._uplink = self._pipeline.uplink_opus(preroll=False)
            self._frames = aiter(self._uplink)
            self._active.set()
        elif not active and self._uplink is not None:
            self._pipeline.stop_uplink()
            self._uplink = None
            self._frames = None
            self._active.clear()

    def start_playback(self, sample_rate: int, frame_duration_ms: int) -> None:
        self._pipeline.set_downlink_format(sample_rate, frame_duration_ms)

    def play(self, opus: bytes) -> None:
        self._pipeline.play_opus(opus)

    def stop_playback(self) -> None:
        self._pipeline.stop_playback()

    async def wait_drained(self) -> None:
        await self._pipeline.wait_drained()

    def speaking_sentence(self, text: str | None) -> None:
        self._pipeline.set_speaking(text)
