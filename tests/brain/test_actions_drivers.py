"""The local brain beyond Home Assistant: MIoT devices, BLE sensors and GATT devices, and GPIO relays name
themselves through the real drivers' vocabulary sources and are driven through their real tools.

A table of English and Chinese sentences -> the tool calls planned over a household of all four drivers
(every call checked against the driver's own tool schema), then each driver end to end: the brain's call
reaches a simulated miIO lamp on 127.0.0.1, the fake BLE radio and gpiozero's mock pins.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from pibuddy.brain import LocalBrain, Outcome
from pibuddy.brain.actions import plan
from pibuddy.brain.intents import IntentMatch, IntentMatcher
from pibuddy.brain.vocabulary import (
    BleVocabulary,
    MiotVocabulary,
    RelayVocabulary,
    Vocabulary,
    VocabularySource,
    gather_vocabulary,
    vocabulary_sources,
)
from pibuddy.config import BleConfig, Config, GpioConfig, HomeAssistantConfig, MiotConfig
from pibuddy.drivers.ble import BleDriver, BleService, ble_tools
from pibuddy.drivers.gpio import Relays, RelayService, gpio_tools
from pibuddy.drivers.homeassistant import HomeAssistantService, homeassistant_tools
from pibuddy.drivers.miot import MiotDriver, miot_tools
from pibuddy.drivers.miot.cloud import MiCloud
from pibuddy.drivers.miot.driver import SPECS_DIR
from pibuddy.drivers.miot.lan_transport import LanTransport
from pibuddy.drivers.miot.spec_store import SpecStore
from pibuddy.tools.registry import Tool, ToolRegistry
from pibuddy.wiring.tools import build_toolbox
from tests.brain.conftest import FixedVocabulary
from tests.peers.ble_adverts import BTHOME_UUID, bthome_objects, bthome_plain
from tests.peers.fake_bleak_backend import AIR, FakeClient, FakeScanner
from tests.peers.miio_device import SimulatedDevice, load_spec

TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
LAMP_DID = 4294967298
LAMP_URN = "urn:miot-spec-v2:device:light:0000A001:pibuddy-lamp1:1"
FAN_URN = "urn:miot-spec-v2:device:fan:0000A005:pibuddy-fan1:1"
SENSOR, STRIP = "A4:C1:38:8D:18:B2", "BE:FF:20:00:0B:7A"
WRITE_UUID = "0000ffd9-0000-1000-8000-00805f9b34fb"


def _miot_config(lamp_ip: str = "127.0.0.1") -> MiotConfig:
    return MiotConfig.model_validate({"enabled": True, "lan_timeout": 0.3, "discovery": False, "devices": [
        {"name": "reading lamp", "aliases": ["阅读灯"], "room": "Study", "did": str(LAMP_DID), "ip": lamp_ip,
         "token": TOKEN, "model": "pibuddy.light.lamp1", "urn": LAMP_URN},
        {"name": "tower fan", "aliases": ["塔扇"], "room": "Bedroom", "did": "5123456789",
         "model": "pibuddy.fan.fan1", "urn": FAN_URN}]})


def _miot_driver(state: Path, port: int = 54321, lamp_ip: str = "127.0.0.1") -> MiotDriver:
    specs = SpecStore(state / SPECS_DIR, fetch=False)
    specs.save(LAMP_URN, load_spec("lamp"))
    specs.save(FAN_URN, load_spec("fan"))
    return MiotDriver(_miot_config(lamp_ip), state, transports=[LanTransport(timeout=0.3, port=port)],
                      cloud=MiCloud(state_dir=state), specs=specs, port=port)


BLE = BleConfig.model_validate({
    "enabled": True, "scan_seconds": 1.0, "connect_timeout": 1.0, "idle_disconnect_seconds": 0.3,
    "sensors": [{"address": SENSOR, "name": "bedroom sensor", "area": "bedroom", "aliases": ["thermometer"]}],
    "devices": [{"address": STRIP, "name": "strip light", "area": "study", "aliases": ["灯带"],
                 "actions": {"on": {"characteristic": "ffd9", "data": "cc2333"},
                             "off": {"characteristic": "ffd9", "data": "cc2433"},
                             "brightness": {"characteristic": "ffd9", "minimum": 1, "maximum": 255,
                                            "data": "56{value:02x}{value:02x}{value:02x}00f0aa"}}}]})
GPIO = GpioConfig.model_validate({"enabled": True, "relays": [
    {"name": "pump", "pin": 23, "area": "Garden", "aliases": ["water pump", "水泵"]},
    {"name": "hall lamp", "pin": 24, "area": "Hall"}]})


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("miot-state")


@pytest.fixture(scope="module")
def drivers(state_dir: Path) -> tuple[MiotDriver, BleDriver, Relays]:
    """The real drivers; nothing here is called in the planning tests, only named and schema-checked."""
    return _miot_driver(state_dir), BleDriver(BLE), Relays(GPIO, pin_factory=MockFactory())


@pytest.fixture(scope="module")
def everything(household: Vocabulary, drivers: tuple[MiotDriver, BleDriver, Relays]) -> Vocabulary:
    miot, ble, relays = drivers
    sources: list[VocabularySource] = [FixedVocabulary(household), MiotVocabulary(miot), BleVocabulary(ble.config),
                                       RelayVocabulary(relays.configs)]
    return asyncio.run(gather_vocabulary(sources))


@pytest.fixture(scope="module")
def schemas(drivers: tuple[MiotDriver, BleDriver, Relays]) -> ToolRegistry:
    miot, ble, relays = drivers
    return _registry([*homeassistant_tools(HomeAssistantService(HomeAssistantConfig(enabled=True))),
                      *miot_tools(miot), *ble_tools(ble), *gpio_tools(relays)])


def _registry(tools: list[Tool]) -> ToolRegistry:
    registry = ToolRegistry(timeout=10)
    for tool in tools:
        registry.register(tool)
    return registry


Calls = list[tuple[str, dict[str, Any]]]

ENGLISH: list[tuple[str, Calls]] = [
    ("turn on the reading lamp", [("miot_control", {"target": "reading lamp", "control": "on", "value": True})]),
    ("set the reading lamp brightness to 40%", [("miot_control", {"target": "reading lamp", "control": "brightness",
                                                                  "value": 40})]),
    ("turn off the tower fan", [("miot_control", {"target": "tower fan", "control": "on", "value": False})]),
    ("is the tower fan on", [("miot_get_state", {"target": "tower fan"})]),
    ("turn off the fans in the bedroom", [("ha_control_device", {"target": "fan.ceiling_fan", "action": "turn_off"}),
                                          ("miot_control", {"target": "tower fan", "control": "on", "value": False})]),
    ("turn on the lights in the study", [("ha_control_device", {"target": "light.desk_lamp", "action": "turn_on"}),
                                         ("miot_control", {"target": "reading lamp", "control": "on", "value": True}),
                                         ("ble_control", {"device": "strip light", "action": "on"})]),
    ("what is the temperature in the bedroom", [("ble_read_sensor", {"name": "bedroom sensor",
                                                                     "quantity": "temperature"})]),
    ("what is the temperature in the living room", [("ha_get_device_state", {"target": "Living Room temperature"})]),
    ("what is the thermometer", [("ble_read_sensor", {"name": "bedroom sensor", "quantity": ""})]),
    ("turn on the strip light", [("ble_control", {"device": "strip light", "action": "on"})]),
    ("set the strip light brightness to 40%", [("ble_control", {"device": "strip light", "action": "brightness",
                                                                "value": 102})]),  # 40 % of its 1-255 scale
    ("turn on the pump", [("gpio_switch", {"name": "pump", "action": "on"})]),
    ("switch off the water pump", [("gpio_switch", {"name": "pump", "action": "off"})]),  # alias
    ("is the pump on", [("gpio_switch", {"name": "pump", "action": "state"})]),
    ("turn off the lights in the hall", [("gpio_switch", {"name": "hall lamp", "action": "off"})]),  # named a lamp
]

CHINESE: list[tuple[str, Calls]] = [
    ("打开阅读灯", [("miot_control", {"target": "reading lamp", "control": "on", "value": True})]),
    ("把阅读灯亮度调到30%", [("miot_control", {"target": "reading lamp", "control": "brightness", "value": 30})]),
    ("关闭塔扇", [("miot_control", {"target": "tower fan", "control": "on", "value": False})]),
    ("打开灯带", [("ble_control", {"device": "strip light", "action": "on"})]),
    ("卧室温度是多少", [("ble_read_sensor", {"name": "bedroom sensor", "quantity": "temperature"})]),  # HA's 卧室
    ("关闭水泵", [("gpio_switch", {"name": "pump", "action": "off"})]),
]

_matcher = functools.cache(IntentMatcher)


def _planned(language: str, text: str, vocabulary: Vocabulary) -> Calls:
    match = _matcher(language).match(text, vocabulary)
    assert isinstance(match, IntentMatch), f"{text!r} was not understood: {match}"
    planned = plan(match, vocabulary)
    assert planned is not None, f"{text!r} ({match.intent}) has no plan"
    return [(call.tool, dict(call.arguments)) for call in planned.calls]


@pytest.mark.parametrize(("language", "text", "calls"), [("en", t, c) for t, c in ENGLISH] +
                         [("zh-CN", t, c) for t, c in CHINESE], ids=[t for t, _ in ENGLISH + CHINESE])
def test_sentences_become_calls_of_each_drivers_tools(language: str, text: str, calls: Calls,
                                                      everything: Vocabulary, schemas: ToolRegistry) -> None:
    planned = _planned(language, text, everything)
    assert planned == calls
    for tool, arguments in planned:
        checked = schemas.get(tool)
        assert checked is not None, f"{tool} is not a real tool"
        checked.check(arguments)


async def test_a_command_the_driver_cannot_carry_out_is_declined(everything: Vocabulary) -> None:
    """A relay has no brightness: no call, the offline apology."""
    brain = LocalBrain(ToolRegistry(), [FixedVocabulary(everything)], language="en")
    reply = await brain.handle("set the hall lamp brightness to 50%")
    assert (reply.outcome, reply.intent, reply.calls) == (Outcome.CANNOT, "HassLightSet", ())


async def test_the_toolbox_services_name_their_devices(tmp_path: Path) -> None:
    """`vocabulary_sources` over the services `pibuddy run` builds: every driver's devices and rooms."""
    config = Config.model_validate({
        "device": {"state_dir": str(tmp_path)}, "tools": {"builtin": False},
        "miot": _miot_config().model_dump(mode="json") | {"devices": [
            {"name": "reading lamp", "aliases": ["阅读灯"], "room": "Study", "model": "pibuddy.light.lamp1"}]},
        "ble": BLE.model_dump(mode="json"), "gpio": GPIO.model_dump(mode="json")})
    sources = vocabulary_sources(build_toolbox(config).services)
    assert [type(s) for s in sources] == [MiotVocabulary, BleVocabulary, RelayVocabulary]
    vocabulary = await gather_vocabulary(sources)
    assert [(t.source, t.key, t.domain, t.area) for t in vocabulary.things] == [
        ("miot", "reading lamp", "light", "Study"), ("ble_sensor", "bedroom sensor", "sensor", "bedroom"),
        ("ble_device", "strip light", "light", "study"), ("gpio", "pump", "switch", "Garden"),
        ("gpio", "hall lamp", "light", "Hall")]
    assert [p.name for p in vocabulary.areas] == ["Study", "bedroom", "Garden", "Hall"]  # study once


