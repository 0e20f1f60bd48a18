"""The MIoT tools end to end through the tool registry: LAN-first routing to a simulated device, the cloud
for sub-devices and as the fallback, the spoken errors when a path fails, per-device tools, scenes, the
service's discovery, and the catalog wiring."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pibuddy.config import Config, DeviceConfig, MiotConfig, MiotDeviceConfig
from pibuddy.drivers.miot import MiotDriver, MiotService, miot_tools
from pibuddy.drivers.miot.cloud import MiCloud
from pibuddy.drivers.miot.cloud_login import MiAccount
from pibuddy.drivers.miot.cloud_transport import CloudTransport
from pibuddy.drivers.miot.codec import Token
from pibuddy.drivers.miot.driver import SPECS_DIR
from pibuddy.drivers.miot.inventory import Device, Inventory
from pibuddy.drivers.miot.lan_transport import LanTransport
from pibuddy.drivers.miot.spec_store import SpecStore
from pibuddy.drivers.miot.transport import TransportKind
from pibuddy.tools.registry import ToolRegistry
from pibuddy.wiring.tools import build_toolbox
from tests.peers.mi_cloud import PASSWORD, USERNAME, CloudDevice, FakeMiCloud
from tests.peers.miio_device import Fault, SimulatedDevice, load_spec

TOKEN = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
LAMP_DID, FAN_DID = 4294967298, 5123456789
URNS = {"lamp": "urn:miot-spec-v2:device:light:0000A001:pibuddy-lamp1:1",
        "fan": "urn:miot-spec-v2:device:fan:0000A005:pibuddy-fan1:1",
        "switch": "urn:miot-spec-v2:device:switch:0000A003:pibuddy-switch1:1"}


@dataclass
class Home:
    lamp: SimulatedDevice
    fan: SimulatedDevice
    cloud: FakeMiCloud
    driver: MiotDriver
    registry: ToolRegistry
    state: Path

    async def call(self, tool: str, **arguments: object) -> tuple[str, bool]:
        result = await self.registry.call(tool, arguments)
        return result.text, result.is_error


def _saved_devices(lamp: SimulatedDevice, fan: SimulatedDevice) -> list[Device]:
    """What `pibuddy miot setup` would have saved from the cloud."""
    return [
        Device("Yeelight", did=str(LAMP_DID), room="Study", model="pibuddy.light.lamp1", urn=URNS["lamp"],
               ip=lamp.host, token=Token(TOKEN)),
        Device("Tower fan", did=str(FAN_DID), room="Bedroom", model="pibuddy.fan.fan1", urn=URNS["fan"], ip=fan.host,
               token=Token(TOKEN)),
        Device("Hall switch", did="blt.3.1abcd", room="Hall", model="pibuddy.switch.switch1", urn=URNS["switch"],
               parent_did="hub-1"),
    ]


def _driver(state: Path, cloud: FakeMiCloud, port: int, *, backend: TransportKind | None = None,
            clock: Callable[[], float] = time.monotonic, **config: object) -> MiotDriver:
    miot = MiotConfig(enabled=True, lan_timeout=0.2, devices=(
        MiotDeviceConfig(name="desk lamp", aliases=("台灯",), did=str(LAMP_DID)),), **config)  # type: ignore[arg-type]
    mi_cloud = MiCloud(state_dir=state, username=USERNAME, password=PASSWORD, api_url=cloud.api_url,
                       account=MiAccount(account_url=cloud.base_url, timeout=5), timeout=5)
    return MiotDriver(miot, state, backend=backend,
                      transports=[LanTransport(timeout=0.2, port=port), CloudTransport(mi_cloud)],
                      cloud=mi_cloud, specs=SpecStore(state / SPECS_DIR, fetch=False), port=port, clock=clock)


def _registry(driver: MiotDriver) -> ToolRegistry:
    registry = ToolRegistry()
    for miot_tool in miot_tools(driver):
        registry.register(miot_tool)
    return registry


@pytest.fixture
async def home(tmp_path: Path) -> AsyncIterator[Home]:
    lamp = await SimulatedDevice(load_spec("lamp"), token=TOKEN, did=LAMP_DID).start()
    try:
        fan = await SimulatedDevice(load_spec("fan"), token=TOKEN, did=FAN_DID, host="127.0.0.2", port=lamp.port,
                                    model="pibuddy.fan.fan1").start()
    except OSError:
        await lamp.stop()
        pytest.skip("127.0.0.2 is not usable on this host")
    cloud = await FakeMiCloud(devices=[
        CloudDevice(str(LAMP_DID), "Yeelight", "pibuddy.light.lamp1", URNS["lamp"], "Study"),
        CloudDevice("blt.3.1abcd", "Hall switch", "pibuddy.switch.switch1", URNS["switch"], "Hall")]).start()
    store = SpecStore(tmp_path / SPECS_DIR, fetch=False)
    for name, urn in URNS.items():
        store.save(urn, load_spec(name))
    Inventory((), tmp_path).save_cloud_devices(_saved_devices(lamp, fan))
    driver = _driver(tmp_path, cloud, lamp.port)
    yield Home(lamp, fan, cloud, driver, _registry(driver), tmp_path)
    await driver.close()
    await cloud.stop()
    await fan.stop()
    await lamp.stop()


def _cloud_miotspec_calls(home: Home) -> list[str]:
    return [path for path, _ in home.cloud.calls if path.startswith("/miotspec")]


async def test_lan_first_for_a_device_with_a_token(home: Home) -> None:
    text, error = await home.call("miot_control", target="台灯", control="brightness", value=40)
    assert (text, error) == ("Set the desk lamp's brightness to 40 %.", False)
    assert home.lamp.state.values[(2, 2)] == 40
    assert _cloud_miotspec_calls(home) == []


async def test_the_cloud_drives_a_sub_device_behind_a_hub(home: Home) -> None:
    text, error = await home.call("miot_control", target="hall switch", control="power", value="on")
    assert (text, error) == ("Turned the Hall switch on.", False)
    assert home.cloud.values[("blt.3.1abcd", 2, 1)] is True


async def test_a_silent_lan_device_falls_back_to_the_cloud(home: Home) -> None:
    home.lamp.fault = Fault.SILENT
    text, error = await home.call("miot_control", target="desk lamp", control="on", value=True)
    assert (text, error) == ("Turned the desk lamp on.", False)
    assert home.cloud.values[(str(LAMP_DID), 2, 1)] is True
    assert _cloud_miotspec_calls(home) == ["/miotspec/prop/set"]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _switch(registry: ToolRegistry, on: bool) -> str:
    result = await registry.call("miot_control", {"target": "desk lamp", "control": "on", "value": on})
    assert not result.is_error, result.text
    return result.text


async def test_a_silent_lan_device_is_not_waited_for_again_until_its_retry_time(home: Home) -> None:
    clock = _Clock()
    driver = _driver(home.state, home.cloud, home.lamp.port, clock=clock)
    registry, loop = _registry(driver), asyncio.get_running_loop()
    try:
        home.lamp.fault = Fault.SILENT
        assert await _switch(registry, True) == "Turned the desk lamp on."  # after 3 LAN tries of 0.2 s
        home.lamp.fault = Fault.NONE  # back, but nothing told the driver
        started = loop.time()
        assert await _switch(registry, False) == "Turned the desk lamp off."
        assert loop.time() - started < 0.2  # not even one LAN timeout
        assert (home.lamp.hellos, home.lamp.requests) == (0, [])
        assert _cloud_miotspec_calls(home) == ["/miotspec/prop/set"] * 2
        clock.now += 600  # the longest skip has passed: the LAN is tried again, and answers
        assert await _switch(registry, True) == "Turned the desk lamp on."
        assert home.lamp.state.values[(2, 1)] is True
        assert len(_cloud_miotspec_calls(home)) == 2
    finally:
        await driver.close()


async def test_a_discovery_hello_brings_a_silent_device_back_to_the_lan(home: Home) -> None:
    driver = _driver(home.state, home.cloud, home.lamp.port, discovery_addresses=("127.0.0.1",))
    registry = _registry(driver)
    try:
        home.lamp.fault = Fault.SILENT
        await _switch(registry, True)
        home.lamp.fault = Fault.NONE
        assert await driver.discover() == 1
        await _switch(registry, False)
        assert home.lamp.state.values[(2, 1)] is False  # on the LAN at once
        assert len(_cloud_miotspec_calls(home)) == 1
    finally:
        await driver.close()


async def test_with_no_other_path_a_silent_lan_device_is_still_tried(home: Home) -> None:
    driver = _driver(home.state, home.cloud, home.lamp.port, backend=TransportKind.LAN)
    registry = _registry(driver)
    try:
        home.lamp.fault = Fault.SILENT
        result = await registry.call("miot_control", {"target": "desk lamp", "control": "on", "value": True})
        assert (result.is_error, result.text) == (True, "desk lamp does not answer at 127.0.0.1: it is offline or "
                                                        "its address changed")
        home.lamp.fault = Fault.NONE
        assert await _switch(registry, True) == "Turned the desk lamp on."
        assert home.lamp.state.values[(2, 1)] is True
    finally:
        await driver.close()


async def test_every_path_failing_names_each_and_what_to_do(home: Home, tmp_path: Path) -> None:
    home.cloud.devices[0].online = False
    wrong = MiotDriver(MiotConfig(enabled=True, devices=(MiotDeviceConfig(
        name="desk lamp", did=str(LAMP_DID), token="00" * 16),)), tmp_path,
        transports=[LanTransport(timeout=0.2, port=home.lamp.port), CloudTransport(home.driver.cloud)],
        cloud=home.driver.cloud, specs=home.driver.specs)
    registry = ToolRegistry()
    for miot_tool in miot_tools(wrong):
        registry.register(miot_tool)
    result = await registry.call("miot_control", {"target": "desk lamp", "control": "on", "value": True})
    assert result.is_error
    assert result.text == ("On the LAN: desk lamp answers but ignores commands, so its token is wrong: run "
                           "`pibuddy miot setup` or fix the token in the config; through the Mi cloud: desk lamp "
                           "is offline")


async def test_get_state_reads_every_readable_property_with_units(home: Home) -> None:
    home.fan.state.values[(2, 3)] = 2
    text, error = await home.call("miot_get_state", target="tower fan")
    assert not error
    assert text == ("The Tower fan in the Bedroom is off, with fan level level1, mode sleep and indicator "
                    "light off.")
    text, _ = await home.call("miot_get_state", target="study lights")
    assert text == "The desk lamp in the Study is off, with brightness 1 % and color temperature 2700 K."


async def test_per_item_cloud_errors_are_spoken(home: Home) -> None:
    home.cloud.item_codes[("blt.3.1abcd", 2, 1)] = -704030023
    text, error = await home.call("miot_control", target="hall switch", control="on", value=False)
    assert (text, error) == ("on of Hall switch cannot be changed", True)


async def test_values_and_controls_are_checked_against_the_spec(home: Home) -> None:
    text, error = await home.call("miot_control", target="desk lamp", control="brightness", value=500)
    assert (text, error) == ("brightness of desk lamp goes from 1 to 100 %", True)
    text, error = await home.call("miot_control", target="desk lamp", control="volume", value=5)
    assert error
    assert text.startswith("desk lamp has no control 'volume'; it offers on on/off, brightness 1-100 %")
    assert home.lamp.requests == []  # nothing invalid reached the device


async def test_modes_and_actions_with_inputs(home: Home) -> None:
    text, error = await home.call("miot_control", target="tower fan", control="mode",
                                  value="natural wind")
    assert (text, error) == ("Set the Tower fan's mode to natural wind.", False)
    assert home.fan.state.values[(2, 3)] == 1
    text, error = await home.call("miot_control", target="tower fan", control="turn_off_later", value=30)
    assert (text, error) == ("Asked the Tower fan to turn off later.", False)
    assert home.fan.state.actions_run == [(2, 2, [30])]


async def test_a_room_and_kind_acts_on_every_matching_device(home: Home) -> None:
    text, error = await home.call("miot_control", target="all lights", control="toggle")
    assert (text, error) == ("Asked the desk lamp to toggle.", False)
    assert home.lamp.state.values[(2, 1)] is True


async def test_per_device_tools_carry_the_spec(home: Home) -> None:
    lamp_tool = home.registry.get("miot_desk_lamp")
    assert lamp_tool is not None
    assert lamp_tool.input_schema["properties"]["brightness"]["maximum"] == 100
    assert "brightness 1-100 %" in lamp_tool.description
    text, error = await home.call("miot_desk_lamp", on=True, brightness=30, color_temperature=5000)
    assert (text, error) == ("Turned the desk lamp on, set its brightness to 30 % and set its color temperature to "
                             "5000 K.", False)
    assert [home.lamp.state.values[(2, p)] for p in (1, 2, 3)] == [True, 30, 5000]
    text, error = await home.call("miot_tower_fan", mode="turbo")
    assert error  # the schema's enum rejects it before the driver runs
    assert home.registry.get("miot_hall_switch") is not None


async def test_list_devices_and_scenes(home: Home) -> None:
    text, _ = await home.call("miot_list_devices")
    lines = text.splitlines()
    assert lines[0] == ("desk lamp (Study): pibuddy.light.lamp1, state unknown, via LAN and cloud; on on/off, "
                        "brightness 1-100 %, color_temperature 2700-6500 K, toggle (action).")
    assert lines[2].startswith("Hall switch (Hall): pibuddy.switch.switch1, state unknown, via cloud;")
    text, _ = await home.call("miot_list_devices", room="bedroom")
    assert text.startswith("Tower fan (Bedroom)")
    text, error = await home.call("miot_run_scene", name="movie time")
    assert (text, error) == ("Started the scene Movie time.", False)
    assert home.cloud.scenes_run == ["9002"]


async def test_unknown_and_ambiguous_names_help_the_llm(home: Home) -> None:
    text, error = await home.call("miot_get_state", target="sofa")
    assert error
    assert text.startswith('I could not find "sofa" among the Mi Home devices')


async def test_the_service_discovers_moved_devices(home: Home) -> None:
    Inventory((), home.state).save_cloud_devices(
        [Device("Tower fan", did=str(FAN_DID), room="Bedroom", urn=URNS["fan"], ip="127.0.0.9", token=Token(TOKEN))])
    driver = _driver(home.state, home.cloud, home.lamp.port, discovery_addresses=("127.0.0.1", "127.0.0.2"))
    service = MiotService(driver)
    await service.start()
    try:
        assert service.health().detail == "2 devices, 2 answered discovery"
        [fan] = [d for d in driver.devices() if d.name == "Tower fan"]
        assert (fan.ip, driver.online(fan)) == ("127.0.0.2", True)
        assert Inventory((), home.state).devices()[0].ip == "127.0.0.2"  # persisted for the next start
    finally:
        await service.stop()


def test_catalog_offers_miot_only_when_something_is_configured(tmp_path: Path) -> None:
    device = DeviceConfig(state_dir=tmp_path)
    nothing = build_toolbox(Config(device=device, miot=MiotConfig(enabled=True)))
    assert not [t for t in nothing.registry.list() if t.name.startswith("miot_")]
    configured = Config(device=device, miot=MiotConfig(enabled=True, devices=(MiotDeviceConfig(
        name="desk lamp", ip="192.0.2.1", token="ab" * 16),)))
    toolbox = build_toolbox(configured)
    assert [t.name for t in toolbox.registry.list() if t.name.startswith("miot_")] == [
        "miot_list_devices", "miot_get_state", "miot_control", "miot_run_scene"]
    assert any(isinstance(s, MiotService) for s in toolbox.services)
    assert "ab" * 16 in configured.secrets()  # device tokens are masked in logs too
