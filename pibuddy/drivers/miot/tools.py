"""The MIoT tools the LLM gets. Results are short sentences the voice can speak; failures raise `DriverError`
leaves, which the tool registry turns into the text the LLM hears ("desk lamp is offline").

Four general tools take a device by spoken name; with `miot.device_tools`, each device whose spec is cached
also gets a tool of its own whose arguments are its controls, with the spec's ranges, units and enums.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Final

from pibuddy.drivers.miot.controls import Control, Controls
from pibuddy.drivers.miot.driver import MiotDriver
from pibuddy.drivers.miot.inventory import Device
from pibuddy.drivers.names import normalize
from pibuddy.drivers.sentences import listed, possessive, sentence, set_to, the, turned, words
from pibuddy.errors import DriverError, InvalidArguments
from pibuddy.tools.registry import Tool

_TARGET: Final = {"type": "string", "description": (
    "The device as the user said it: a name or alias ('desk lamp', '台灯'), or a room plus a kind "
    "('living room lights', '客厅的灯'); a room plus a kind means every such device in the room.")}
_VALUE: Final = {"type": ["boolean", "integer", "number", "string", "array"], "description": (
    "The new value: true/false for on/off, a number within the control's range, one of its named modes, "
    "or the inputs of an action (omit for actions without inputs).")}


def miot_tools(driver: MiotDriver) -> list[Tool]:
    """The general tools, then one per device with a cached spec (when `device_tools` is on)."""
    tools = [
        Tool("miot_list_devices",
             "Lists the Mi Home (Xiaomi) devices with room, model, whether they are online and what they can do.",
             {"type": "object", "properties": {"room": {"type": "string", "description": "Only this room."}}},
             lambda args: list_devices(driver, args.get("room"))),
        Tool("miot_get_state",
             "Tells the current state of a Mi Home device: on or off, brightness, mode, temperature ...",
             {"type": "object", "properties": {"target": _TARGET}, "required": ["target"]},
             lambda args: get_state(driver, args["target"])),
        Tool("miot_control",
             "Controls a Mi Home device: sets one of its controls (on, brightness, color_temperature, mode, "
             "fan_level ...) or runs one of its actions (toggle ...). miot_list_devices shows each device's "
             "controls with their ranges.",
             {"type": "object", "properties": {
                 "target": _TARGET,
                 "control": {"type": "string", "description": "The control or action, e.g. on, brightness, mode."},
                 "value": _VALUE}, "required": ["target", "control"]},
             lambda args: control(driver, args["target"], args["control"], args.get("value"))),
        Tool("miot_run_scene", "Runs a manual scene of the Mi Home app by name, e.g. 'good night'.",
             {"type": "object", "properties": {"name": {"type": "string", "description": "The scene's name."}},
              "required": ["name"]},
             lambda args: run_scene(driver, args["name"])),
    ]
    if driver.config.device_tools:
        tools += device_tools(driver)
    return tools


def device_tools(driver: MiotDriver) -> list[Tool]:
    """One tool per device whose spec is cached: `miot_desk_lamp(on=true, brightness=40)`."""
    tools: list[Tool] = []
    taken: set[str] = set()
    for device in driver.devices():
        controls = driver.cached_controls(device)
        if controls is None or not (controls.writable or controls.actions):
            continue
        name = _tool_name(device, taken)
        taken.add(name)
        tools.append(Tool(
            name, f"Controls {device.spoken()}, a Mi Home {controls.spec.kind}: {controls.describe()}. "
                  "Give only the controls to change.",
            controls.tool_schema(),
            partial(apply_to_device, driver, device, controls)))
    return tools


async def list_devices(driver: MiotDriver, room: str | None) -> str:
    devices = driver.devices()
    if room:
        wanted = room.strip().casefold()
        devices = [d for d in devices if (d.room or "").casefold() == wanted]
    if not devices:
        return f"No Mi Home devices in {room}." if room else "No Mi Home devices are set up."
    return "\n".join(_device_line(driver, d) for d in devices)


async def get_state(driver: MiotDriver, target: str) -> str:
    devices = driver.resolve(target)
    lines = await _each(devices, lambda d: _state_line(driver, d))
    return "\n".join(lines)


async def control(driver: MiotDriver, target: str, name: str, value: Any) -> str:
    devices = driver.resolve(target)
    done = await _each(devices, lambda d: _control_one(driver, d, name, value))
    return " ".join(done)


async def run_scene(driver: MiotDriver, name: str) -> str:
    scene = await driver.run_scene(name)
    return f"Started the scene {scene.name}."


async def apply_to_device(driver: MiotDriver, device: Device, controls: Controls, args: dict[str, Any]) -> str:
    """A per-device tool call: every given control in one write, then the action if one was named."""
    changes = [(c, c.prop.to_wire(args[c.name], device=device.name))
               for c in controls.writable if c.name in args and c.prop is not None]
    action = controls.find(args["action"]) if "action" in args else None
    if not changes and action is None:
        raise InvalidArguments(f"Say what to change on {device.name}: {controls.describe()}")
    if changes:
        await driver.write(device, changes)
    if action is not None:
        await driver.act(device, action, [])
    subjects = [the(device.name), *["it"] * len(changes)]  # "turned the desk lamp on and set its brightness ..."
    clauses = [_change_clause(subject, c, v) for subject, (c, v) in zip(subjects, changes, strict=False)]
    if action is not None:
        clauses.append(_action_clause(subjects[len(clauses)], action))
    return sentence(clauses)


async def _control_one(driver: MiotDriver, device: Device, name: str, value: Any) -> str:
    controls = await driver.controls(device)
    found = controls.find(name)
    if found is None:
        raise InvalidArguments(f"{device.name} has no control {name!r}; it offers {controls.describe()}")
    if found.action is not None:
        out = await driver.act(device, found, _action_inputs(controls, found, value, device.name))
        result = f" It answered {listed([str(v) for v in out])}." if out else ""
        return sentence([_action_clause(the(device.name), found)]) + result
    assert found.prop is not None
    if not found.prop.writable:
        raise InvalidArguments(f"{found.name} of {device.name} can only be read")
    if value is None:
        raise InvalidArguments(f"Give a value for {found.name}: {found.summary()}")
    wire = found.prop.to_wire(value, device=device.name)
    await driver.write(device, [(found, wire)])
    return sentence([_change_clause(the(device.name), found, wire)])


def _change_clause(subject: str, control_: Control, wire: Any) -> str:
    """What a write did: `turned the desk lamp on`, `set its brightness to 40 %`."""
    assert control_.prop is not None
    if control_.prop.format == "bool" and isinstance(wire, bool):
        switched = subject if control_.name == "on" else f"{possessive(subject)} {_switch_words(control_.name)}"
        return turned(switched, wire)
    return set_to(possessive(subject), words(control_.name), control_.prop.spoken(wire))


def _action_clause(subject: str, action: Control) -> str:
    """`asked the desk lamp to toggle`: spec actions are named by verbs."""
    return f"asked {subject} to {words(action.name)}"


def _switch_words(name: str) -> str:
    """An on/off control's name without its `_on`: `indicator_light_on` -> `indicator light`."""
    return words(name.removesuffix("_on"))


