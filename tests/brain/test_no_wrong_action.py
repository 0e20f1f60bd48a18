"""Never the wrong action (issue #20's "What was seen"): coughs that the VAD did not take for speech never reach the
recogniser; a device named with a room it is not in, and one of several lights named in the singular, get a question;
"living room light on" forced onto "living room lights on" (every light in the room) is settled by the s of the
plural in the audio, or gets a question where that cannot tell, and so does a number whose best other reading fits
the audio about as well ("sixty five" heard as "sixty nine"). Spoken cases run through the real pocketsphinx
recogniser and the real local-turn service on espeak-ng audio passed through the pipeline's Opus round trip (what a
turn gets from the microphone)."""

from __future__ import annotations

import asyncio
from typing import Final

import numpy as np
import pytest

from pibuddy.audio.opus import FRAME_MS, UPLINK_RATE, OpusDecoder, OpusEncoder
from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.brain import LocalBrain, Outcome, Reply
from pibuddy.brain.asr.base import AsrEngine, Recognition, Understood
from pibuddy.brain.asr.sphinx import PocketsphinxAsr
from pibuddy.brain.audio import PipelineAudio
from pibuddy.brain.doubt import number_twin
from pibuddy.brain.service import LocalBrainService
from pibuddy.brain.vocabulary import Vocabulary
from pibuddy.brain.voice import EspeakVoice
from pibuddy.config import AudioConfig, VadConfig
from pibuddy.events import EventBus
from pibuddy.tools.registry import ToolRegistry
from tests.audio.conftest import play_into_microphone, pulse  # noqa: F401 - the virtual sound devices
from tests.brain.conftest import FixedVocabulary
from tests.brain.test_confidence_gate import OneUtterance
from tests.peers.pulseaudio import PulseServer
from tests.peers.speech import cough, noise, silence, speech, television

Call = tuple[str, dict[str, object]]


class ForcedHearing(AsrEngine):
    """A grammar-bound recogniser at its worst: whatever the audio, it hears a command (what pocketsphinx made
    of coughs in the issue: "the floor lamp on"). Counts what reached it."""

    constrained = True

    def __init__(self) -> None:
        self.heard: list[bytes] = []

    def recognise(self, pcm: bytes, understood: Understood | None = None, *,
                  readable: Understood | None = None) -> Recognition:
        del understood, readable
        self.heard.append(pcm)
        return Recognition("turn on the floor lamp", -3.6, accepted=True)


def _brain(household: Vocabulary) -> LocalBrain:
    return LocalBrain(ToolRegistry(), [FixedVocabulary(household)], language="en")


def _calls(reply: Reply) -> list[Call]:
    """The tool calls a turn made (tried: the registry is empty, so each fails, but it was made)."""
    return [(r.call.tool, dict(r.call.arguments)) for r in reply.calls]


@pytest.mark.peer
async def test_coughs_the_vad_found_no_speech_in_never_reach_the_recogniser(
        pulse: PulseServer, household: Vocabulary) -> None:  # noqa: F811
    config = AudioConfig(vad=VadConfig(timeout_seconds=2.5))
    coughs = np.concatenate([silence(0.6), cough(), silence(0.7), cough(), silence(0.5), cough(), silence(2.0)])
    asr = ForcedHearing()
    async with AudioPipeline(config) as pipeline:
        audio = PipelineAudio(pipeline)
        await asyncio.wait_for(audio.open(), 5)
        service = LocalBrainService(_brain(household), asr, EspeakVoice("en"), audio, EventBus(),
                                    offline_notice=False)
        turn = asyncio.create_task(service.turn("okay nabu"))
        await play_into_microphone(pulse, coughs)
        reply = await asyncio.wait_for(turn, 10)
    assert asr.heard == [], "audio without speech was passed to the recogniser"
    assert (reply.outcome, reply.calls) == (Outcome.NOT_HEARD, ())


