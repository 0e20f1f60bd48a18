"""With OpenClaw as the operator brain, what the local intents cannot serve is passed on as a Transcript."""

from __future__ import annotations

import pytest

from pibuddy.brain import LocalBrain, Outcome
from pibuddy.brain.asr.base import AsrEngine, Recognition, Understood
from pibuddy.brain.service import LocalBrainService
from pibuddy.brain.vocabulary import Vocabulary
from pibuddy.brain.voice import EspeakVoice
from pibuddy.events import EventBus, Transcript
from pibuddy.tools.registry import ToolRegistry
from tests.brain.conftest import FixedVocabulary
from tests.brain.test_confidence_gate import OneUtterance


class FreeText(AsrEngine):
    """A free-form recogniser (as vosk is) that heard `text`: no model ships in a package for this test, and
    the audio-to-text step is covered by test_speech.py; what matters here is what happens to the text."""

    def __init__(self, text: str) -> None:
        self._text = text

    def recognise(self, pcm: bytes, understood: Understood | None = None, *,
                  readable: Understood | None = None) -> Recognition:
        del pcm, understood, readable
        return Recognition(self._text, 1.0, accepted=True)


async def _turn(text: str, household: Vocabulary, *, hand_off: bool) -> tuple[Outcome, list[Transcript], int]:
    bus = EventBus()
    audio = OneUtterance(b"\0\0" * 16000)
    service = LocalBrainService(LocalBrain(ToolRegistry(), [FixedVocabulary(household)], language="en"),
                                FreeText(text), EspeakVoice("en"), audio, bus, offline_notice=False,
                                hand_off=hand_off)
    with bus.subscribe() as events:
        reply = await service.turn("okay nabu")
        transcripts = []
        while not events.queue.empty():
            if isinstance(event := events.queue.get_nowait(), Transcript):
                transcripts.append(event)
    return reply.outcome, transcripts, len(audio.played)


async def test_a_question_the_intents_cannot_serve_goes_to_openclaw_unspoken(household: Vocabulary) -> None:
    outcome, transcripts, spoken = await _turn("what is the capital of france", household, hand_off=True)
    assert (outcome, transcripts, spoken) == (Outcome.HANDED_OFF, [Transcript("what is the capital of france")], 0)


@pytest.mark.parametrize(("text", "hand_off", "outcome"), [
    ("what is the capital of france", False, Outcome.CANNOT),  # no operator brain: the local brain says so
    ("turn on the living room light", True, Outcome.FAILED),  # a household command stays local (no HA here)
])
async def test_everything_else_stays_with_the_local_brain(household: Vocabulary, text: str, hand_off: bool,
                                                          outcome: Outcome) -> None:
    got, transcripts, spoken = await _turn(text, household, hand_off=hand_off)
    assert (got, transcripts, spoken) == (outcome, [], 1)
