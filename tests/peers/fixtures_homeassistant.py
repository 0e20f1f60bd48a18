# ruff: noqa: E501  (recorded data: one row per line reads and diffs better than wrapped rows)
"""A registry snapshot recorded from the test suite's real Home Assistant 2024.3.3 (tests/peers/homeassistant.py)
through `Index.snapshot()`, for name-resolution unit tests that need no running Home Assistant.

Recorded rows are trimmed to the keys PiBuddy reads. Added by hand, to cover what the YAML peer cannot make:
the floor "Upstairs" (with Bedroom on it), the device "Ceiling Fan" in Bedroom with its fan (no area of its
own: the effective area comes from the device) and a diagnostic sensor, and a disabled switch. The peer's own
"Ceiling Fan" (a template fan, no device) is in Bedroom too, by its entity's area; its hidden power helper is
left out here.
"""

from __future__ import annotations

from typing import Any

# fmt: off
SNAPSHOT: dict[str, list[dict[str, Any]]] = {
    'areas': [
        {"area_id": "living_room", "name": "Living Room", "aliases": ["lounge", "客厅"], "floor_id": None},
        {"area_id": "kitchen", "name": "Kitchen", "aliases": ["厨房"], "floor_id": None},
        {"area_id": "bedroom", "name": "Bedroom", "aliases": ["卧室"], "floor_id": "upstairs"},
        {"area_id": "shu_fang", "name": "书房", "aliases": ["study"], "floor_id": None},
    ],
    'floors': [
        {"floor_id": "upstairs", "name": "Upstairs", "aliases": ["楼上"]},
    ],
    'devices': [
        {"id": "dev_ceiling_fan", "name": "Ceiling Fan", "name_by_user": None, "area_id": "bedroom", "manufacturer": "Acme", "model": "CF-1"},
    ],
    'entities': [
        {"entity_id": "input_select.kitchen_speaker_state", "area_id": None, "device_id": None, "name": None, "original_name": None, "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_select"},
        {"entity_id": "input_number.floor_lamp_level", "area_id": None, "device_id": None, "name": None, "original_name": None, "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_number"},
        {"entity_id": "input_number.bedroom_light_level", "area_id": None, "device_id": None, "name": None, "original_name": None, "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_number"},
        {"entity_id": "input_number.bedroom_light_hue", "area_id": None, "device_id": None, "name": None, "original_name": None, "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_number"},
        {"entity_id": "input_number.bedroom_light_saturation", "area_id": None, "device_id": None, "name": None, "original_name": None, "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_number"},
        {"entity_id": "input_number.bedroom_blinds_position", "area_id": None, "device_id": None, "name": None, "original_name": None, "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_number"},
        {"entity_id": "input_number.living_room_temperature_value", "area_id": None, "device_id": None, "name": None, "original_name": None, "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_number"},
        {"entity_id": "input_number.kitchen_speaker_volume", "area_id": None, "device_id": None, "name": None, "original_name": None, "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_number"},
        {"entity_id": "input_boolean.living_room_light_power", "area_id": None, "device_id": None, "name": None, "original_name": "living room light power", "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_boolean"},
        {"entity_id": "input_boolean.floor_lamp_power", "area_id": None, "device_id": None, "name": None, "original_name": "floor lamp power", "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_boolean"},
        {"entity_id": "input_boolean.bedroom_light_power", "area_id": None, "device_id": None, "name": None, "original_name": "bedroom light power", "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_boolean"},
        {"entity_id": "input_boolean.desk_lamp_power", "area_id": None, "device_id": None, "name": None, "original_name": "desk lamp power", "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_boolean"},
        {"entity_id": "input_boolean.front_door_locked", "area_id": None, "device_id": None, "name": None, "original_name": "front door locked", "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_boolean"},
        {"entity_id": "input_boolean.heater_power", "area_id": None, "device_id": None, "name": None, "original_name": "heater power", "aliases": None, "disabled_by": None, "hidden_by": "user", "entity_category": None, "platform": "input_boolean"},
        {"entity_id": "input_boolean.kitchen_fan", "area_id": "kitchen", "device_id": None, "name": None, "original_name": "Kitchen Fan", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "input_boolean"},
        {"entity_id": "input_boolean.guest_mode", "area_id": None, "device_id": None, "name": None, "original_name": "Guest Mode", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "input_boolean"},
        {"entity_id": "scene.movie_time", "area_id": None, "device_id": None, "name": None, "original_name": "Movie Time", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "homeassistant"},
        {"entity_id": "script.good_night", "area_id": None, "device_id": None, "name": None, "original_name": "Good Night", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "script"},
        {"entity_id": "light.living_room_light", "area_id": "living_room", "device_id": None, "name": None, "original_name": "Living Room Light", "aliases": ["big lamp"], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "template"},
        {"entity_id": "light.floor_lamp", "area_id": "living_room", "device_id": None, "name": None, "original_name": "Floor Lamp", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "template"},
        {"entity_id": "light.bedroom_light", "area_id": "bedroom", "device_id": None, "name": None, "original_name": "Bedroom Light", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "template"},
        {"entity_id": "light.desk_lamp", "area_id": "shu_fang", "device_id": None, "name": "台灯", "original_name": "Desk Lamp", "aliases": ["书桌灯"], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "template"},
        {"entity_id": "lock.front_door", "area_id": None, "device_id": None, "name": None, "original_name": "Front Door", "aliases": ["大门"], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "template"},
        {"entity_id": "cover.bedroom_blinds", "area_id": "bedroom", "device_id": None, "name": None, "original_name": "Bedroom Blinds", "aliases": ["窗帘"], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "template"},
        {"entity_id": "sensor.living_room_temperature", "area_id": "living_room", "device_id": None, "name": None, "original_name": "Living Room Temperature", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "template"},
        {"entity_id": "media_player.kitchen_speaker", "area_id": "kitchen", "device_id": None, "name": None, "original_name": "Kitchen Speaker", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "universal"},
        {"entity_id": "climate.living_room_thermostat", "area_id": "living_room", "device_id": None, "name": None, "original_name": "Living Room Thermostat", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "generic_thermostat"},
        {"entity_id": "person.test_owner", "area_id": None, "device_id": None, "name": None, "original_name": "Test Owner", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "person"},
        {"entity_id": "fan.ceiling_fan", "area_id": None, "device_id": "dev_ceiling_fan", "name": None, "original_name": None, "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": None, "platform": "acme"},
        {"entity_id": "sensor.ceiling_fan_signal", "area_id": None, "device_id": "dev_ceiling_fan", "name": None, "original_name": "Signal", "aliases": [], "disabled_by": None, "hidden_by": None, "entity_category": "diagnostic", "platform": "acme"},
        {"entity_id": "switch.old_heater", "area_id": "bedroom", "device_id": None, "name": None, "original_name": "Old Heater", "aliases": [], "disabled_by": "user", "hidden_by": None, "entity_category": None, "platform": "acme"},
    ],
    'states': [
        {"entity_id": "input_select.kitchen_speaker_state", "state": "playing", "attributes": {"options": ["off", "idle", "playing", "paused"], "editable": False}, "last_updated": "2026-11-22T04:26:10.009717+00:00"},
        {"entity_id": "input_number.floor_lamp_level", "state": "50.0", "attributes": {"initial": 0.0, "editable": False, "min": 0.0, "max": 255.0, "step": 1.0, "mode": "slider"}, "last_updated": "2026-11-22T04:26:10.126212+00:00"},
        {"entity_id": "input_number.bedroom_light_level", "state": "0.0", "attributes": {"initial": 0.0, "editable": False, "min": 0.0, "max": 255.0, "step": 1.0, "mode": "slider"}, "last_updated": "2026-11-22T04:22:44.175735+00:00"},
        {"entity_id": "input_number.bedroom_light_hue", "state": "0.0", "attributes": {"initial": 0.0, "editable": False, "min": 0.0, "max": 360.0, "step": 1.0, "mode": "slider"}, "last_updated": "2026-11-22T04:22:44.175939+00:00"},
        {"entity_id": "input_number.bedroom_light_saturation", "state": "100.0", "attributes": {"initial": 0.0, "editable": False, "min": 0.0, "max": 100.0, "step": 1.0, "mode": "slider"}, "last_updated": "2026-11-22T04:26:09.803829+00:00"},
        {"entity_id": "input_number.bedroom_blinds_position", "state": "40.0", "attributes": {"initial": 0.0, "editable": False, "min": 0.0, "max": 100.0, "step": 1.0, "mode": "slider"}, "last_updated": "2026-11-22T04:26:09.930214+00:00"},
        {"entity_id": "input_number.living_room_temperature_value", "state": "21.5", "attributes": {"initial": 21.5, "editable": False, "min": 0.0, "max": 40.0, "step": 0.5, "mode": "slider"}, "last_updated": "2026-11-22T04:22:44.176488+00:00"},
        {"entity_id": "input_number.kitchen_speaker_volume", "state": "0.55", "attributes": {"initial": 0.3, "editable": False, "min": 0.0, "max": 1.0, "step": 0.01, "mode": "slider"}, "last_updated": "2026-11-22T04:26:09.969868+00:00"},
        {"entity_id": "input_boolean.living_room_light_power", "state": "off", "attributes": {"editable": False, "friendly_name": "living room light power"}, "last_updated": "2026-11-22T04:22:44.177161+00:00"},
        {"entity_id": "input_boolean.floor_lamp_power", "state": "on", "attributes": {"editable": False, "friendly_name": "floor lamp power"}, "last_updated": "2026-11-22T04:26:09.740660+00:00"},
        {"entity_id": "input_boolean.bedroom_light_power", "state": "on", "attributes": {"editable": False, "friendly_name": "bedroom light power"}, "last_updated": "2026-11-22T04:26:09.804998+00:00"},
        {"entity_id": "input_boolean.desk_lamp_power", "state": "off", "attributes": {"editable": False, "friendly_name": "desk lamp power"}, "last_updated": "2026-11-22T04:22:44.177876+00:00"},
        {"entity_id": "input_boolean.front_door_locked", "state": "on", "attributes": {"editable": False, "friendly_name": "front door locked"}, "last_updated": "2026-11-22T04:26:10.580452+00:00"},
        {"entity_id": "input_boolean.heater_power", "state": "off", "attributes": {"editable": False, "friendly_name": "heater power"}, "last_updated": "2026-11-22T04:22:44.178185+00:00"},
        {"entity_id": "input_boolean.kitchen_fan", "state": "off", "attributes": {"editable": False, "friendly_name": "Kitchen Fan"}, "last_updated": "2026-11-22T04:22:44.178328+00:00"},
        {"entity_id": "input_boolean.guest_mode", "state": "off", "attributes": {"editable": False, "friendly_name": "Guest Mode"}, "last_updated": "2026-11-22T04:22:44.178491+00:00"},
        {"entity_id": "scene.movie_time", "state": "2026-11-22T04:26:10.121496+00:00", "attributes": {"entity_id": ["light.living_room_light", "light.floor_lamp"], "id": "pibuddy_movie_time", "friendly_name": "Movie Time"}, "last_updated": "2026-11-22T04:26:10.121555+00:00"},
        {"entity_id": "script.good_night", "state": "off", "attributes": {"last_triggered": None, "mode": "single", "current": 0, "friendly_name": "Good Night"}, "last_updated": "2026-11-22T04:22:44.235323+00:00"},
        {"entity_id": "light.living_room_light", "state": "off", "attributes": {"supported_color_modes": ["onoff"], "color_mode": None, "friendly_name": "Living Room Light", "supported_features": 0}, "last_updated": "2026-11-22T04:22:44.237187+00:00"},
        {"entity_id": "light.floor_lamp", "state": "on", "attributes": {"supported_color_modes": ["brightness"], "color_mode": "brightness", "brightness": 50, "friendly_name": "Floor Lamp", "supported_features": 0}, "last_updated": "2026-11-22T04:26:10.126559+00:00"},
        {"entity_id": "light.bedroom_light", "state": "on", "attributes": {"supported_color_modes": ["hs"], "color_mode": "hs", "brightness": 0, "hs_color": [0.0, 100.0], "rgb_color": [255, 0, 0], "xy_color": [0.701, 0.299], "friendly_name": "Bedroom Light", "supported_features": 0}, "last_updated": "2026-11-22T04:26:09.805266+00:00"},
        {"entity_id": "light.desk_lamp", "state": "off", "attributes": {"supported_color_modes": ["onoff"], "color_mode": None, "friendly_name": "台灯", "supported_features": 0}, "last_updated": "2026-11-22T04:22:45.778945+00:00"},
        {"entity_id": "lock.front_door", "state": "locked", "attributes": {"friendly_name": "Front Door", "supported_features": 0}, "last_updated": "2026-11-22T04:26:10.582725+00:00"},
        {"entity_id": "cover.bedroom_blinds", "state": "open", "attributes": {"current_position": 40.0, "friendly_name": "Bedroom Blinds", "supported_features": 7}, "last_updated": "2026-11-22T04:26:09.930609+00:00"},
        {"entity_id": "sensor.living_room_temperature", "state": "21.5", "attributes": {"unit_of_measurement": "°C", "device_class": "temperature", "friendly_name": "Living Room Temperature"}, "last_updated": "2026-11-22T04:22:44.323668+00:00"},
        {"entity_id": "zone.home", "state": "0", "attributes": {"latitude": 31.23, "longitude": 121.47, "radius": 100, "passive": False, "persons": [], "editable": True, "icon": "mdi:home", "friendly_name": "PiBuddy Test Home"}, "last_updated": "2026-11-22T04:22:44.306243+00:00"},
        {"entity_id": "media_player.kitchen_speaker", "state": "playing", "attributes": {"volume_level": 0.55, "is_volume_muted": False, "friendly_name": "Kitchen Speaker", "supported_features": 16773}, "last_updated": "2026-11-22T04:26:10.010320+00:00"},
        {"entity_id": "climate.living_room_thermostat", "state": "off", "attributes": {"hvac_modes": ["heat", "off"], "min_temp": 10.0, "max_temp": 30.0, "target_temp_step": 0.1, "current_temperature": 21.5, "temperature": 23.0, "hvac_action": "off", "friendly_name": "Living Room Thermostat", "supported_features": 385}, "last_updated": "2026-11-22T04:26:09.888529+00:00"},
        {"entity_id": "person.test_owner", "state": "unknown", "attributes": {"editable": True, "id": "test_owner", "user_id": "3e9dbe6a98a34c999dd655da77ba778a", "device_trackers": [], "friendly_name": "Test Owner"}, "last_updated": "2026-11-22T04:22:45.576714+00:00"},
        {"entity_id": "fan.ceiling_fan", "state": "off", "attributes": {"friendly_name": "Ceiling Fan", "supported_features": 1}, "last_updated": "2026-11-22T04:30:00.000000+00:00"},
        {"entity_id": "sensor.ceiling_fan_signal", "state": "-60", "attributes": {"friendly_name": "Ceiling Fan Signal", "unit_of_measurement": "dBm"}, "last_updated": "2026-11-22T04:30:00.000000+00:00"},
        {"entity_id": "switch.old_heater", "state": "off", "attributes": {"friendly_name": "Old Heater"}, "last_updated": "2026-11-22T04:30:00.000000+00:00"},
    ],
}