@pytest.mark.parametrize(("text", "answer"), [
    ("turn on the bedroom light in the kitchen",
     "Sorry, I am not aware of any device called bedroom light in the kitchen area"),
    ("switch on the living room light in the study",
     "Sorry, I am not aware of any device called living room light in the study area"),
    ("turn off the floor lamp in the bedroom",
     "Sorry, I am not aware of any device called floor lamp in the bedroom area"),
])
async def test_a_device_named_with_a_room_it_is_not_in_is_a_question(household: Vocabulary, text: str,
                                                                     answer: str) -> None:
    reply = await _brain(household).handle(text)
    assert (reply.outcome, reply.text, reply.calls) == (Outcome.ASKED, answer, ())


async def test_a_device_named_with_its_own_room_or_a_room_alias_is_acted_on(household: Vocabulary) -> None:
    for text in ("turn on the floor lamp in the living room", "turn on the floor lamp in the lounge"):
        reply = await _brain(household).handle(text)
        assert _calls(reply) == [("ha_control_device", {"target": "light.floor_lamp", "action": "turn_on"})]


async def test_one_of_several_lights_in_the_singular_is_a_question_and_the_plural_means_all(
        household: Vocabulary) -> None:
    brain = _brain(household)
    one = await brain.handle("turn on the living room lamp")  # a ceiling light and a floor lamp there
    assert (one.outcome, one.text, one.calls) == (Outcome.ASKED, "Sorry, which lamp in the living room?", ())
    every = await brain.handle("turn on the living room lights")
    assert _calls(every) == [("ha_control_device", {"target": "Living Room lights", "action": "turn_on"})]
    only = await brain.handle("turn on the bedroom lamp")  # the one light there
    assert _calls(only) == [("ha_control_device", {"target": "light.bedroom_light", "action": "turn_on"})]


def _through_opus(text: str, voice: str, speed: int) -> bytes:
    """espeak-ng speech over a microphone's noise floor, encoded and decoded as the pipeline's uplink does."""
    return _uplink(speech(text, voice, pad=0.5, speed=speed))


def _uplink(samples: np.ndarray) -> bytes:
    floor = np.random.default_rng(7).normal(0.0, 30.0, samples.size)
    pcm = (samples + floor).clip(-32768, 32767).astype(np.int16).tobytes()
    encoder, decoder = OpusEncoder(complexity=0), OpusDecoder(sample_rate=UPLINK_RATE, frame_ms=FRAME_MS)
    size = encoder.frame_samples * 2
    return b"".join(decoder.decode(encoder.encode(pcm[i:i + size])) for i in range(0, len(pcm) - size + 1, size))


@pytest.fixture(scope="module")
def asr(household: Vocabulary) -> PocketsphinxAsr:
    engine = PocketsphinxAsr("en")
    engine.set_vocabulary(household)
    return engine


async def _spoken_turn(asr: PocketsphinxAsr, household: Vocabulary, pcm: bytes) -> Reply:
    service = LocalBrainService(_brain(household), asr, EspeakVoice("en"), OneUtterance(pcm), EventBus(),
                                offline_notice=False)
    return await service.turn("okay nabu")


VOICES = [("en-us", 150), ("en-us", 190), ("en-gb", 140), ("en-us+f3", 150)]


@pytest.mark.parametrize(("voice", "speed"), VOICES, ids=[f"{v}-{s}" for v, s in VOICES])
async def test_living_room_light_heard_as_lights_never_switches_every_light(
        asr: PocketsphinxAsr, household: Vocabulary, voice: str, speed: int) -> None:
    # Before: heard "living room lights on" in 3 of these 4 voices and turned on every light in the room.
    reply = await _spoken_turn(asr, household, _through_opus("living room light on", voice, speed))
    assert _calls(reply) in ([], [("ha_control_device", {"target": "light.living_room_light", "action": "turn_on"})])
    if not reply.calls:
        assert reply.text in ("Sorry, one light or all the lights?", "Sorry, I didn't catch that.")


