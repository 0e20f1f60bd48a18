"""The device client's `AudioPort` (pibuddy/audio/contract.py) implemented over `AudioPipeline`."""

from __future__ import annotations

from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.audio.uplink import UplinkStream


class PipelineAudioPort:
    """Hands out the pipeline's per-turn `UplinkStream` as the client's uplink.

    A stream is opened as soon as the wake word's pre-roll is taken and buffers (up to the uplink queue)
    until the conversation opens its uplink, so the live audio follows the pre-roll without a gap.
    """

    def __init__(self, pipeline: AudioPipeline) -> None:
        self._pipeline = pipeline
        self._uplink: UplinkStream | None = None

    def wake_audio(self) -> list[bytes]:
        frames = self._pipeline.wake_audio_opus()
        self._uplink = self._pipeline.uplink_opus(preroll=False)
        return frames

    def open_uplink(self, *, end_on_silence: bool, since_wake: bool = False) -> UplinkStream:
        uplink = self._uplink
        if since_wake or uplink is None:
            uplink = self._uplink = self._pipeline.uplink_opus(preroll=False, end_on_silence=end_on_silence,
                                                               since_wake=since_wake)
        uplink.end_on_silence = end_on_silence  # read per frame: segmenting starts with the next one
        if end_on_silence:
            self._pipeline.load_vad_soon()  # the wake's uplink may be turned into one that ends on silence
        return uplink

    def close_uplink(self) -> None:
        if self._uplink is not None:
            self._pipeline.stop_uplink()
            self._uplink = None

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
