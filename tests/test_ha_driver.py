"""The Home Assistant tools against a real Home Assistant (tests/peers/homeassistant.py): every change is read
back from Home Assistant itself, not from PiBuddy."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pibuddy.config import HomeAssistantConfig
from pibuddy.drivers.homeassistant import HomeAssistantService, homeassistant_tools
from pibuddy.errors import AuthFailed, Cause, DeviceUnreachable, Failure, Party
from pibuddy.tools.registry import ToolRegistry, ToolResult
from tests.peers.homeassistant import HomeAssistantPeer
from tests.peers.ports import free_port

pytestmark = pytest.mark.peer

_POWER = ["input_boolean.living_room_light_power", "input_boolean.floor_lamp_power",
          "input_boolean.bedroom_light_power", "input_boolean.desk_lamp_power", "input_boolean.kitchen_fan",
          "input_boolean.front_door_locked"]


@pytest.fixture
def ha(homeassistant_peer: HomeAssistantPeer) -> HomeAssistantPeer:
    """The shared peer, with the devices these tests touch put back to a known state."""
    peer = homeassistant_peer
    peer.start()  # a no-op unless a test left it stopped
    peer.call("input_boolean", "turn_off", {"entity_id": _POWER})
    for entity_id, value in [("input_number.floor_lamp_level", 0), ("input_number.bedroom_light_level", 0),
                             ("input_number.bedroom_light_saturation", 0), ("input_number.bedroom_blinds_position", 0),
                             ("input_number.kitchen_speaker_volume", 0.3)]:
        peer.call("input_number", "set_value", {"entity_id": entity_id, "value": value})
    peer.call("input_select", "select_option", {"entity_id": "input_select.kitchen_speaker_state", "option": "off"})
    peer.call("climate", "set_hvac_mode", {"entity_id": "climate.living_room_thermostat", "hvac_mode": "off"})
    return peer


def _config(peer: HomeAssistantPeer, **overrides: Any) -> HomeAssistantConfig:
    return HomeAssistantConfig.model_validate({"enabled": True, "url": peer.url, "token": peer.token, "timeout": 5,
                                               **overrides})


@pytest.fixture
async def service(ha: HomeAssistantPeer) -> AsyncIterator[HomeAssistantService]:
    service = HomeAssistantService(_config(ha))
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
def tools(service: HomeAssistantService) -> ToolRegistry:
    registry = ToolRegistry()
    for tool in homeassistant_tools(service):
        registry.register(tool)
    return registry


async def _ok(tools: ToolRegistry, tool_name: str, **arguments: Any) -> str:
    result = await tools.call(tool_name, arguments)
    assert not result.is_error, result.text
    return result.text


async def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_list_shows_rooms_aliases_and_chinese_names(tools: ToolRegistry) -> None:
    text = await _ok(tools, "ha_list_devices")
    assert "Living Room (also: lounge, 客厅): Living Room Light [light.living_room_light] off (also: big lamp)" in text
    assert "书房 (also: study): 台灯 [light.desk_lamp] off (also: 书桌灯)" in text
    assert "input_boolean.floor_lamp_power" not in text  # hidden helpers stay hidden
    bedroom_lights = await _ok(tools, "ha_list_devices", area="卧室", domain="lights")
    assert bedroom_lights == "Bedroom (also: 卧室): Bedroom Light [light.bedroom_light] off"
    result = await tools.call("ha_list_devices", {"area": "garage"})
    assert result.is_error
    assert "There is no room called garage" in result.text


async def test_state_questions(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    assert await _ok(tools, "ha_get_device_state", target="temperature") == "Living Room Temperature is 21.5 °C."
    assert await _ok(tools, "ha_get_device_state", target="front door") == "Front Door is unlocked."
    ha.call("input_boolean", "turn_on", {"entity_id": "input_boolean.floor_lamp_power"})
    ha.call("input_number", "set_value", {"entity_id": "input_number.floor_lamp_level", "value": 102})
    assert await _ok(tools, "ha_get_device_state", target="客厅的灯") == (
        "Living Room Light is off. Floor Lamp is on, at 40% brightness.")


async def test_switching_really_changes_state(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    assert await _ok(tools, "ha_control_device", target="Living Room Light", action="turn_on") == (
        "Living Room Light is on.")
    assert ha.state("light.living_room_light")["state"] == "on"
    await _ok(tools, "ha_control_device", target="light.living_room_light", action="toggle")
    assert ha.state("light.living_room_light")["state"] == "off"
    await _ok(tools, "ha_control_device", target="kitchen fan", action="turn_on")
    assert ha.state("input_boolean.kitchen_fan")["state"] == "on"
    await _ok(tools, "ha_control_device", target="kitchen fan", action="turn_off")
    assert ha.state("input_boolean.kitchen_fan")["state"] == "off"


async def test_brightness_and_colour(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    text = await _ok(tools, "ha_control_device", target="floor lamp", action="set_brightness", brightness=40)
    assert text == "Floor Lamp is on, at 40% brightness."
    assert ha.state("light.floor_lamp")["attributes"]["brightness"] == 102
    text = await _ok(tools, "ha_control_device", target="bedroom light", action="set_color", color="红色")
    assert text == "Bedroom Light is on, at 100% brightness, colour red."
    assert ha.state("light.bedroom_light")["attributes"]["hs_color"] == [0.0, 100.0]
    result = await tools.call("ha_control_device", {"target": "floor lamp", "action": "set_color", "color": "blue"})
    assert result == ToolResult("Floor Lamp cannot change colour.", is_error=True)
    result = await tools.call("ha_control_device", {"target": "floor lamp", "action": "set_brightness",
                                                    "brightness": 140})
    assert result.is_error
    assert "Value exceeds maximum allowed: 100" in result.text


async def test_thermostat(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    await _ok(tools, "ha_control_device", target="thermostat", action="set_temperature", temperature=23.5)
    assert ha.state("climate.living_room_thermostat")["attributes"]["temperature"] == 23.5
    text = await _ok(tools, "ha_control_device", target="thermostat", action="set_hvac_mode", hvac_mode="heat")
    assert text.startswith("Living Room Thermostat is heating, target 23.5°")
    assert ha.state("climate.living_room_thermostat")["state"] == "heat"
    await _ok(tools, "ha_control_device", target="thermostat", action="turn_off")
    assert ha.state("climate.living_room_thermostat")["state"] == "off"
    result = await tools.call("ha_control_device", {"target": "thermostat", "action": "set_temperature",
                                                    "temperature": 45})
    assert result == ToolResult("Living Room Thermostat accepts 10 to 30 degrees.", is_error=True)
    assert ha.state("climate.living_room_thermostat")["attributes"]["temperature"] == 23.5


async def test_blinds(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    await _ok(tools, "ha_control_device", target="卧室的窗帘", action="open")
    assert ha.state("cover.bedroom_blinds")["attributes"]["current_position"] == 100
    assert await _ok(tools, "ha_control_device", target="blinds", action="set_position", position=40) == (
        "Bedroom Blinds is open, at 40%.")
    assert ha.state("cover.bedroom_blinds")["attributes"]["current_position"] == 40
    await _ok(tools, "ha_control_device", target="bedroom", action="close")  # the only cover in the room
    assert ha.state("cover.bedroom_blinds")["state"] == "closed"


async def test_lock(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    assert await _ok(tools, "ha_control_device", target="大门", action="lock") == "Front Door is locked."
    assert ha.state("lock.front_door")["state"] == "locked"
    await _ok(tools, "ha_control_device", target="front door", action="unlock")
    assert ha.state("lock.front_door")["state"] == "unlocked"


async def test_speaker(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    await _ok(tools, "ha_control_device", target="kitchen speaker", action="turn_on")
    assert ha.state("media_player.kitchen_speaker")["state"] == "idle"
    await _ok(tools, "ha_control_device", target="kitchen speaker", action="play")
    assert ha.state("media_player.kitchen_speaker")["state"] == "playing"
    text = await _ok(tools, "ha_control_device", target="厨房的音箱", action="set_volume", volume=55)
    assert text == "Kitchen Speaker is playing, volume 55%."
    assert ha.state("media_player.kitchen_speaker")["attributes"]["volume_level"] == 0.55
    await _ok(tools, "ha_control_device", target="kitchen speaker", action="pause")
    assert ha.state("media_player.kitchen_speaker")["state"] == "paused"


async def test_area_command_acts_on_the_area(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    text = await _ok(tools, "ha_control_device", target="客厅的灯", action="turn_on")
    assert text == "In Living Room: Living Room Light is on. Floor Lamp is on, at 0% brightness."
    assert ha.state("light.living_room_light")["state"] == ha.state("light.floor_lamp")["state"] == "on"
    assert ha.state("light.bedroom_light")["state"] == "off"
    text = await _ok(tools, "ha_control_device", target="the lights in the living room", action="set_brightness",
                     brightness=20)
    assert text.endswith("Skipped: Living Room Light cannot change brightness.")
    assert ha.state("light.floor_lamp")["attributes"]["brightness"] == 51
    await _ok(tools, "ha_control_device", target="lounge lights", action="turn_off")
    assert ha.state("light.living_room_light")["state"] == ha.state("light.floor_lamp")["state"] == "off"


async def test_alias_and_chinese_names(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    await _ok(tools, "ha_control_device", target="big lamp", action="turn_on")
    assert ha.state("light.living_room_light")["state"] == "on"
    assert await _ok(tools, "ha_control_device", target="台灯", action="turn_on") == "台灯 is on."
    assert ha.state("light.desk_lamp")["state"] == "on"
    await _ok(tools, "ha_control_device", target="书房的台灯", action="turn_off")
    assert ha.state("light.desk_lamp")["state"] == "off"


async def test_ambiguity_and_unknown_names_change_nothing(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    result = await tools.call("ha_control_device", {"target": "lights", "action": "turn_on"})
    assert result.is_error
    assert "could mean several devices" in result.text
    assert "Floor Lamp (Living Room)" in result.text
    result = await tools.call("ha_control_device", {"target": "garage door", "action": "open"})
    assert result.is_error
    assert result.text.startswith('I could not find "garage door"')
    result = await tools.call("ha_get_device_state", {"target": "light.flor_lamp"})
    assert result.is_error
    assert result.text.startswith("There is no light.flor_lamp in Home Assistant. Close matches: light.floor_lamp")
    assert all(ha.state(e)["state"] == "off" for e in ("light.living_room_light", "light.floor_lamp",
                                                       "light.bedroom_light", "light.desk_lamp"))


async def test_scene_and_script(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    ha.call("input_boolean", "turn_on", {"entity_id": "input_boolean.living_room_light_power"})
    assert await _ok(tools, "ha_run_scene", name="movie time") == "Activated the scene Movie Time."
    assert ha.state("light.living_room_light")["state"] == "off"
    assert ha.state("light.floor_lamp")["attributes"]["brightness"] == 50
    assert await _ok(tools, "ha_run_script", name="good night") == "Started the script Good Night."
    await _eventually(lambda: ha.state("light.floor_lamp")["state"] == "off")
    result = await tools.call("ha_run_scene", {"name": "good night"})  # a script, not a scene
    assert result.is_error


async def test_assist(tools: ToolRegistry, ha: HomeAssistantPeer) -> None:
    assert await _ok(tools, "ha_assist", text="turn on the big lamp", language="en") == "Turned on the light"
    assert ha.state("light.living_room_light")["state"] == "on"
    result = await tools.call("ha_assist", {"text": "fly me to the moon", "language": "en"})
    assert result.is_error
    assert "no_intent_match" in result.text
    assert "ha_control_device" in result.text


async def test_live_index_follows_states_and_registry(service: HomeAssistantService, tools: ToolRegistry,
                                                      ha: HomeAssistantPeer) -> None:
    index = await service.index()
    ha.call("input_boolean", "turn_on", {"entity_id": "input_boolean.guest_mode"})
    await _eventually(lambda: index.entity("input_boolean.guest_mode").state == "on")  # type: ignore[union-attr]
    ha.call("input_boolean", "turn_off", {"entity_id": "input_boolean.guest_mode"})
    ha.ws([{"type": "config/entity_registry/update", "entity_id": "input_boolean.guest_mode",
            "aliases": ["访客模式"]}])
    try:
        await _eventually(lambda: "访客模式" in index.entity("input_boolean.guest_mode").aliases)  # type: ignore[union-attr]
        await _ok(tools, "ha_control_device", target="访客模式", action="turn_on")
        assert ha.state("input_boolean.guest_mode")["state"] == "on"
    finally:
        ha.ws([{"type": "config/entity_registry/update", "entity_id": "input_boolean.guest_mode", "aliases": []}])
        ha.call("input_boolean", "turn_off", {"entity_id": "input_boolean.guest_mode"})


async def test_bad_token(ha: HomeAssistantPeer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pibuddy")
    service = HomeAssistantService(_config(ha, token="not-a-token"))
    with pytest.raises(AuthFailed, match="the Home Assistant token is invalid"):
        await service.start()
    await service.stop()
    registry = ToolRegistry()
    for tool in homeassistant_tools(service):
        registry.register(tool)
    assert await registry.call("ha_get_device_state", {"target": "floor lamp"}) == ToolResult(
        "the Home Assistant token is invalid", is_error=True, cause=Cause(Failure.REFUSED, Party.HOME_ASSISTANT))
    assert "not-a-token" not in caplog.text


async def test_the_token_is_never_logged(tools: ToolRegistry, ha: HomeAssistantPeer,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pibuddy")
    await tools.call("ha_control_device", {"target": "lamp", "action": "turn_on"})  # fails: ambiguous
    await _ok(tools, "ha_get_device_state", target="front door")
    assert caplog.records, "the calls should have logged something"
    assert ha.token not in caplog.text


async def test_unreachable_home_assistant() -> None:
    config = HomeAssistantConfig.model_validate({"enabled": True, "url": f"http://127.0.0.1:{free_port()}",
                                                 "token": "x" * 20, "timeout": 2})
    service = HomeAssistantService(config)
    with pytest.raises(DeviceUnreachable):
        await service.start()
    registry = ToolRegistry()
    for tool in homeassistant_tools(service):
        registry.register(tool)
    assert await registry.call("ha_list_devices", {}) == ToolResult(
        "Home Assistant is not reachable, check it is running", is_error=True,
        cause=Cause(Failure.UNREACHABLE, Party.HOME_ASSISTANT))