LIVING_ROOM_LIGHT_ON: Final = [("ha_control_device", {"target": "light.living_room_light", "action": "turn_on"})]
LIGHT_OR_LIGHTS: Final = [
    ("turn on the living room light", LIVING_ROOM_LIGHT_ON),
    ("living room light on", LIVING_ROOM_LIGHT_ON),
    ("turn on the living room lights", [("ha_control_device", {"target": "Living Room lights", "action": "turn_on"})]),
]


@pytest.mark.parametrize(("voice", "speed"), VOICES[:3], ids=[f"{v}-{s}" for v, s in VOICES[:3]])
@pytest.mark.parametrize(("text", "right"), LIGHT_OR_LIGHTS, ids=[t for t, _ in LIGHT_OR_LIGHTS])
async def test_light_and_lights_are_told_apart_by_the_plurals_s(
        asr: PocketsphinxAsr, household: Vocabulary, text: str, right: list[Call], voice: str, speed: int) -> None:
    # Before: "Sorry, one light or all the lights?" for each of these in each voice (the bench's most common miss:
    # the acoustic scores of the two readings were too close); the s of "lights" is in the audio.
    reply = await _spoken_turn(asr, household, _through_opus(text, voice, speed))
    assert _calls(reply) == right, reply


async def test_a_kind_word_heard_in_the_other_number_than_said_is_a_question(
        asr: PocketsphinxAsr, household: Vocabulary) -> None:
    # Before: heard "the living room light to ten percent" (only that reading is a command) and dimmed one light.
    reply = await _spoken_turn(asr, household, _through_opus("dim the living room lights to 10 percent", "en-us", 150))
    assert (reply.outcome, reply.text, reply.calls) == (Outcome.ASKED, "Sorry, one light or all the lights?", ())


def _in_room_noise(text: str, snr_db: float) -> bytes:
    """`text` under pink room noise at `snr_db` (the level of the speech over the level of the noise)."""
    said = speech(text, "en-us", pad=0.5).astype(np.float64)
    room = noise("pinknoise", said.size / 16000 + 0.1, volume=0.5)[:said.size].astype(np.float64)
    loud = np.sqrt(np.mean(said[np.abs(said) > 100] ** 2))
    return _uplink(said + room * loud / (np.sqrt(np.mean(room ** 2)) * 10 ** (snr_db / 20)))


def test_the_plurals_s_is_heard_in_a_quiet_room_and_nothing_is_concluded_where_noise_drowns_it(
        asr: PocketsphinxAsr) -> None:
    plural = "turn on the living room lights"
    assert asr.plural_said(_through_opus(plural, "en-us", 150), plural, "lights") is True
    assert asr.plural_said(_through_opus("turn on the living room light", "en-us", 150), plural, "lights") is False
    # Pink noise at 10 dB SNR hides an s: that one is missing says nothing (asked, never one light for all).
    assert asr.plural_said(_in_room_noise("turn on the living room light", 10.0), plural, "lights") is None


def test_the_s_decides_only_where_it_is_the_voiceless_ending_and_no_hiss_follows(asr: PocketsphinxAsr) -> None:
    fans = _through_opus("turn on the kitchen fans", "en-us", 150)
    assert asr.plural_said(fans, "turn on the kitchen fans", "fans") is None  # a voiced z: not measured
    followed = _through_opus("set the living room lights for fifty percent", "en-us", 150)
    assert asr.plural_said(followed, "set the living room lights for fifty percent", "lights") is None
    assert asr.plural_said(fans, "turn on the kitchen fans", "lights") is None  # not in the reading