def _action_inputs(controls: Controls, found: Control, value: Any, device: str) -> list[Any]:
    """The action's positional inputs, each checked against the property spec it refers to."""
    assert found.action is not None
    wanted = found.action.ins
    given = [] if value is None else value if isinstance(value, list) else [value]
    if len(given) != len(wanted):
        raise InvalidArguments(f"{found.name} of {device} takes {len(wanted)} inputs")
    service = controls.spec.service(found.action.siid)
    inputs = []
    for piid, item in zip(wanted, given, strict=True):
        prop = service.property(piid) if service else None
        inputs.append(prop.to_wire(item, device=device) if prop else item)
    return inputs


async def _state_line(driver: MiotDriver, device: Device) -> str:
    """`The desk lamp in the Study is off, with brightness 1 % and color temperature 2700 K.`"""
    controls = await driver.controls(device)
    values = await driver.read(device, controls.readable)
    power = next((v for c, v in values if c.name == "on" and isinstance(v, bool)), None)
    parts = [_reading(c, v) for c, v in values if not (c.name == "on" and isinstance(v, bool))]
    subject = _located(device)
    if power is not None:
        return sentence([f"{subject} is {'on' if power else 'off'}{f', with {listed(parts)}' if parts else ''}"])
    return sentence([f"{subject} reads {listed(parts)}" if parts else f"{subject} has nothing to read"])


def _reading(control_: Control, value: Any) -> str:
    """`brightness 40 %`, `indicator light off`, `mode unknown (why)`."""
    assert control_.prop is not None
    if isinstance(value, DriverError):
        return f"{words(control_.name)} unknown ({value.message})"
    if control_.prop.format == "bool" and isinstance(value, bool):
        return f"{_switch_words(control_.name)} {control_.prop.spoken(value)}"
    return f"{words(control_.name)} {control_.prop.spoken(value)}"


def _located(device: Device) -> str:
    """`the desk lamp in the Study`; the room is left out when the name already says it (`Hall switch`)."""
    room = device.room
    if not room or f" {normalize(room)} " in f" {normalize(device.name)} ":
        return the(device.name)
    return f"{the(device.name)} in {the(room)}"


def _device_line(driver: MiotDriver, device: Device) -> str:
    state = {True: "online", False: "offline", None: "state unknown"}[driver.online(device)]
    path = "LAN and cloud" if device.lan_ready and device.did else "LAN" if device.lan_ready else "cloud"
    controls = driver.cached_controls(device)
    can = controls.describe() if controls is not None else "controls not loaded yet"
    return f"{device.spoken()}: {device.model or 'unknown model'}, {state}, via {path}; {can}."


async def _each(devices: Sequence[Device], job: Callable[[Device], Awaitable[str]]) -> list[str]:
    """Run `job` for every device at once; one device's failure is reported beside the others' results, and
    if all fail the first error is raised so the LLM sees an error."""
    results = await asyncio.gather(*(job(d) for d in devices), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if not isinstance(error, DriverError):
            raise error
    if len(errors) == len(results):
        raise errors[0]
    return [r.message if isinstance(r, DriverError) else str(r) for r in results]


def _tool_name(device: Device, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "_", device.name.casefold()).strip("_")
    if not base:  # a name in Chinese: the model and the end of the did keep it readable and stable
        base = re.sub(r"[^a-z0-9]+", "_", (device.model or "device").casefold()).strip("_")
        base += f"_{(device.did or '')[-4:]}" if device.did else ""
    name, suffix = f"miot_{base}"[:60], 2
    while name in taken:
        name, suffix = f"miot_{base}"[:57] + f"_{suffix}", suffix + 1
    return name
