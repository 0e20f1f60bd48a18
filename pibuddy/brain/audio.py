"""What a local turn needs from the audio pipeline, as a narrow interface, and its implementation over
`AudioPipeline`. Wake words are not part of it: they come as `WakeDetected` on the bus, as for every consumer.

The utterance is taken from the pipeline's own uplink (the same Opus stream the xiaozhi server would get,
ended by the pipeline's VAD) and decoded back to 16 kHz PCM. That keeps the audio package untouched; on
espeak-ng test speech, pocketsphinx even did slightly better on the decoded audio than on the raw PCM.
When the VAD found no speech in the whole listening window (coughs, clatter, silence), or the microphone was
muted, there is no utterance: a grammar-bound recogniser would force such audio onto a command.
"""

from __future__ import annotations

import logging
from typing import Final, Protocol

import numpy as np

from pibuddy.audio.opus import FRAME_MS, UPLINK_RATE, OpusDecoder
from pibuddy.audio.pipeline import MUTED, AudioPipeline
from pibuddy.audio.port import PipelineAudioPort
from pibuddy.audio.vad.segmenter import EndReason

_LOGGER = logging.getLogger(__name__)
_NOTHING_SAID: Final = frozenset({EndReason.NO_SPEECH, MUTED})


class BrainAudio(Protocol):
    async def open(self) -> None:
        """Start the microphone and speaker."""

    async def close(self) -> None: ...

    async def prepare(self) -> None:
        """Load what an utterance needs (the VAD's model) ahead of the first one; may take a second."""

    async def utterance(self, *, since_wake: bool = False) -> bytes:
        """16 kHz mono int16 PCM of what the user says now, until the end of their utterance; b"" when no
        speech was heard (nothing to recognise). since_wake: from the end of the last wake word on, for a wake
        the server was tried with first (`AudioPort.open_uplink`)."""
        ...

    def play(self, samples: np.ndarray, sample_rate: int) -> None:
        """Queue int16 mono samples behind whatever is playing."""

    async def wait_drained(self) -> None: ...


class PipelineAudio:
    """`BrainAudio` over the shared `AudioPipeline`, which the audio service opens and closes; the utterance
    comes through the same `AudioPort` uplink the device client uses."""

    def __init__(self, pipeline: AudioPipeline) -> None:
        self.pipeline = pipeline
        self._port = PipelineAudioPort(pipeline)

    async def open(self) -> None:
        """Wait until the audio service has the microphone open."""
        await self.pipeline.microphone.opened.wait()

    async def close(self) -> None:
        """Nothing to release: the pipeline belongs to the audio service."""

    async def prepare(self) -> None:
        await self.pipeline.load_vad()

    async def utterance(self, *, since_wake: bool = False) -> bytes:
        decoder = OpusDecoder(sample_rate=UPLINK_RATE, frame_ms=FRAME_MS)
        uplink = self._port.open_uplink(end_on_silence=True, since_wake=since_wake)
        try:
            pcm = b"".join([decoder.decode(packet) async for packet in uplink])
        finally:  # an aborted turn must not leave the microphone encoding for nobody
            self._port.close_uplink()
        if uplink.end_reason in _NOTHING_SAID:
            _LOGGER.info("no speech heard (%s): nothing to recognise", uplink.end_reason)
            return b""
        return pcm

    def play(self, samples: np.ndarray, sample_rate: int) -> None:
        self.pipeline.speaker.play_pcm(samples.astype(np.int16).tobytes(), sample_rate)

    async def wait_drained(self) -> None:
        await self._port.wait_drained()
