"""The audio pipeline as a supervised service: the microphone and speaker stay open while PiBuddy runs."""

from __future__ import annotations

from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.supervisor import Health, Service


class AudioService(Service):
    """Opens the pipeline's devices at start and closes them at stop; a lost device is retried inside the
    pipeline, and anything worse is restarted by the supervisor."""

    name = "audio"

    def __init__(self, pipeline: AudioPipeline) -> None:
        self.pipeline = pipeline
        self._open = False

    async def start(self) -> None:
        await self.pipeline.__aenter__()
        self._open = True

    async def serve(self) -> None:
        await self.pipeline.watch()

    async def stop(self) -> None:
        if self._open:
            self._open = False
            await self.pipeline.__aexit__(None, None, None)

    def health(self) -> Health:
        opened = self.pipeline.microphone.opened.is_set()
        return Health(opened, "listening for the wake word" if opened else "waiting for the microphone")
