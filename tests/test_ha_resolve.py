"""Home Assistant name resolution, index upkeep and action checks over a recorded registry snapshot."""

from __future__ import annotations

import copy

import pytest

from pibuddy.drivers.homeassistant.actions import ACTIONS, plan_calls
from pibuddy.drivers.homeassistant.index import Index
from pibuddy.drivers.homeassistant.resolve import Ambiguous, Target, kind_domain, resolve
from pibuddy.drivers.homeassistant.speech import parse_colour, state_sentence
from pibuddy.errors import DriverError, InvalidArguments, NotFound
from tests.peers.fixtures_homeassistant import SNAPSHOT


@pytest.fixture
def index() -> Index:
    return Index.from_snapshot(copy.deepcopy(SNAPSHOT))


def _ids(target: Target) -> list[str]:
    return sorted(e.entity_id for e in target.entities)


@pytest.mark.parametrize(
    ("phrase", "entity_id"),
    [
        ("Floor Lamp", "light.floor_lamp"),
        ("the floor lamp!", "light.floor_lamp"),
        ("big lamp", "light.living_room_light"),  # entity alias
        ("大门", "lock.front_door"),  # Chinese alias
        ("台灯", "light.desk_lamp"),  # Chinese registry name
        ("书桌灯", "light.desk_lamp"),
        ("light.floor_lamp", "light.floor_lamp"),
        ("the lights in the bedroom", "light.bedroom_light"),  # area + kind, one match: the entity itself
        ("卧室的窗帘", "cover.bedroom_blinds"),
        ("书房的台灯", "light.desk_lamp"),  # area + a name inside it
        ("living room floor lamp", "light.floor_lamp"),
        ("bedroom fan", "fan.ceiling_fan"),  # effective area comes from the device
        ("厨房的风扇", "input_boolean.kitchen_fan"),  # a helper named after a kind counts as that kind
        ("Ceiling Fan", "fan.ceiling_fan"),
        ("temperature", "sensor.living_room_temperature"),  # a kind with one entity
        ("thermostat", "climate.living_room_thermostat"),
        ("flor lamp", "light.floor_lamp"),  # fuzzy
        ("kichen speaker", "media_player.kitchen_speaker"),
    ],
)
def test_phrase_resolves_to_one_entity(index: Index, phrase: str, entity_id: str) -> None:
    target = resolve(index, phrase)
    assert _ids(target) == [entity_id]
    assert target.service_target == {"entity_id": [entity_id]}


@pytest.mark.parametrize("phrase", ["living room lights", "the lights in the living room", "客厅的灯", "客厅里的灯",
                                    "lounge lights", "LIVING ROOM LIGHTS"])
def test_area_plus_kind_targets_the_area(index: Index, phrase: str) -> None:
    target = resolve(index, phrase)
    assert target.area is not None
    assert target.area.area_id == "living_room"
    assert target.domain == "light"
    assert target.service_target == {"area_id": "living_room"}
    assert _ids(target) == ["light.floor_lamp", "light.living_room_light"]


def test_area_alone_acts_on_the_area_when_the_domain_is_known(index: Index) -> None:
    target = resolve(index, "bedroom", domains={"cover"})
    assert _ids(target) == ["cover.bedroom_blinds"]


def test_area_alone_with_several_kinds_is_ambiguous(index: Index) -> None:
    with pytest.raises(Ambiguous) as caught:
        resolve(index, "bedroom")
    assert {e.entity_id for e in caught.value.candidates} == {
        "light.bedroom_light", "cover.bedroom_blinds", "fan.ceiling_fan"}
    assert "Which one?" in caught.value.message


def test_a_kind_with_several_entities_is_ambiguous_unless_all_is_said(index: Index) -> None:
    with pytest.raises(Ambiguous) as caught:
        resolve(index, "lights")
    assert len(caught.value.candidates) == 4
    assert "Floor Lamp (Living Room)" in caught.value.message
    assert "台灯 (书房)" in caught.value.message
    assert _ids(resolve(index, "all lights")) == ["light.bedroom_light", "light.desk_lamp", "light.floor_lamp",
                                                  "light.living_room_light"]
    assert len(resolve(index, "所有的灯").entities) == 4


def test_word_shared_by_several_names_is_ambiguous(index: Index) -> None:
    with pytest.raises(Ambiguous) as caught:
        resolve(index, "living room", domains={"light", "climate"})
    assert {e.domain for e in caught.value.candidates} == {"light", "climate"}


def test_unknown_name_lists_close_matches(index: Index) -> None:
    with pytest.raises(NotFound) as caught:
        resolve(index, "front dor lock", domains={"cover"})
    assert "Front Door" in caught.value.message  # suggested from everything when the pool has nothing close
    with pytest.raises(NotFound) as caught:
        resolve(index, "light.flor_lamp")
    assert "light.floor_lamp" in caught.value.message


def test_no_such_kind_in_an_area_says_what_is_there(index: Index) -> None:
    with pytest.raises(NotFound) as caught:
        resolve(index, "kitchen lights")
    assert "Kitchen" in caught.value.message
    assert "Kitchen Speaker" in caught.value.message


@pytest.mark.parametrize("phrase", ["old heater", "input_boolean.floor_lamp_power", "ceiling fan signal"])
def test_hidden_disabled_and_diagnostic_entities_are_not_offered(index: Index, phrase: str) -> None:
    with pytest.raises(NotFound):
        resolve(index, phrase)


def test_empty_phrase_is_not_found(index: Index) -> None:
    with pytest.raises(NotFound):
        resolve(index, " the ")


