"""The speech recogniser's model (pocketsphinx: 25 MB) loads when the local brain becomes the one that answers,
not at start: with a reachable xiaozhi server it may never be needed."""

from __future__ import annotations

import asyncio

from pibuddy.brain import LocalBrain
from pibuddy.brain.asr.base import AsrEngine, Recognition, Understood
from pibuddy.brain.asr.sphinx import PocketsphinxAsr
from pibuddy.brain.service import LocalBrainService
from pibuddy.brain.voice import EspeakVoice
from pibuddy.events import BRAIN_LOCAL, BRAIN_UPSTREAM, ActiveBrain, EventBus
from pibuddy.tools.registry import ToolRegistry
from tests.brain.test_confidence_gate import OneUtterance
from tests.polling import eventually


class LoadCounting(AsrEngine):
    """Counts prepare() calls; recognition itself is not what this test is about (test_speech.py is)."""

    def __init__(self) -> None:
        self.prepared = 0

    def recognise(self, pcm: bytes, understood: Understood | None = None, *,
                  readable: Understood | None = None) -> Recognition:
        del pcm, understood, readable
        return Recognition("", None, accepted=False)

    def prepare(self) -> None:
        self.prepared += 1


async def test_the_recogniser_loads_once_when_the_local_brain_takes_over() -> None:
    bus, asr = EventBus(), LoadCounting()
    service = LocalBrainService(LocalBrain(ToolRegistry(), [], language="en"), asr, EspeakVoice("en"),
                                OneUtterance(b""), bus, offline_notice=False)
    serving = asyncio.create_task(service.serve())
    try:
        bus.publish(ActiveBrain(BRAIN_UPSTREAM, "the xiaozhi server is connected"))
        await asyncio.sleep(0.3)
        assert asr.prepared == 0
        bus.publish(ActiveBrain(BRAIN_LOCAL, "the xiaozhi server is away"))
        await eventually(lambda: asr.prepared == 1)
        bus.publish(ActiveBrain(BRAIN_UPSTREAM, "back"))
        bus.publish(ActiveBrain(BRAIN_LOCAL, "away again"))
        await asyncio.sleep(0.3)
        assert asr.prepared == 1
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


class OpenedUtterance(OneUtterance):
    def __init__(self, pcm: bytes) -> None:
        super().__init__(pcm)
        self.opened = asyncio.Event()

    async def open(self) -> None:
        self.opened.set()


async def test_the_command_model_is_built_when_the_local_brain_takes_over_not_at_start() -> None:
    """Seen: serve() built pocketsphinx's command model (and so loaded its decoder) at start: 35 MB of RSS and
    seconds of CPU in the first idle minute of an appliance whose xiaozhi server answers every wake."""
    bus, asr, audio = EventBus(), PocketsphinxAsr("en"), OpenedUtterance(b"")
    service = LocalBrainService(LocalBrain(ToolRegistry(), [], language="en"), asr, EspeakVoice("en"), audio, bus,
                                offline_notice=False)
    bus.publish(ActiveBrain(BRAIN_UPSTREAM, "the xiaozhi server is connected"))
    serving = asyncio.create_task(service.serve())
    try:
        await asyncio.wait_for(audio.opened.wait(), 30)  # serving: listening for wakes from here on
        await asyncio.sleep(0.3)
        assert asr.sentences is None
        bus.publish(ActiveBrain(BRAIN_LOCAL, "the xiaozhi server is away"))
        await eventually(lambda: asr.sentences is not None, within=30)
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


def test_pocketsphinx_recognises_without_prepare_and_prepare_twice_is_harmless() -> None:
    """The lazy decoder: first use loads it, prepare() after that (or twice) changes nothing."""
    from tests.peers.speech import speech  # noqa: PLC0415

    pcm = speech("turn on the floor lamp").tobytes()
    fresh, prepared = PocketsphinxAsr("en"), PocketsphinxAsr("en")
    prepared.prepare()
    prepared.prepare()
    assert fresh.recognise(pcm) == prepared.recognise(pcm)
    fresh.prepare()
    assert fresh.recognise(pcm) == prepared.recognise(pcm)