@pytest.mark.parametrize(("voice", "speed"), VOICES[:2], ids=[f"{v}-{s}" for v, s in VOICES[:2]])
async def test_a_plural_that_names_no_device_of_the_household_is_no_rival(
        asr: PocketsphinxAsr, household: Vocabulary, voice: str, speed: int) -> None:
    # Before: "Sorry, one fan or all the fans?" (bench, every voice that heard it right): the kitchen's one fan is
    # a switch (input_boolean), so "the kitchen fans" names no fan there, yet it was re-scored as a rival.
    reply = await _spoken_turn(asr, household, _through_opus("turn on the kitchen fan", voice, speed))
    assert _calls(reply) == [("ha_control_device", {"target": "input_boolean.kitchen_fan", "action": "turn_on"})]


LIVING_ROOM_LIGHTS = "Living Room lights"
# The spoken wrong actions, each with the only calls it may make (or none: asked or not heard).
FORCED: list[tuple[str, list[Call]]] = [
    # Heard "set the living room brightness to eighty percent": the floor lamp set to 80 %.
    ("set the living room to 50 percent", [("ha_control_device", {"target": LIVING_ROOM_LIGHTS,
                                                                 "action": "set_brightness", "brightness": 50})]),
    # Heard "turn on living room light in the kitchen": a light turned on.
    ("turn everything off in the kitchen", [("ha_control_device", {"target": "input_boolean.kitchen_fan",
                                                                  "action": "turn_off"}),
                                            ("ha_control_device", {"target": "media_player.kitchen_speaker",
                                                                  "action": "turn_off"})]),
    # Heard "open the bedroom blinds to zero percent": the blinds closed.
    ("are the bedroom blinds open", [("ha_get_device_state", {"target": "cover.bedroom_blinds"})]),
    # Heard "switch on the living room light in the study".
    ("switch the living room lights off please", [("ha_control_device", {"target": LIVING_ROOM_LIGHTS,
                                                                        "action": "turn_off"})]),
]


@pytest.mark.parametrize(("voice", "speed"), VOICES, ids=[f"{v}-{s}" for v, s in VOICES])
@pytest.mark.parametrize(("text", "right"), FORCED, ids=[t for t, _ in FORCED])
async def test_speech_outside_the_old_grammar_is_never_forced_onto_another_action(
        asr: PocketsphinxAsr, household: Vocabulary, text: str, right: list[Call], voice: str, speed: int) -> None:
    reply = await _spoken_turn(asr, household, _through_opus(text, voice, speed))
    calls = _calls(reply)  # the turn stops at the first failing call (the registry here has no tools)
    assert calls == right[:len(calls)], reply


_QUESTIONS: Final = frozenset({"ha_get_device_state"})  # answered, nothing in the home changes


@pytest.mark.parametrize("sound", [
    # The language model's best path was "the fan of all"; the lattice's next readings held "turn my study to
    # four" (the desk lamp set to 4 %) and "turn my study purple", which the gate passed at -9.7 and -10.8.
    television("the match ended in a draw"),
    # "any of the open", then "every shutter open" next in rank.
    speech("tell me a joke", "en-us+f3", pad=0.5),
], ids=["television", "tell me a joke"])
async def test_speech_that_is_no_command_never_takes_a_command_from_the_next_readings(
        asr: PocketsphinxAsr, household: Vocabulary, sound: np.ndarray) -> None:
    reply = await _spoken_turn(asr, household, _uplink(sound))
    assert all(record.call.tool in _QUESTIONS for record in reply.calls), reply


class MisheardNumber(AsrEngine):
    """A grammar-bound recogniser that wrote "sixty nine" where its best other reading of the number is "sixty
    five" (what pocketsphinx made of espeak's female voice); `sure` is its verdict on the two."""

    constrained = True

    def __init__(self, *, sure: bool) -> None:
        self.sure = sure
        self.offered: list[list[str]] = []
        self.compared: list[tuple[str, str, bool]] = []

    def recognise(self, pcm: bytes, understood: Understood | None = None, *,
                  readable: Understood | None = None) -> Recognition:
        del pcm, understood, readable
        return Recognition("set the bedroom light brightness to sixty nine percent", -8.0, accepted=True)

    def closest(self, pcm: bytes, readings: list[str]) -> str | None:
        self.offered.append(readings)
        return "set the bedroom light brightness to sixty five percent"

    def sure_of(self, pcm: bytes, heard: str, other: str, *, number: bool = False) -> bool:
        self.compared.append((heard, other, number))
        return self.sure


