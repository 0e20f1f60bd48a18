"""One source of sentences: what the recogniser's language model is built from is exactly what the intent matcher
understands (every sampled sentence matches), covering every name, room and number 0-100; the phrasings people
use match as text; the trigram model is a proper distribution."""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict

import pytest
from pocketsphinx import Decoder

from pibuddy.brain import LocalBrain, Outcome
from pibuddy.brain.asr.vosk_asr import phrases
from pibuddy.brain.grammar import Sentences, compile_sentences
from pibuddy.brain.intents import IntentMatch, IntentMatcher
from pibuddy.brain.ngram import arpa
from pibuddy.brain.sentences import load_intents
from pibuddy.brain.spoken import number_words, spoken
from pibuddy.brain.vocabulary import Vocabulary
from pibuddy.tools.registry import ToolRegistry
from tests.brain.conftest import FixedVocabulary


@functools.cache
def _dictionary() -> Decoder:
    return Decoder(lm=None, loglevel="FATAL")


@pytest.fixture(scope="module")
def sentences(household: Vocabulary) -> Sentences:
    return compile_sentences(load_intents("en")[0], household, "en",
                             lambda word: _dictionary().lookup_word(word) is not None)


def test_every_sentence_the_recogniser_can_hear_is_understood_as_text(sentences: Sentences,
                                                                      household: Vocabulary) -> None:
    matcher = IntentMatcher("en")
    missed = [text for text in (" ".join(w) for w in sentences.sample(600, seed=11))
              if not isinstance(matcher.match(text, household), IntentMatch)]
    assert missed == []


def test_the_sentences_hold_every_name_room_number_and_politeness(sentences: Sentences,
                                                                  household: Vocabulary) -> None:
    said = " ".join(" ".join(w) for w in sentences.sample(20000))
    names = [n for t in household.things for n in t.names if n.isascii()]
    rooms = [n for p in household.areas for n in p.names if n.isascii()]
    for phrase in [*names, *rooms, *(number_words(n) for n in range(101)), "please", "could you"]:
        assert re.search(rf"\b{re.escape(spoken(phrase))}\b", said), phrase


def test_a_teen_is_sampled_as_often_as_its_tens(sentences: Sentences) -> None:
    # Before: drawn number by number, "fifty" (fifty, fifty one ... fifty nine) came ten times as often as
    # "fifteen", and the language model heard every spoken "fifteen" as "fifty".
    said = [w for words in sentences.sample(20000) for w in words]
    for teen, tens in (("thirteen", "thirty"), ("fifteen", "fifty"), ("nineteen", "ninety")):
        assert 0.6 < said.count(teen) / said.count(tens) < 1.6, (teen, said.count(teen), tens, said.count(tens))


def test_the_timer_phrasings_without_a_free_name_can_be_heard(sentences: Sentences) -> None:
    """A timer's name is free text (a wildcard), which a closed grammar cannot hold; the rest is heard."""
    grammar = sentences.jsgf()
    for template in ("( how much time | how long ) [ is ] left",
                     "( start | set | create ) [ a | an | the | my ] timer for <number"):
        assert template in grammar, template


@pytest.mark.parametrize(("text", "calls"), [
    ("dim the bedroom light to 40%", [{"target": "light.bedroom_light", "action": "set_brightness",
                                       "brightness": 40}]),
    ("brighten the living room lights to 80 percent", [{"target": "Living Room lights",
                                                        "action": "set_brightness", "brightness": 80}]),
    ("start the kitchen fan", [{"target": "input_boolean.kitchen_fan", "action": "turn_on"}]),
    ("stop the ceiling fan", [{"target": "fan.ceiling_fan", "action": "turn_off"}]),
    ("turn on the fan", [{"target": "fan.ceiling_fan", "action": "turn_on"}]),  # unique by its kind
    ("set the thermostat to 23 degrees", [{"target": "climate.living_room_thermostat",
                                           "action": "set_temperature", "temperature": 23}]),
    ("set the living room to 22 degrees", [{"target": "climate.living_room_thermostat",
                                            "action": "set_temperature", "temperature": 22}]),
    ("set the temperature in the living room to 21", [{"target": "climate.living_room_thermostat",
                                                       "action": "set_temperature", "temperature": 21}]),
    ("turn everything off in the kitchen", [{"target": "input_boolean.kitchen_fan", "action": "turn_off"},
                                            {"target": "media_player.kitchen_speaker", "action": "turn_off"}]),
    ("open the blinds", [{"target": "cover.bedroom_blinds", "action": "open"}]),
    ("close the blind", [{"target": "cover.bedroom_blinds", "action": "close"}]),
    ("turn on all the lights", [{"target": "all lights", "action": "turn_on"}]),
    ("could you turn off the floor lamp please", [{"target": "light.floor_lamp", "action": "turn_off"}]),
    ("set the floor lamp to red", [{"target": "light.floor_lamp", "action": "set_color", "color": "red"}]),
])
async def test_the_phrasings_people_use_become_the_right_calls(household: Vocabulary, text: str,
                                                               calls: list[dict[str, object]]) -> None:
    brain = LocalBrain(ToolRegistry(), [FixedVocabulary(household)], language="en")
    match = brain.matcher.match(text, household)
    assert isinstance(match, IntentMatch), text
    assert [dict(c.arguments) for c in brain.calls(text, household)] == calls