def test_domain_filter_applies_to_exact_names(index: Index) -> None:
    with pytest.raises(NotFound):
        resolve(index, "Floor Lamp", domains={"cover"})


def test_kind_words_map_to_domains() -> None:
    assert kind_domain("Lights") == "light"
    assert kind_domain("窗帘") == "cover"
    assert kind_domain("air conditioner") == "climate"
    assert kind_domain("sofa") is None


# --- the index ---


def _state_event(entity_id: str, state: str, stamp: str) -> dict[str, object]:
    return {"event_type": "state_changed", "data": {"entity_id": entity_id, "new_state": {
        "entity_id": entity_id, "state": state, "attributes": {"friendly_name": "Floor Lamp"},
        "last_updated": stamp}}}


def test_state_events_update_and_stale_ones_are_ignored(index: Index) -> None:
    assert index.apply_event(_state_event("light.floor_lamp", "on", "2030-01-01T00:00:01+00:00")) is None
    assert index.entity("light.floor_lamp").state == "on"  # type: ignore[union-attr]
    index.apply_event(_state_event("light.floor_lamp", "off", "2020-01-01T00:00:00+00:00"))
    assert index.entity("light.floor_lamp").state == "on"  # type: ignore[union-attr]
    # A get_states answer older than an event already applied does not roll the state back.
    index.set_states([{**s, "state": "off"} if s["entity_id"] == "light.floor_lamp" else s
                      for s in SNAPSHOT["states"]])
    assert index.entity("light.floor_lamp").state == "on"  # type: ignore[union-attr]


def test_removed_entity_disappears(index: Index) -> None:
    index.apply_event({"event_type": "state_changed", "data": {"entity_id": "light.floor_lamp", "new_state": None}})
    assert index.entity("light.floor_lamp") is None


@pytest.mark.parametrize(("event_type", "registry"), [
    ("area_registry_updated", "area"), ("entity_registry_updated", "entity"),
    ("device_registry_updated", "device"), ("floor_registry_updated", "floor"), ("call_service", None)])
def test_registry_events_name_the_registry_to_reload(index: Index, event_type: str, registry: str | None) -> None:
    assert index.apply_event({"event_type": event_type, "data": {}}) == registry


def test_garbage_rows_and_events_are_ignored(index: Index) -> None:
    index.apply_event({"event_type": "state_changed", "data": "nonsense"})
    index.apply_event({"event_type": 5})
    index.set_areas([{"name": "no id"}, "junk", *SNAPSHOT["areas"]])  # type: ignore[list-item]
    assert len(index.areas) == len(SNAPSHOT["areas"])


def test_snapshot_round_trips(index: Index) -> None:
    again = Index.from_snapshot(index.snapshot())
    assert again.entities == index.entities
    assert again.floors[0].name == "Upstairs"
    assert again.area("bedroom").floor_id == "upstairs"  # type: ignore[union-attr]


# --- action checks ---


def test_area_brightness_skips_lights_that_cannot_dim(index: Index) -> None:
    target = resolve(index, "living room lights")
    [call] = plan_calls(ACTIONS["set_brightness"], target.entities, 40)
    assert (call.domain, call.service, call.data) == ("light", "turn_on", {"brightness_pct": 40})
    assert [e.entity_id for e in call.entities] == ["light.floor_lamp"]
    assert call.skipped == ("Living Room Light cannot change brightness",)


def test_unsupported_action_explains_why(index: Index) -> None:
    with pytest.raises(DriverError) as caught:
        plan_calls(ACTIONS["set_color"], resolve(index, "floor lamp").entities, "red")
    assert caught.value.code == "unsupported"
    assert "Floor Lamp cannot change colour" in caught.value.message


def test_ranges_and_modes_come_from_the_entity(index: Index) -> None:
    thermostat = resolve(index, "thermostat").entities
    with pytest.raises(DriverError, match="accepts 10 to 30 degrees"):
        plan_calls(ACTIONS["set_temperature"], thermostat, 35)
    with pytest.raises(DriverError, match="supports the modes heat, off"):
        plan_calls(ACTIONS["set_hvac_mode"], thermostat, "cool")
    [call] = plan_calls(ACTIONS["set_temperature"], thermostat, 22.5)
    assert call.data == {"temperature": 22.5}


def test_missing_value_is_invalid_arguments(index: Index) -> None:
    with pytest.raises(InvalidArguments, match="needs the argument position"):
        plan_calls(ACTIONS["set_position"], resolve(index, "blinds").entities, None)


def test_switching_maps_per_domain(index: Index) -> None:
    [call] = plan_calls(ACTIONS["turn_on"], resolve(index, "blinds").entities, None)
    assert (call.domain, call.service) == ("cover", "open_cover")
    with pytest.raises(DriverError, match="cannot turn on"):
        plan_calls(ACTIONS["turn_on"], resolve(index, "front door").entities, None)


def test_colours_and_sentences() -> None:
    assert parse_colour("红色") == (255, 0, 0)
    assert parse_colour("#00ff80") == (0, 255, 128)
    with pytest.raises(InvalidArguments, match="unknown colour"):
        parse_colour("plaid")
    light = {"entity_id": "light.x", "state": "on",
             "attributes": {"brightness": 102, "color_mode": "hs", "rgb_color": [250, 5, 0]}}
    assert state_sentence("Lamp", light) == "Lamp is on, at 40% brightness, colour red."
    sensor = {"entity_id": "sensor.t", "state": "21.5", "attributes": {"unit_of_measurement": "°C"}}
    assert state_sentence("Temp", sensor) == "Temp is 21.5 °C."
    assert "unavailable" in state_sentence("X", {"entity_id": "light.x", "state": "unavailable"})