async def _turn(asr: AsrEngine, household: Vocabulary) -> Reply:
    service = LocalBrainService(_brain(household), asr, EspeakVoice("en"), OneUtterance(b"\0\1" * 16000),
                                EventBus(), offline_notice=False)
    return await service.turn("okay nabu")


async def test_a_number_its_rival_reading_fits_as_well_is_a_question(household: Vocabulary) -> None:
    # Before: "sixty five" heard as "sixty nine" set the bedroom light to 69 % (bench, espeak's female voice).
    asr = MisheardNumber(sure=False)
    reply = await _turn(asr, household)
    assert (reply.outcome, reply.text, reply.calls) == (Outcome.ASKED, "Sorry, what number?", ())
    heard = "set the bedroom light brightness to sixty nine percent"
    assert len(asr.offered[0]) == 100  # every other number 0-100, once
    assert heard not in asr.offered[0]
    assert "set the bedroom light brightness to one hundred percent" in asr.offered[0]
    assert asr.compared == [(heard, "set the bedroom light brightness to sixty five percent", True)]


def test_a_teen_and_its_tens_are_each_others_twin_and_other_numbers_have_none() -> None:
    assert number_twin("set the lamp to fifty percent") == "set the lamp to fifteen percent"
    assert number_twin("set the lamp to thirteen percent") == "set the lamp to thirty percent"
    assert number_twin("set the lamp to ninety eight percent") == "set the lamp to nineteen percent"
    assert number_twin("set the lamp to twenty percent") is None
    assert number_twin("turn on the lamp") is None


async def test_a_number_clearly_better_than_its_rival_is_acted_on(household: Vocabulary) -> None:
    reply = await _turn(MisheardNumber(sure=True), household)
    assert _calls(reply) == [("ha_control_device", {"target": "light.bedroom_light", "action": "set_brightness",
                                                    "brightness": 69})]


def _brightness(percent: int) -> list[Call]:
    return [("ha_control_device", {"target": "light.bedroom_light", "action": "set_brightness",
                                   "brightness": percent})]


@pytest.mark.parametrize(("voice", "speed"), VOICES, ids=[f"{v}-{s}" for v, s in VOICES])
@pytest.mark.parametrize("percent", [65, 25, 15, 13, 19])
async def test_a_spoken_number_is_acted_on_as_said_or_asked_about(
        asr: PocketsphinxAsr, household: Vocabulary, percent: int, voice: str, speed: int) -> None:
    # Before: espeak's female voice "65" heard as "sixty nine" (bench) and "25" as "twenty nine" acted; "15"
    # heard as "fifty" in en-gb, re-scored only against "fifty eight", set 50 %; "13" as "thirty" at 190 wpm;
    # "19" as "ninety eight" in en-gb (after other utterances: the recogniser adapts to what it heard before).
    reply = await _spoken_turn(asr, household,
                               _through_opus(f"set the bedroom light brightness to {percent} percent", voice, speed))
    assert _calls(reply) in ([], _brightness(percent)), reply
    if not reply.calls:
        assert reply.text in ("Sorry, what number?", "Sorry, I didn't catch that.")


@pytest.mark.parametrize(("voice", "speed"), VOICES[:2], ids=[f"{v}-{s}" for v, s in VOICES[:2]])
async def test_a_clearly_spoken_number_still_acts(asr: PocketsphinxAsr, household: Vocabulary, voice: str,
                                                  speed: int) -> None:
    # "sixty five" led its best rival ("sixty nine") by 1.8 and 1.6 per frame here, the bar is 0.3.
    reply = await _spoken_turn(asr, household,
                               _through_opus("set the bedroom light brightness to 65 percent", voice, speed))
    assert _calls(reply) == _brightness(65), reply
