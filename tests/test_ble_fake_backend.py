"""The BLE driver, service and tools over bleak's `backend=` extension point with a fake radio: advertisements
into spoken readings, on-demand scans, GATT control with kept-alive connections, and Bluetooth switched off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason

from pibuddy.backoff import Backoff
from pibuddy.config import BleConfig
from pibuddy.drivers.ble import BleDriver, BleService, ble_tools
from pibuddy.errors import Cause, ConnectionLost, Failure, Party
from pibuddy.events import EventBus
from pibuddy.supervisor import Health, Service, Supervisor
from pibuddy.tools.registry import ToolRegistry, ToolResult
from tests.peers.ble_adverts import (
    BTHOME_UUID,
    MIBEACON_UUID,
    bthome_objects,
    bthome_plain,
    mibeacon,
    mibeacon_temperature_humidity,
)
from tests.peers.fake_bleak_backend import AIR, FakeClient, FakeScanner
from tests.polling import eventually

ATC = "A4:C1:38:8D:18:B2"
KIDS = "A4:C1:38:00:00:01"
MIJIA = "A4:C1:38:94:4C:10"
LAMP = "BE:FF:20:00:0B:7A"
MI_KEY = "e9ea895fac7cca6d30532432a516f3a8"
WRITE_UUID = "0000ffd9-0000-1000-8000-00805f9b34fb"
BATTERY_UUID = "00002a19-0000-1000-8000-00805f9b34fb"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def air() -> Iterator[None]:
    AIR.reset()
    yield
    AIR.reset()


def _config(**overrides: Any) -> BleConfig:
    data: dict[str, Any] = {
        "enabled": True, "scan_seconds": 1.0, "connect_timeout": 1.0, "idle_disconnect_seconds": 0.3,
        "sensors": [
            {"address": ATC, "name": "bedroom sensor", "area": "bedroom", "aliases": ["thermometer"]},
            {"address": KIDS, "name": "kids sensor", "area": "bedroom"},
            {"address": MIJIA, "name": "hall sensor", "area": "hall", "bindkey": MI_KEY},
        ],
        "devices": [{
            "address": LAMP, "name": "desk lamp", "area": "study",
            "actions": {"on": {"characteristic": "ffd9", "data": "cc2333"},
                        "off": {"characteristic": "ffd9", "data": "cc2433"},
                        "brightness": {"characteristic": "ffd9", "data": "56{value:02x}{value:02x}{value:02x}00f0aa",
                                       "minimum": 1, "maximum": 255},
                        "colour": {"characteristic": "ffe1", "data": "01"}},
            "readings": {"battery": {"characteristic": "2a19", "unit": "%"}},
        }],
    }
    data.update(overrides)
    return BleConfig.model_validate(data)


def _driver(config: BleConfig | None = None, clock: Clock | None = None) -> BleDriver:
    return BleDriver(config or _config(), scanner_backend=FakeScanner, client_backend=FakeClient,
                     clock=clock or Clock())


def _registry(driver: BleDriver) -> ToolRegistry:
    registry = ToolRegistry(timeout=10)
    for tool in ble_tools(driver):
        registry.register(tool)
    return registry


def _bedroom_advert(temperature: float = 21.5) -> None:
    AIR.advertise(ATC, name="ATC_8D18B2",
                  service_data={BTHOME_UUID: bthome_plain(bthome_objects(battery=93, temperature=temperature,
                                                                         humidity=48.0))}, rssi=-61)


async def _call(registry: ToolRegistry, tool_name: str, **arguments: Any) -> ToolResult:
    return await registry.call(tool_name, arguments)


async def test_service_scanner_feeds_the_tools() -> None:
    clock = Clock()
    driver = _driver(clock=clock)
    registry, service = _registry(driver), BleService(driver)
    await service.start()
    try:
        assert driver.scanning
        _bedroom_advert()
        clock.now += 12
        result = await _call(registry, "ble_read_sensor", name="bedroom sensor")
        assert result == ToolResult("The bedroom sensor: battery 93 %, temperature 21.5 °C, humidity 48.0 % "
                                    "(12 seconds ago).")
        result = await _call(registry, "ble_read_sensor", name="thermometer", quantity="Temperature")
        assert result.text == "The bedroom sensor: temperature 21.5 °C (12 seconds ago)."
        assert service.health().ok
    finally:
        await service.stop()
    assert not driver.scanning
    assert AIR.scanners == []
    assert AIR.scans_started == 1  # the tools used the running scanner, no scan of their own


async def test_spoken_errors_stale_unheard_unknown_and_missing_quantity() -> None:
    clock = Clock()
    driver = _driver(clock=clock)
    registry, service = _registry(driver), BleService(driver)
    await service.start()
    try:
        _bedroom_advert()
        result = await _call(registry, "ble_read_sensor", name="bedroom sensor", quantity="pressure")
        assert result == ToolResult("the bedroom sensor does not report pressure; it reports battery, temperature, "
                                    "humidity", is_error=True)
        clock.now += 601
        result = await _call(registry, "ble_read_sensor", name="bedroom sensor")
        assert result == ToolResult("the bedroom sensor has not been seen for 10 minutes", is_error=True,
                                    cause=Cause(Failure.UNREACHABLE, device="bedroom sensor"))
        result = await _call(registry, "ble_read_sensor", name="kids sensor")
        assert result.is_error
        assert result.text.startswith("the kids sensor has not been heard")
        result = await _call(registry, "ble_read_sensor", name="garage")
        assert result.is_error
        assert result.text.startswith("there is no Bluetooth sensor called 'garage'; known sensors: bedroom sensor "
                                      "(bedroom), kids sensor (bedroom), hall sensor (hall)")
    finally:
        await service.stop()


async def test_an_area_answers_for_every_sensor_in_it() -> None:
    driver = _driver()
    registry, service = _registry(driver), BleService(driver)
    await service.start()
    try:
        _bedroom_advert()
        AIR.advertise(KIDS, service_data={BTHOME_UUID: bthome_plain(bthome_objects(temperature=19.0))})
        result = await _call(registry, "ble_read_sensor", name="Bedroom", quantity="temperature")
        assert result.text == ("The bedroom sensor: temperature 21.5 °C (0 seconds ago). "
                               "The kids sensor: temperature 19.0 °C (0 seconds ago).")
    finally:
        await service.stop()


async def test_encrypted_sensor_with_its_key_and_with_a_spoofed_plaintext() -> None:
    driver = _driver()
    registry, service = _registry(driver), BleService(driver)
    await service.start()
    try:
        objects = mibeacon_temperature_humidity(22.4, 51.0)
        AIR.advertise(MIJIA, service_data={MIBEACON_UUID: mibeacon(objects, mac=MIJIA, frame_counter=8,
                                                                   key=bytes.fromhex(MI_KEY))})
        assert (await _call(registry, "ble_read_sensor", name="hall")).text == (
            "The hall sensor: temperature 22.4 °C, humidity 51.0 % (0 seconds ago).")
        spoof = mibeacon(mibeacon_temperature_humidity(-40.0, 1.0), mac=MIJIA, frame_counter=9)
        AIR.advertise(MIJIA, service_data={MIBEACON_UUID: spoof})
        # the spoofed values never replace the authentic ones
        assert "22.4 °C" in (await _call(registry, "ble_read_sensor", name="hall")).text
    finally:
        await service.stop()


async def test_undecryptable_sensor_says_why(caplog: pytest.LogCaptureFixture) -> None:
    config = _config(sensors=[{"address": MIJIA, "name": "hall sensor", "bindkey": "00" * 16}])
    driver = _driver(config)
    registry, service = _registry(driver), BleService(driver)
    await service.start()
    try:
        frame = mibeacon(mibeacon_temperature_humidity(22.4, 51.0), mac=MIJIA, frame_counter=8,
                         key=bytes.fromhex(MI_KEY))
        with caplog.at_level(logging.WARNING, logger="pibuddy"):
            for counter in range(3):  # one warning for the change, not one per advertisement
                AIR.advertise(MIJIA, service_data={MIBEACON_UUID: frame[:4] + bytes([counter]) + frame[5:]})
        result = await _call(registry, "ble_read_sensor", name="hall sensor")
        assert result == ToolResult("the hall sensor sends data that cannot be decrypted; its bindkey looks wrong",
                                    is_error=True, cause=Cause(Failure.REFUSED, device="hall sensor"))
        ours = [r for r in caplog.records if r.name.startswith("pibuddy.drivers.ble")]
        assert [r.getMessage() for r in ours] == [
            f"BLE sensor hall sensor ({MIJIA}) sends data its bindkey cannot decrypt (check ble.sensors[].bindkey)"]
    finally:
        await service.stop()


async def test_list_sensors_names_configured_and_unconfigured_ones() -> None:
    driver = _driver()
    registry, service = _registry(driver), BleService(driver)
    await service.start()
    try:
        _bedroom_advert()
        AIR.advertise("11:22:33:44:55:66", name="ATC_445566",
                      service_data={BTHOME_UUID: bthome_plain(bthome_objects(humidity=30.0))})
        result = await _call(registry, "ble_list_sensors")
        assert result.text.splitlines() == [
            "bedroom sensor (bedroom): battery 93 %, temperature 21.5 °C, humidity 48.0 % (0 seconds ago)",
            "kids sensor (bedroom): the kids sensor has not been heard; it may be out of range or its battery flat",
            "hall sensor (hall): the hall sensor has not been heard; it may be out of range or its battery flat",
            "ATC 5566: humidity 30.0 % (0 seconds ago)",
        ]
        # an unconfigured sensor can be read by the name its parser gives it
        assert (await _call(registry, "ble_read_sensor", name="ATC 5566")).text.startswith("The ATC 5566: humidity")
    finally:
        await service.stop()


async def test_without_a_running_scanner_a_tool_scans_briefly_itself() -> None:
    driver = _driver()
    registry = _registry(driver)
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, _bedroom_advert)
    started = loop.time()
    result = await _call(registry, "ble_read_sensor", name="bedroom sensor", quantity="humidity")
    assert result.text == "The bedroom sensor: humidity 48.0 % (0 seconds ago)."
    assert loop.time() - started < 0.8  # it stopped as soon as the sensor was heard, not after scan_seconds
    assert AIR.scans_started == 1
    assert AIR.scanners == []
    assert not driver.scanning
    result = await _call(registry, "ble_read_sensor", name="kids sensor")
    assert result.is_error
    assert "has not been heard" in result.text
    assert AIR.scanners == []


async def test_gatt_control_keeps_one_connection_then_closes_it_when_idle() -> None:
    lamp = AIR.add_peripheral(LAMP, "Triones", {"ffd9": b"", "2a19": b"\x57"})
    driver = _driver()
    registry = _registry(driver)
    assert (await _call(registry, "ble_control", device="desk lamp", action="On")).text == "Turned the desk lamp on."
    result = await _call(registry, "ble_control", device="study", action="brightness", value=200)
    assert result.text == "Set the desk lamp's brightness to 200."
    assert (await _call(registry, "ble_control", device="lamp", action="battery")).text == (
        "The desk lamp's battery is 87 %.")
    assert lamp.writes == [(WRITE_UUID, bytes.fromhex("cc2333"), True),
                           (WRITE_UUID, bytes.fromhex("56c8c8c800f0aa"), True)]
    assert lamp.connects == 1
    assert driver.gatt.connected(LAMP)
    await asyncio.sleep(0.5)  # idle_disconnect_seconds is 0.3
    assert not driver.gatt.connected(LAMP)
    assert lamp.clients == []
    assert (await _call(registry, "ble_control", device="desk lamp", action="off")).text == "Turned the desk lamp off."
    assert lamp.connects == 2
    assert lamp.writes[-1] == (WRITE_UUID, bytes.fromhex("cc2433"), True)
    await driver.close()
    assert lamp.clients == []


async def test_an_action_without_on_off_or_a_value_is_a_sent_command() -> None:
    lamp = AIR.add_peripheral(LAMP, "Triones", {"ffe1": b""})
    driver = _driver()
    result = await _registry(driver).call("ble_control", {"device": "desk lamp", "action": "colour"})
    assert result == ToolResult("Sent the colour command to the desk lamp.")
    assert lamp.writes == [("0000ffe1-0000-1000-8000-00805f9b34fb", b"\x01", True)]
    await driver.close()


async def test_gatt_reconnects_after_the_device_dropped_the_link() -> None:
    lamp = AIR.add_peripheral(LAMP, "Triones", {"ffd9": b""})
    driver = _driver()
    registry = _registry(driver)
    await _call(registry, "ble_control", device="desk lamp", action="on")
    lamp.drop_links()
    assert not driver.gatt.connected(LAMP)
    assert not (await _call(registry, "ble_control", device="desk lamp", action="off")).is_error
    assert lamp.connects == 2
    await driver.close()


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"device": "desk lamp", "action": "brightness"}, "this action needs a value from 1 to 255"),
    ({"device": "desk lamp", "action": "brightness", "value": 256}, "the value must be from 1 to 255, not 256"),
    ({"device": "desk lamp", "action": "dance"},
     "the desk lamp cannot 'dance'; it offers: on, off, brightness, colour, battery"),
    ({"device": "kettle", "action": "on"}, "there is no Bluetooth device called 'kettle'; known devices: desk lamp"),
    ({"device": "desk lamp", "action": "colour"},
     "the desk lamp has no characteristic ffe1; check ble.devices in the configuration"),
])
async def test_gatt_mistakes_become_sentences(arguments: dict[str, Any], expected: str) -> None:
    lamp = AIR.add_peripheral(LAMP, "Triones", {"ffd9": b""})
    driver = _driver()
    result = await _registry(driver).call("ble_control", arguments)
    assert result == ToolResult(expected, is_error=True)
    assert lamp.writes == []
    await driver.close()


async def test_gatt_device_out_of_range() -> None:
    lamp = AIR.add_peripheral(LAMP, "Triones", {"ffd9": b""})
    lamp.reachable = False
    driver = _driver()
    result = await _registry(driver).call("ble_control", {"device": "desk lamp", "action": "on"})
    assert result == ToolResult("the desk lamp was not found; it may be out of range or switched off", is_error=True,
                                cause=Cause(Failure.UNREACHABLE, device="desk lamp"))


def test_ble_control_is_offered_only_with_devices_and_describes_them() -> None:
    tools = {t.name: t for t in ble_tools(_driver())}
    assert list(tools) == ["ble_list_sensors", "ble_read_sensor", "ble_control"]
    assert "desk lamp in the study: actions on, off, brightness (1-255), colour; readings battery" in (
        tools["ble_control"].description)
    assert tools["ble_control"].input_schema["required"] == ["device", "action"]
    assert [t.name for t in ble_tools(_driver(_config(devices=[])))] == ["ble_list_sensors", "ble_read_sensor"]


_POWERED_OFF = BleakBluetoothNotAvailableError("No powered Bluetooth adapters found.",
                                               BleakBluetoothNotAvailableReason.POWERED_OFF)


_UNAVAILABLE = ("Bluetooth is unavailable: the Bluetooth adapter is powered off (try `bluetoothctl power on` or "
                "`rfkill unblock bluetooth`)")


async def test_bluetooth_off_is_a_clear_error_for_the_service_and_the_tools() -> None:
    AIR.unavailable = _POWERED_OFF
    driver = _driver()
    service = BleService(driver)
    await service.start()  # a state of the service, not a failed start
    try:
        assert service.health() == Health(False, f"{_UNAVAILABLE}; retrying")
        result = await _registry(driver).call("ble_read_sensor", {"name": "bedroom"})
        assert result == ToolResult(_UNAVAILABLE, is_error=True, cause=Cause(Failure.UNREACHABLE, Party.BLUETOOTH))
    finally:
        await service.stop()


class _Steady(Service):
    name = "steady"

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def test_missing_bluetooth_warns_once_retries_quietly_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    AIR.unavailable = _POWERED_OFF
    driver = _driver()
    supervisor = Supervisor([BleService(driver, retry=Backoff(initial=0.05, maximum=0.1)), _Steady()],
                            bus=EventBus(), backoff_factory=lambda: Backoff(initial=0.05, maximum=0.1))

    def retries() -> int:
        return sum("trying Bluetooth again" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.DEBUG, logger="pibuddy"):
        task = asyncio.create_task(supervisor.run())
        try:
            await eventually(lambda: retries() >= 4)
            assert supervisor.health()["ble"] == Health(False, f"{_UNAVAILABLE}; retrying")
            AIR.unavailable = None
            await eventually(lambda: driver.scanning)
            _bedroom_advert()
            assert driver.cache.get(ATC) is not None
            assert supervisor.health()["ble"].ok
            assert supervisor.health()["steady"].ok
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 5)
    loud = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]
    assert loud == [("WARNING", f"BLE: {_UNAVAILABLE}; check that an adapter is attached (`bluetoothctl list`), "
                                "that bluetoothd runs (`systemctl status bluetooth`) and that Bluetooth is not "
                                "blocked (`rfkill unblock bluetooth`). Retrying in the background.")]
    assert [r.getMessage() for r in caplog.records if "Bluetooth is back" in r.getMessage()] == [
        "BLE: Bluetooth is back; scanning on the default adapter (3 sensors, 1 devices configured)"]


async def test_silence_watchdog_restarts_a_stuck_scanner_but_not_a_busy_one() -> None:
    driver = _driver(_config(silence_restart_seconds=0.2), clock=asyncio.get_running_loop().time)
    service = BleService(driver)
    await service.start()
    try:
        with pytest.raises(ConnectionLost, match=r"no BLE advertisement heard for 0\.2 s"):
            await asyncio.wait_for(service.serve(), 2)
        serving = asyncio.create_task(service.serve())
        for _ in range(8):  # 0.8 s of steady advertisements: must not restart
            _bedroom_advert()
            await asyncio.sleep(0.1)
        assert not serving.done()
        serving.cancel()
    finally:
        await service.stop()


async def test_passive_mode_asks_bluez_for_bthome_and_mibeacon_patterns() -> None:
    driver = _driver(_config(scanning_mode="passive", adapter="hci1"))
    async with driver.scanner():
        (scanner,) = AIR.scanners
        assert scanner.scanning_mode == "passive"
        assert scanner.bluez["adapter"] == "hci1"
        patterns = [(p.start_position, int(p.ad_data_type), p.content_of_pattern) for p in scanner.bluez["or_patterns"]]
        assert patterns == [(0, 0x16, b"\xd2\xfc"), (0, 0x16, b"\x95\xfe")]
