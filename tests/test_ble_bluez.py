"""The REAL bleak BlueZ backend against python-dbusmock's bluez5 template on a private system D-Bus.

An advertisement pushed into the mocked BlueZ travels D-Bus -> dbus-fast -> bleak -> bthome-ble/xiaomi-ble ->
PiBuddy's cache and comes out of `ble_read_sensor`; Bluetooth missing in its several forms is a FAIL row from
`pibuddy check` and a retried service, never a crash; `pibuddy ble scan` runs as a real process.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pibuddy.backoff import Backoff
from pibuddy.config import BleConfig, Config
from pibuddy.drivers.ble import BleDriver, BleService, ble_tools
from pibuddy.events import EventBus
from pibuddy.supervisor import Supervisor
from pibuddy.tools.registry import ToolRegistry
from pibuddy.wiring.check import run_probes
from tests.peers.ble_adverts import (
    BTHOME_UUID,
    MIBEACON_UUID,
    bthome_objects,
    bthome_plain,
    mibeacon,
    mibeacon_temperature_humidity,
)
from tests.polling import eventually

bluez_mock = pytest.importorskip("tests.peers.bluez_mock", reason="python-dbusmock / dbus-python not installed")
pytestmark = [
    pytest.mark.peer,
    pytest.mark.skipif(not bluez_mock.available(), reason="dbus-daemon is not installed (apt install dbus)"),
]

_BLUEZ_WAIT = 5.0  # seconds for bleak's D-Bus signal handling to bring an advertisement into the cache
ATC = "A4:C1:38:8D:18:B2"
MIJIA = "A4:C1:38:94:4C:10"
MI_KEY = "e9ea895fac7cca6d30532432a516f3a8"


@pytest.fixture
def bluez() -> Iterator[bluez_mock.BluezMock]:
    with bluez_mock.BluezMock() as mock:
        yield mock


def _ble_config(**extra: object) -> BleConfig:
    return BleConfig.model_validate({
        "enabled": True, "scan_seconds": 2,
        "sensors": [{"address": ATC, "name": "bedroom sensor", "area": "bedroom"},
                    {"address": MIJIA, "name": "hall sensor", "area": "hall", "bindkey": MI_KEY}],
        **extra,
    })


async def test_advertisement_in_bluez_comes_out_of_ble_read_sensor(bluez: bluez_mock.BluezMock) -> None:
    bluez.start_bluez()
    bluez.add_adapter("hci0")
    driver = BleDriver(_ble_config(adapter="hci0"))  # no backend=: bleak's own BlueZ backend
    registry = ToolRegistry(timeout=10)
    for tool in ble_tools(driver):
        registry.register(tool)
    service = BleService(driver)
    await service.start()
    try:
        assert bluez.discovering("hci0")
        bluez.advertise(ATC, name="ATC_8D18B2", rssi=-58,
                        service_data={BTHOME_UUID: bthome_plain(bthome_objects(temperature=21.5, humidity=48.0))})
        await eventually(lambda: driver.cache.get(ATC) is not None, _BLUEZ_WAIT)
        result = await registry.call("ble_read_sensor", {"name": "bedroom", "quantity": "temperature"})
        assert result.text == "The bedroom sensor: temperature 21.5 °C (0 seconds ago)."
        assert driver.cache.get(ATC).rssi == -58  # type: ignore[union-attr]

        # the same device object changing (PropertiesChanged), and an encrypted MiBeacon through BlueZ
        bluez.advertise(ATC, service_data={BTHOME_UUID: bthome_plain(bthome_objects(temperature=22.75))})
        objects = mibeacon_temperature_humidity(19.5, 61.0)
        bluez.advertise(MIJIA, name="LYWSD03MMC", service_data={
            MIBEACON_UUID: mibeacon(objects, mac=MIJIA, frame_counter=3, key=bytes.fromhex(MI_KEY))})
        await eventually(lambda: driver.cache.get(MIJIA) is not None
                         and driver.cache.get(ATC).readings["temperature"].value == 22.75,  # type: ignore[union-attr]
                         _BLUEZ_WAIT)
        result = await registry.call("ble_read_sensor", {"name": "hall sensor"})
        assert result.text == "The hall sensor: temperature 19.5 °C, humidity 61.0 % (0 seconds ago)."
    finally:
        await service.stop()
    assert not bluez.discovering("hci0")


async def test_check_probe_ok_with_an_adapter(bluez: bluez_mock.BluezMock) -> None:
    bluez.start_bluez()
    bluez.add_adapter("hci0")
    rows = await run_probes(Config(ble=_ble_config()), _ble_probe_only())
    assert rows[0][0] == "bluetooth"
    assert rows[0][1].ok
    assert rows[0][1].detail.startswith("scanning works on the default adapter")


@pytest.mark.parametrize(("setup", "adapter", "expected"), [
    ("no-bluez", None, "Bluetooth is unavailable: BlueZ (bluetoothd) is not running"),
    ("no-adapter", None, "Bluetooth is unavailable: no Bluetooth adapter found"),
    ("no-adapter", "hci1", "Bluetooth is unavailable: adapter 'hci1' not found"),
    ("powered-off", None, "Bluetooth is unavailable: the Bluetooth adapter is powered off (try `bluetoothctl "
                          "power on` or `rfkill unblock bluetooth`)"),
])
async def test_check_probe_fails_clearly(bluez: bluez_mock.BluezMock, setup: str, adapter: str | None,
                                         expected: str) -> None:
    if setup != "no-bluez":
        bluez.start_bluez()
    if setup == "powered-off":
        bluez.add_adapter("hci0")
        bluez.set_powered("hci0", False)
    rows = await run_probes(Config(ble=_ble_config(adapter=adapter)), _ble_probe_only())
    assert [(name, result.ok, result.detail) for name, result in rows] == [("bluetooth", False, expected)]


async def test_check_probe_without_any_system_bus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-such-socket")
    rows = await run_probes(Config(ble=_ble_config()), _ble_probe_only())
    assert [(r.ok, r.detail) for _, r in rows] == [
        (False, "Bluetooth is unavailable: no system D-Bus (is dbus running?)")]


def _ble_probe_only() -> list:  # type: ignore[type-arg]
    from pibuddy.wiring.check import PROBES  # noqa: PLC0415

    return [probe for probe in PROBES if probe.name == "bluetooth"]


async def test_service_retries_until_bluetoothd_and_an_adapter_appear(bluez: bluez_mock.BluezMock) -> None:
    driver = BleDriver(_ble_config())
    service = BleService(driver, retry=Backoff(initial=0.1, maximum=0.2))
    supervisor = Supervisor([service], bus=EventBus(), backoff_factory=lambda: Backoff(initial=0.1, maximum=0.2))
    task = asyncio.create_task(supervisor.run())
    try:
        await eventually(lambda: supervisor.health()["ble"].detail.startswith(
            "Bluetooth is unavailable: BlueZ (bluetoothd) is not running"), 5)
        bluez.start_bluez()
        bluez.add_adapter("hci0")
        await eventually(lambda: supervisor.health()["ble"].ok, 5)
        bluez.advertise(ATC, service_data={BTHOME_UUID: bthome_plain(bthome_objects(humidity=40.0))})
        await eventually(lambda: driver.cache.get(ATC) is not None, _BLUEZ_WAIT)
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(task, 10)


def test_ble_scan_command_lists_what_it_hears(bluez: bluez_mock.BluezMock, tmp_path: Path,
                                              pibuddy_env: dict[str, str], python: str) -> None:
    bluez.start_bluez()
    bluez.add_adapter("hci0")
    config = tmp_path / "config.yaml"
    config.write_text(f'ble:\n  sensors:\n    - {{address: "{ATC}", name: bedroom sensor}}\n'
                      f'    - {{address: "{MIJIA}", name: hall sensor}}\n')
    env = {**pibuddy_env, "DBUS_SYSTEM_BUS_ADDRESS": os.environ["DBUS_SYSTEM_BUS_ADDRESS"]}
    with subprocess.Popen([python, "-m", "pibuddy", "ble", "scan", "--seconds", "1.5", "--config", str(config)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            bluez.wait_discovering("hci0", timeout=20)
            bluez.advertise(ATC, name="ATC_8D18B2", rssi=-50,
                            service_data={BTHOME_UUID: bthome_plain(bthome_objects(temperature=21.5))})
            bluez.advertise(MIJIA, name="LYWSD03MMC", rssi=-70, service_data={MIBEACON_UUID: mibeacon(
                mibeacon_temperature_humidity(1, 2), mac=MIJIA, frame_counter=1, key=bytes.fromhex(MI_KEY))})
            bluez.advertise("00:11:22:33:44:55", name="Phone", rssi=-80)
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ADDRESS", "RSSI", "NAME", "CONFIGURED", "AS", "DECODED"]
    assert lines[1].split()[:4] == [ATC, "-50", "ATC_8D18B2", "bedroom"]
    assert lines[1].endswith("BTHome ATC 18B2: temperature 21.5 °C")
    assert lines[2].endswith("MiBeacon (encrypted): encrypted: set its bindkey")
    assert "hall sensor" in lines[2]
    assert lines[3].split() == ["00:11:22:33:44:55", "-80", "Phone", "-"]


def test_ble_scan_and_check_without_bluetooth_fail_in_one_line(tmp_path: Path, pibuddy_env: dict[str, str],
                                                               python: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("audio:\n  enabled: false\nupstream:\n  enabled: false\nble:\n  enabled: true\n")
    env = {**pibuddy_env, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-such-socket"}
    scan = subprocess.run([python, "-m", "pibuddy", "ble", "scan", "--seconds", "1", "--config", str(config)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert scan.returncode == 1
    assert scan.stderr.splitlines()[-1] == "pibuddy: Bluetooth is unavailable: no system D-Bus (is dbus running?)"
    check = subprocess.run([python, "-m", "pibuddy", "check", "--config", str(config)],
                           capture_output=True, text=True, env=env, timeout=60, check=False)
    assert check.returncode == 1
    row = next(line for line in check.stdout.splitlines() if line.startswith("bluetooth"))
    assert row.split(None, 2) == ["bluetooth", "FAIL", "Bluetooth is unavailable: no system D-Bus (is dbus running?)"]
    assert "Traceback" not in scan.stderr + check.stderr