def _brain(registry: ToolRegistry, source: VocabularySource, language: str = "en") -> LocalBrain:
    return LocalBrain(registry, [source], language=language, clock=lambda: datetime.datetime(2026, 11, 22, 14, 5))


@pytest.fixture
async def lamp() -> AsyncIterator[SimulatedDevice]:
    async with SimulatedDevice(load_spec("lamp"), token=bytes.fromhex(TOKEN), did=LAMP_DID) as device:
        yield device


async def test_miot_lamp_over_the_lan(lamp: SimulatedDevice, tmp_path: Path) -> None:
    driver = _miot_driver(tmp_path, lamp.port, lamp.host)
    brain = _brain(_registry(miot_tools(driver)), MiotVocabulary(driver))
    try:
        reply = await brain.handle("set the reading lamp brightness to 40%")
        assert (reply.outcome, lamp.state.values[(2, 2)]) == (Outcome.DONE, 40)
        assert (await brain.handle("turn on the reading lamp")).outcome is Outcome.DONE
        assert lamp.state.values[(2, 1)] is True
        reply = await _brain(_registry(miot_tools(driver)), MiotVocabulary(driver), "zh-CN").handle("关闭阅读灯")
        assert (reply.outcome, lamp.state.values[(2, 1)]) == (Outcome.DONE, False)
        answer = await brain.handle("is the reading lamp on")
        assert answer.outcome is Outcome.ANSWERED
        assert "off" in answer.text
        assert "brightness 40 %" in answer.text
    finally:
        await driver.close()


