"""The device client's `AudioPort` (pibuddy/audio/contract.py) implemented over `AudioPipeline`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pibuddy.audio.contract import UtteranceEnded
from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.audio.uplink import STOPPED, UplinkStream


class PipelineAudioPort:
    """Adapts the pipeline's per-turn `UplinkStream` to the client's pull-one-frame-at-a-time interface.

    A stream is opened as soon as the wake word's pre-roll is taken and buffers (up to the uplink queue)
    until the conversation turns the uplink on, so the live audio follows the pre-roll without a gap.

    Wake events are not part of the port: the pipeline publishes `WakeDetected` on the bus, where the device
    client (and the brain router) pick them up.
    """

    def __init__(self, pipeline: AudioPipeline) -> None:
        self._pipeline = pipeline
        self._uplink: UplinkStream | None = None
        self._frames: AsyncIterator[bytes] | None = None
        self._active = asyncio.Event()

    def wake_audio(self) -> list[bytes]:
        frames = self._pipeline.wake_audio_opus()
        self._open()
        return frames

    async def next_uplink_frame(self) -> bytes:
        while True:
            await self._active.wait()
            uplink, frames = self._uplink, self._frames
            if uplink is None or frames is None:  # closed between the wake-up and now
                continue
            try:
                return await anext(frames)
            except StopAsyncIteration:  # this turn's stream ended: wait for the next one
                if self._uplink is not uplink:
                    continue
                self._close()
                if uplink.end_reason != STOPPED:
                    raise UtteranceEnded(str(uplink.end_reason)) from None

    def set_uplink(self, active: bool, *, end_on_silence: bool = False) -> None:
        if not active:
            self._close()
            return
        uplink = self._uplink or self._open()
        uplink.end_on_silence = end_on_silence  # read per frame: segmenting starts with the next one
        self._active.set()

    def _open(self) -> UplinkStream:
        self._uplink = self._pipeline.uplink_opus(preroll=False)
        self._frames = aiter(self._uplink)
        return self._uplink

    def _close(self) -> None:
        if self._uplink is not None:
            self._pipeline.stop_uplink()
            self._uplink = None
            self._frames = None
        self._active.clear()

    def chime(self) -> None:
        self._pipeline.prompts.chime()

    def error_tone(self) -> None:
        self._pipeline.prompts.error()

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
