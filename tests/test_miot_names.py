"""Name resolution as Home Assistant does it: exact names and aliases, room + kind, kind alone, words and
fuzzy matches, in English and Chinese, with `Ambiguous`/`NotFound` errors that help the LLM ask."""

from __future__ import annotations

import pytest

from pibuddy.drivers.names import Ambiguous, Named, find_named, kind_of, resolve
from pibuddy.errors import NotFound

POOL = [
    Named("desk", ("Desk lamp", "台灯", "reading light"), "Study", "light"),
    Named("ceiling", ("Ceiling light",), "Living room", "light"),
    Named("floor", ("Floor lamp",), "Living room", "light"),
    Named("fan", ("Tower fan", "风扇"), "Bedroom", "fan"),
    Named("bedlamp", ("卧室灯",), "卧室", "light"),
    Named("switch", ("Hall switch",), None, "switch"),
]


@pytest.mark.parametrize(("phrase", "expected"), [
    ("desk lamp", ["desk"]),
    ("The Desk Lamp!", ["desk"]),
    ("台灯", ["desk"]),
    ("reading light", ["desk"]),
    ("living room lights", ["ceiling", "floor"]),
    ("the lights in the living room", ["ceiling", "floor"]),
    ("living room floor lamp", ["floor"]),
    ("bedroom", ["fan"]),
    ("fan", ["fan"]),
    ("卧室的灯", ["bedlamp"]),
    ("卧室里的灯", ["bedlamp"]),
    ("all lights", ["desk", "ceiling", "floor", "bedlamp"]),
    ("switch", ["switch"]),
    ("tower", ["fan"]),
    ("flor lamp", ["floor"]),
])
def test_phrases_resolve(phrase: str, expected: list[str]) -> None:
    assert resolve(phrase, POOL) == expected


def test_a_kind_with_several_devices_is_ambiguous_and_lists_them() -> None:
    with pytest.raises(Ambiguous) as caught:
        resolve("lamp", POOL)
    assert "Desk lamp (Study)" in caught.value.message
    assert "Floor lamp (Living room)" in caught.value.message
    assert caught.value.message.endswith("Which one?")


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(NotFound, match=r'could not find "tower heater" among the Mi Home devices. Close matches: '
                                       r"Tower fan \(Bedroom\)"):
        resolve("tower heater", POOL, what="Mi Home devices")
    with pytest.raises(NotFound, match="There is no fan in Study"):
        resolve("study fan", POOL)


def test_kind_words_in_both_languages() -> None:
    assert [kind_of(w) for w in ("Lights", "窗帘", "plugs", "空调", "sofa")] == [
        "light", "curtain", "outlet", "air-conditioner", None]


def test_find_named_works_on_config_like_objects() -> None:
    class Sensor:
        def __init__(self, name: str, area: str | None, aliases: list[str]) -> None:
            self.name, self.area, self.aliases = name, area, aliases

    sensors = [Sensor("kitchen thermometer", "Kitchen", ["温度计"]), Sensor("door sensor", "Hall", [])]
    assert [s.name for s in find_named("温度计", sensors)] == ["kitchen thermometer"]
    assert find_named("sofa", sensors) == []