@pytest.fixture
def air() -> Iterator[None]:
    AIR.reset()
    yield
    AIR.reset()


@pytest.mark.usefixtures("air")
async def test_ble_sensor_and_gatt_device_over_the_fake_radio() -> None:
    driver = BleDriver(BLE, scanner_backend=FakeScanner, client_backend=FakeClient)
    service = BleService(driver)
    strip = AIR.add_peripheral(STRIP, "Triones", {"ffd9": b""})
    brain = _brain(_registry(ble_tools(driver)), BleVocabulary(BLE))
    await service.start()
    try:
        AIR.advertise(SENSOR, service_data={BTHOME_UUID: bthome_plain(bthome_objects(temperature=21.5,
                                                                                     humidity=48.0))})
        reply = await brain.handle("what is the temperature in the bedroom")
        assert reply.outcome is Outcome.ANSWERED
        assert reply.text.startswith("The bedroom sensor: temperature 21.5 °C (")
        assert (await brain.handle("turn on the strip light")).outcome is Outcome.DONE
        assert (await brain.handle("set the strip light brightness to 40%")).outcome is Outcome.DONE
        assert strip.writes == [(WRITE_UUID, bytes.fromhex("cc2333"), True),
                                (WRITE_UUID, bytes.fromhex("56666666" "00f0aa"), True)]
    finally:
        await service.stop()


async def test_gpio_relay_on_mock_pins() -> None:
    factory = MockFactory()
    relays = Relays(GPIO, pin_factory=factory)
    service = RelayService(relays)
    registry = _registry(gpio_tools(relays))
    await service.start()
    try:
        reply = await _brain(registry, RelayVocabulary(relays.configs)).handle("turn on the water pump")
        assert (reply.outcome, factory.pin(23).state) == (Outcome.DONE, 1)
        reply = await _brain(registry, RelayVocabulary(relays.configs)).handle("is the pump on")
        assert (reply.outcome, reply.text) == (Outcome.ANSWERED, "The pump is on.")
        reply = await _brain(registry, RelayVocabulary(relays.configs), "zh-CN").handle("关闭水泵")
        assert (reply.outcome, factory.pin(23).state) == (Outcome.DONE, 0)
        reply = await _brain(registry, RelayVocabulary(relays.configs)).handle("turn on the lights in the hall")
        assert (reply.outcome, factory.pin(24).state) == (Outcome.DONE, 1)
    finally:
        await service.stop()
        factory.reset()
