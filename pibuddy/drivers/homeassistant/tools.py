"""The Home Assistant tools the LLM gets: list, state, control, scenes, scripts and Assist.

Results are short sentences the voice can speak. Failures raise `DriverError` leaves, which the tool registry
turns into the text the LLM hears ("Home Assistant is not reachable, check it is running", close matches
for an unknown name, the candidates for an ambiguous one).
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Iterable
from typing import Any, Final

from pibuddy.drivers.homeassistant.actions import ACTIONS, Call, plan_calls
from pibuddy.drivers.homeassistant.client import RestClient
from pibuddy.drivers.homeassistant.index import Area, Entity, Index
from pibuddy.drivers.homeassistant.resolve import Target, describe, kind_domain, resolve
from pibuddy.drivers.homeassistant.service import HomeAssistantService
from pibuddy.drivers.homeassistant.speech import state_sentence
from pibuddy.drivers.names import normalize
from pibuddy.errors import NotFound
from pibuddy.tools.registry import Tool, ToolResult

_MAX_LISTED: Final = 80
_MAX_STATES: Final = 12
_TARGET_DESCRIPTION: Final = (
    "What to act on, as the user said it: a device name or alias ('floor lamp', '台灯'), an entity id "
    "('light.kitchen'), or a room plus a kind of device ('living room lights', '客厅的灯', "
    "'the lights in the bedroom'). A room plus a kind acts on every such device in the room.")


def homeassistant_tools(ha: HomeAssistantService) -> list[Tool]:
    """The tools, in the order they are listed."""
    return [
        Tool("ha_list_devices",
             "Lists the Home Assistant devices (entities) by room with their state and aliases. Use it to learn "
             "what exists before acting when unsure of a name. Both filters are optional.",
             {"type": "object", "properties": {
                 "domain": {"type": "string", "description": "Only this kind, e.g. light, switch, cover, climate, "
                                                             "media_player, sensor, lock, scene, script."},
                 "area": {"type": "string", "description": "Only this room (name or alias), e.g. Bedroom, 客厅."}}},
             lambda args: list_devices(ha, args.get("domain"), args.get("area"))),
        Tool("ha_get_device_state",
             "Tells the current state of a Home Assistant device: is the light on, what temperature is it, "
             "is the door locked, how open are the blinds.",
             {"type": "object", "properties": {"target": {"type": "string", "description": _TARGET_DESCRIPTION}},
              "required": ["target"]},
             lambda args: get_state(ha, args["target"])),
        Tool("ha_control_device",
             "Controls Home Assistant devices: switch on/off/toggle, dim, colour, thermostat temperature and "
             "mode, open/close/position of blinds, lock/unlock, play/pause/volume of speakers. Give the value "
             "argument the action needs (brightness, color, temperature, hvac_mode, position, volume).",
             _CONTROL_SCHEMA,
             lambda args: control(ha, args)),
        Tool("ha_run_scene", "Activates a Home Assistant scene by name, e.g. 'movie time'.",
             {"type": "object", "properties": {"name": {"type": "string", "description": "The scene's name."}},
              "required": ["name"]},
             lambda args: run_named(ha, args["name"], "scene", "Activated the scene")),
        Tool("ha_run_script", "Runs a Home Assistant script by name, e.g. 'good night'.",
             {"type": "object", "properties": {"name": {"type": "string", "description": "The script's name."}},
              "required": ["name"]},
             lambda args: run_named(ha, args["name"], "script", "Started the script")),
        Tool("ha_assist",
             "Passes a whole spoken command to Home Assistant's own Assist ('turn off the kitchen light', "
             "'打开客厅的灯'). Fast for simple commands; if it does not understand, use the other ha_ tools.",
             {"type": "object", "properties": {
                 "text": {"type": "string", "description": "The command as the user said it."},
                 "language": {"type": "string", "description": "Language code such as en or zh-cn; "
                                                               "omit for the configured one."}},
              "required": ["text"]},
             lambda args: assist(ha, args["text"], args.get("language"))),
    ]


_CONTROL_SCHEMA: Final = {
    "type": "object",
    "properties": {
        "target": {"type": "string", "description": _TARGET_DESCRIPTION},
        "action": {"type": "string", "enum": list(ACTIONS)},
        "brightness": {"type": "integer", "minimum": 0, "maximum": 100,
                       "description": "set_brightness: percent (0 turns the light off)."},
        "color": {"type": "string", "description": "set_color: a colour name (red, warm white, 蓝色) or #RRGGBB."},
        "temperature": {"type": "number", "description": "set_temperature: target temperature in degrees."},
        "hvac_mode": {"type": "string", "enum": ["off", "heat", "cool", "heat_cool", "auto", "dry", "fan_only"],
                      "description": "set_hvac_mode: the thermostat mode."},
        "position": {"type": "integer", "minimum": 0, "maximum": 100,
                     "description": "set_position: percent open (0 closed, 100 fully open)."},
        "volume": {"type": "integer", "minimum": 0, "maximum": 100, "description": "set_volume: percent."},
    },
    "required": ["target", "action"],
}


async def list_devices(ha: HomeAssistantService, domain: str | None, area_name: str | None) -> str:
    index = await ha.index()
    entities = index.entities
    if domain:
        wanted = kind_domain(domain) or domain.strip().casefold()
        entities = [e for e in entities if e.domain == wanted]
    if area_name:
        area = _find_area(index, area_name)
        entities = [e for e in entities if e.area_id == area.area_id]
    if not entities:
        return "No devices match."
    by_area: dict[Area | None, list[Entity]] = {area: [] for area in [*index.areas, None]}
    for entity in entities[:_MAX_LISTED]:
        by_area[index.area(entity.area_id)].append(entity)
    by_area = {area: members for area, members in by_area.items() if members}
    lines = [f"{area.name}{_also(area.aliases)}: " if area else "No room: " for area in by_area]
    lines = [heading + "; ".join(_entity_line(e) for e in members)
             for heading, members in zip(lines, by_area.values(), strict=True)]
    if len(entities) > _MAX_LISTED:
        lines.append(f"... and {len(entities) - _MAX_LISTED} more; filter by area or domain.")
    return "\n".join(lines)


def _entity_line(entity: Entity) -> str:
    return f"{entity.name} [{entity.entity_id}] {entity.state}{_also(entity.aliases)}"


def _also(aliases: Iterable[str]) -> str:
    names = list(aliases)
    return f" (also: {', '.join(names)})" if names else ""


def _find_area(index: Index, name: str) -> Area:
    key = normalize(name)
    for area in index.areas:
        if key in {normalize(n) for n in area.names}:
            return area
    known = [n for a in index.areas for n in a.names]
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Close matches: {', '.join(close)}." if close else f" Rooms: {', '.join(a.name for a in index.areas)}."
    raise NotFound(f"There is no room called {name}.{hint}")


async def get_state(ha: HomeAssistantService, phrase: str) -> str:
    target = resolve(await ha.index(), phrase)
    async with ha.rest() as rest:
        return await _sentences(rest, target.entities[:_MAX_STATES])


async def _sentences(rest: RestClient, entities: Iterable[Entity]) -> str:
    entities = list(entities)
    states = await asyncio.gather(*(rest.state(e.entity_id) for e in entities))
    return " ".join(state_sentence(e.name, s) for e, s in zip(entities, states, strict=True))


async def control(ha: HomeAssistantService, args: dict[str, Any]) -> str:
    action = ACTIONS[args["action"]]
    value = args.get(action.value) if action.value else None
    index = await ha.index()
    target = resolve(index, args["target"], domains=action.domains)
    calls = plan_calls(action, target.entities, value)
    async with ha.rest() as rest:
        for call in calls:
            await rest.call_service(call.domain, call.service, {**call.data, **_call_target(target, call)})
        done = await _sentences(rest, [e for call in calls for e in call.entities][:_MAX_STATES])
    skipped = [reason for call in calls for reason in call.skipped]
    where = f"In {target.area.name}: " if target.area else ""
    return f"{where}{done}" + (f" Skipped: {'; '.join(skipped)}." if skipped else "")


def _call_target(target: Target, call: Call) -> dict[str, Any]:
    """The whole area when every entity of the area took part; otherwise the entities by id."""
    if target.area is not None and target.domain == call.domain and len(call.entities) == len(target.entities):
        return target.service_target
    return {"entity_id": [e.entity_id for e in call.entities]}


async def run_named(ha: HomeAssistantService, name: str, domain: str, verb: str) -> str:
    index = await ha.index()
    target = resolve(index, name, domains={domain})
    entity = target.entities[0]
    async with ha.rest() as rest:
        await rest.call_service(domain, "turn_on", {"entity_id": entity.entity_id})
    return f"{verb} {describe(entity, index)}."


async def assist(ha: HomeAssistantService, text: str, language: str | None) -> ToolResult:
    async with ha.rest() as rest:
        answer = await rest.conversation(text, language=language or ha.assist_language)
    raw = answer.get("response")
    response: dict[str, Any] = raw if isinstance(raw, dict) else {}
    speech = (((response.get("speech") or {}).get("plain") or {}).get("speech") or "").strip()
    if response.get("response_type") == "error":
        code = (response.get("data") or {}).get("code", "error")
        return ToolResult(f"Home Assistant could not do that ({code}): {speech or 'no reason given'}. "
                          "Use ha_control_device or ha_get_device_state instead.", is_error=True)
    return ToolResult(speech or "Done.")
