"""One-word repairs of a text the recogniser wrote: only texts whose three-word runs the brain's sentences have."""

from __future__ import annotations

from pibuddy.brain.asr.repairs import Repairs

SENTENCES = [s.split() for s in ("turn off the floor lamp", "turn on the floor lamp", "switch off the floor lamp",
                                 "turn on guest mode", "turn off guest mode", "set the floor lamp to red",
                                 "what time is it")]


def _one_word_apart(first: str, second: str) -> bool:
    a, b = first.split(), second.split()
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    shorter, longer = sorted((a, b), key=len)
    return len(longer) - len(shorter) == 1 and any(longer[:i] + longer[i + 1:] == shorter
                                                   for i in range(len(longer)))


def test_a_word_put_for_another_is_changed_back() -> None:
    repairs = Repairs(SENTENCES).of("the off the floor lamp")
    assert "turn off the floor lamp" in repairs
    assert "switch off the floor lamp" in repairs
    assert all(_one_word_apart("the off the floor lamp", r) for r in repairs), repairs


def test_a_word_too_many_is_dropped_and_a_missing_one_added() -> None:
    assert "turn on the floor lamp" in Repairs(SENTENCES).of("turn on the the floor lamp")
    assert "turn off guest mode" in Repairs(SENTENCES).of("off guest mode")


def test_repairs_only_read_as_the_sentences_do() -> None:
    # No sentence ends "lamp to": the text is repaired by dropping "to" or adding a colour that follows it
    # somewhere; every three-word run of a repair, with the sentence's edges, occurs in some sentence.
    assert Repairs(SENTENCES).of("set the floor lamp to") == ["set the floor lamp", "set the floor lamp to red"]
    assert Repairs(SENTENCES).of("the cat sat on the mat") == []


def test_a_text_is_not_its_own_repair_and_nothing_comes_of_no_sentences() -> None:
    assert "turn off the floor lamp" not in Repairs(SENTENCES).of("turn off the floor lamp")
    assert Repairs([]).of("turn off the floor lamp") == []
    assert Repairs(SENTENCES).of("") == []
