"""The speech recogniser's model (pocketsphinx: 25 MB) loads when the local brain becomes the one that answers,
not at start: with a reachable xiaozhi server it may never be needed."""

from __future__ import annotations

import asyncio

from pibuddy.brain import LocalBrain
from pibuddy.brain.asr.base import AsrEngine, Recognition
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

    def recognise(self, pcm: bytes) -> Recognition:
        del pcm
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