async def test_a_kind_with_several_devices_in_the_singular_is_a_question(household: Vocabulary) -> None:
    reply = await LocalBrain(ToolRegistry(), [FixedVocabulary(household)], language="en").handle("turn on the light")
    assert (reply.outcome, reply.text, reply.calls) == (Outcome.ASKED, "Sorry, which light?", ())


def _read_arpa(text: str) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    probability, backoff = {}, {}
    order = 0
    for line in text.splitlines():
        if heading := re.fullmatch(r"\\(\d)-grams:", line):
            order = int(heading.group(1))
        elif order and line and not line.startswith("\\"):
            fields = line.split()
            gram = tuple(fields[1:1 + order])
            probability[gram] = 10 ** float(fields[0])
            if len(fields) > 1 + order:
                backoff[gram] = 10 ** float(fields[1 + order])
    return probability, backoff


def _p(probability: dict[tuple[str, ...], float], backoff: dict[tuple[str, ...], float],
       gram: tuple[str, ...]) -> float:
    if gram in probability:
        return probability[gram] if gram != ("<s>",) else 0.0
    return backoff.get(gram[:-1], 1.0) * _p(probability, backoff, gram[1:])


def test_the_trigram_model_sums_to_one_after_every_history() -> None:
    corpus = [["turn", "on", "the", "lamp"], ["turn", "off", "the", "lamp"], ["turn", "on", "the", "fan"],
              ["open", "the", "blinds"], ["turn", "the", "lamp", "on"]]
    probability, backoff = _read_arpa(arpa(corpus))
    vocabulary = {w for s in corpus for w in s} | {"</s>"}
    histories = defaultdict(set)
    for sentence in corpus:
        words = ["<s>", *sentence]
        for i in range(len(words)):
            histories[1].add(tuple(words[i:i + 1]))
            histories[2].add(tuple(words[max(0, i - 1):i + 1]))
    histories[2].add(("lamp", "turn"))  # never seen: all back-off
    for history in histories[1] | histories[2]:
        total = sum(_p(probability, backoff, (*history, w)) for w in vocabulary)
        assert math.isclose(total, 1.0, abs_tol=1e-4), (history, total)


def test_chinese_sentences_come_from_the_same_templates_and_are_understood(household: Vocabulary) -> None:
    # No vosk model with a known licence can be had here: the phrase list's generation is tested on its own, with
    # a dictionary that knows single characters and a few words, as a Chinese model's would.
    words = {"打开", "关闭", "客厅", "卧室", "台灯", "窗帘", "温度", "亮度"}

    def known(word: str) -> bool:
        return len(word) == 1 or word in words

    sentences = compile_sentences(load_intents("zh-CN")[0], household, "zh-CN", known)
    listed = phrases(sentences)
    assert any("打开" in p.split() and "台灯" in p.split() for p in listed)  # the dictionary's words, longest first
    matcher = IntentMatcher("zh-CN")
    missed = [p for p in listed[::25] if not isinstance(matcher.match(p.replace(" ", ""), household), IntentMatch)]
    assert missed == []
    assert not {"big", "floor", "ceiling", "kitchen"} & {w for p in listed for w in p.split()}  # English names
