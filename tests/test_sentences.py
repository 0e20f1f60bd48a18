"""The spoken-sentence helpers the drivers share: articles, possessives and joined clauses."""

from __future__ import annotations

from pibuddy.drivers.sentences import possessive, sentence, set_to, the, turned, words


def test_articles_are_added_only_where_they_belong() -> None:
    assert [the(n) for n in ("desk lamp", "My lamp", "the porch light", "台灯")] == [
        "the desk lamp", "My lamp", "the porch light", "台灯"]


def test_possessives_and_words() -> None:
    assert [possessive(s) for s in ("the desk lamp", "it", "the hall lights")] == [
        "the desk lamp's", "its", "the hall lights'"]
    assert words("color_temperature") == "color temperature"


def test_clauses_become_one_spoken_sentence() -> None:
    assert sentence([turned("the desk lamp", True)]) == "Turned the desk lamp on."
    assert sentence([turned("the fan", False), set_to("its", "mode", "sleep"), "asked it to toggle"]) == (
        "Turned the fan off, set its mode to sleep and asked it to toggle.")
