"""The BLE tools: `ble_list_sensors`, `ble_read_sensor` and `ble_control`, answering in spoken style.

Sensors are found by name, alias or area (configured), or by the title the parser gives an unconfigured one
("ATC 18B2"). A sensor that is silent, undecryptable or out of date is a `DriverError` whose message is
the sentence the user hears ("the bedroom sensor has not been seen for 10 minutes").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pibuddy.config import BleSensorConfig, GattDeviceConfig
from pibuddy.drivers.ble.adverts import Problem
from pibuddy.drivers.ble.driver import BleDriver
from pibuddy.drivers.ble.gatt import decode, needs_value, render
from pibuddy.drivers.ble.sensors import SensorRecord, age_text, reading_text
from pibuddy.drivers.names import find_named, normalize
from pibuddy.drivers.sentences import possessive, sentence, set_to, the, turned, words
from pibuddy.errors import (
    AuthFailed,
    DeviceNotResponding,
    DeviceUnreachable,
    DriverError,
    InvalidArguments,
    NotFound,
    NotSetUp,
)
from pibuddy.tools.arguments import integer, object_schema, string
from pibuddy.tools.registry import Tool, tool

_PROBLEM_TEXT = {
    Problem.NEEDS_BINDKEY: "the {name} sends encrypted data; its bindkey must be set in the configuration",
    Problem.WRONG_BINDKEY: "the {name} sends data that cannot be decrypted; its bindkey looks wrong",
    Problem.DOWNGRADE: "the {name} sent unencrypted data although it has a bindkey, so it was ignored",
}


@dataclass(frozen=True, slots=True)
class _Sensor:
    """A sensor as the tools see it: configured, or heard and named by its parser."""

    name: str
    address: str
    area: str | None = None
    aliases: list[str] = field(default_factory=list)

    @classmethod
    def configured(cls, sensor: BleSensorConfig) -> _Sensor:
        return cls(sensor.name, sensor.address.upper(), sensor.area, list(sensor.aliases))


def ble_tools(driver: BleDriver) -> list[Tool]:
    """The BLE tools; `ble_control` only when GATT devices are configured."""

    @tool("ble_list_sensors",
          "Lists the Bluetooth (BLE) sensors with their latest readings: temperature, humidity, battery ...")
    async def list_sensors(arguments: dict[str, Any]) -> str:
        del arguments
        return await sensor_overview(driver)

    @tool("ble_read_sensor",
          "Reads a Bluetooth (BLE) sensor by its name or room, e.g. name \"bedroom\" for \"what's the "
          "temperature in the bedroom\". quantity narrows the answer (temperature, humidity, battery ...); "
          "empty: every reading.",
          params={"name": string(description="sensor name, alias or room"),
                  "quantity": string(default="", description="e.g. temperature; empty for all")})
    async def read_sensor(arguments: dict[str, Any]) -> str:
        return await read_sensors(driver, arguments["name"], arguments["quantity"])

    tools = [list_sensors, read_sensor]
    if driver.config.devices:
        tools.append(_control_tool(driver))
    return tools


def _control_tool(driver: BleDriver) -> Tool:
    schema = object_schema({
        "device": string(description="device name, alias or room"),
        "action": string(description="one of the device's actions or readings"),
        "value": integer(description="the number for actions that take one (e.g. brightness)"),
    })
    schema["required"] = ["device", "action"]

    async def control(arguments: dict[str, Any]) -> str:
        return await control_device(driver, arguments["device"], arguments["action"], arguments.get("value"))

    catalog = "; ".join(_device_summary(device) for device in driver.config.devices)
    return Tool("ble_control", f"Controls or reads a Bluetooth (BLE) device. Devices: {catalog}.", schema, control)


def _device_summary(device: GattDeviceConfig) -> str:
    actions = [f"{name} ({action.minimum}-{action.maximum})" if needs_value(action) else name
               for name, action in device.actions.items()]
    where = f" in the {device.area}" if device.area else ""
    parts = [f"actions {', '.join(actions)}"] if actions else []
    if device.readings:
        parts.append(f"readings {', '.join(device.readings)}")
    return f"{device.name}{where}: {'; '.join(parts) or 'nothing configured'}"


async def sensor_overview(driver: BleDriver) -> str:
    await driver.refresh([sensor.address for sensor in driver.sensors])
    now = driver.clock()
    configured = {sensor.address.upper() for sensor in driver.sensors}
    lines = [_overview_line(driver, _Sensor.configured(sensor), now) for sensor in driver.sensors]
    lines += [_overview_line(driver, _Sensor(record.title, record.address), now)
              for record in driver.cache.records() if record.address not in configured and record.readings]
    return "\n".join(lines) or "No Bluetooth sensors are configured or nearby."


def _overview_line(driver: BleDriver, sensor: _Sensor, now: float) -> str:
    where = f" ({sensor.area})" if sensor.area else ""
    try:
        return f"{sensor.name}{where}: {_describe(driver, sensor, '', now)}"
    except DriverError as exc:
        return f"{sensor.name}{where}: {exc.message}"


async def read_sensors(driver: BleDriver, name: str, quantity: str) -> str:
    sensors = _find_sensors(driver, name)
    await driver.refresh([sensor.address for sensor in sensors])
    now = driver.clock()
    if len(sensors) == 1:
        return f"The {sensors[0].name}: {_describe(driver, sensors[0], quantity, now)}."
    answers, failures = [], []
    for sensor in sensors:
        try:
            answers.append(f"The {sensor.name}: {_describe(driver, sensor, quantity, now)}.")
        except DriverError as exc:
            failures.append(f"{exc.message[0].upper()}{exc.message[1:]}.")
    if not answers:
        raise DeviceUnreachable(" ".join(failures))
    return " ".join(answers + failures)


def _find_sensors(driver: BleDriver, name: str) -> list[_Sensor]:
    known = [_Sensor.configured(sensor) for sensor in driver.sensors]
    configured = {sensor.address for sensor in known}
    known += [_Sensor(record.title, record.address, aliases=[record.address])
              for record in driver.cache.records() if record.address not in configured]
    found = find_named(name, known)
    if not found:
        names = ", ".join(f"{s.name} ({s.area})" if s.area else s.name for s in known) or "none"
        raise NotFound(f"there is no Bluetooth sensor called {name!r}; known sensors: {names}")
    return found


def _describe(driver: BleDriver, sensor: _Sensor, quantity: str, now: float) -> str:
    """ "temperature 21.5 °C, humidity 48 % (12 seconds ago)", or a `DriverError` saying why not."""
    record = driver.cache.get(sensor.address)
    if record is None:
        raise DeviceUnreachable(f"the {sensor.name} has not been heard; it may be out of range or its battery flat",
                                device=sensor.name)
    fresh = record.values_at is not None and now - record.values_at <= driver.config.stale_seconds
    if not fresh:
        raise _why_no_values(sensor, record, now)
    readings = list(record.readings.values())
    if quantity:
        wanted = normalize(quantity)
        readings = [r for r in readings if wanted in (normalize(r.key), normalize(r.name))]
        if not readings:
            reported = ", ".join(normalize(r.name or r.key) for r in record.readings.values())
            raise NotFound(f"the {sensor.name} does not report {quantity}; it reports {reported}")
    assert record.values_at is not None
    return f"{', '.join(reading_text(r) for r in readings)} ({age_text(now - record.values_at)} ago)"


def _why_no_values(sensor: _Sensor, record: SensorRecord, now: float) -> DriverError:
    if record.problem is not None:
        unusable = NotSetUp if record.problem is Problem.NEEDS_BINDKEY else AuthFailed
        return unusable(_PROBLEM_TEXT[record.problem].format(name=sensor.name), device=sensor.name)
    if record.values_at is None:
        return DeviceNotResponding(f"the {sensor.name} has been heard but has sent no readings yet",
                                   device=sensor.name)
    return DeviceUnreachable(f"the {sensor.name} has not been seen for {age_text(now - record.values_at)}",
                             device=sensor.name)


async def control_device(driver: BleDriver, name: str, action_name: str, value: int | None) -> str:
    devices = find_named(name, driver.config.devices)
    if not devices:
        names = ", ".join(device.name for device in driver.config.devices)
        raise NotFound(f"there is no Bluetooth device called {name!r}; known devices: {names}")
    if len(devices) > 1:
        raise InvalidArguments(f"{name!r} could be {', '.join(device.name for device in devices)}; say which one")
    device = devices[0]
    wanted = normalize(action_name)
    action_key = next((key for key in device.actions if normalize(key) == wanted), None)
    if action_key is not None:
        action = device.actions[action_key]
        await driver.gatt.write(device, action, render(action, value))
        said = value if needs_value(action) else None
        return sentence([_action_clause(the(device.name), words(action_key), said)])
    reading_key = next((key for key in device.readings if normalize(key) == wanted), None)
    if reading_key is not None:
        reading = device.readings[reading_key]
        shown = decode(await driver.gatt.read(device, reading), reading)
        unit = f" {reading.unit}" if reading.unit else ""
        return sentence([f"{possessive(the(device.name))} {words(reading_key)} is {shown}{unit}"])
    offered = ", ".join([*device.actions, *device.readings]) or "nothing"
    raise InvalidArguments(f"the {device.name} cannot {action_name!r}; it offers: {offered}")


def _action_clause(subject: str, action: str, value: int | None) -> str:
    """`turned the desk lamp on`, `set the desk lamp's brightness to 200`, `sent the colour command to the
    desk lamp`: configured actions are byte writes with any name, so the others are "commands"."""
    if value is not None:
        return set_to(possessive(subject), action, str(value))
    if action.casefold() in ("on", "off"):
        return turned(subject, action.casefold() == "on")
    return f"sent the {action} command to {subject}"
