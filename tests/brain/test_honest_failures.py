"""The local brain tells why a command failed in one short sentence fit to be spoken, for every driver: a Mi
device that does not answer, one that refuses its token, one nothing listens for, the Mi cloud unreachable,
Bluetooth unavailable. The detail (the address, the command to run) is in one log line, never in the reply.

Before: "Sorry, that did not work." plus the driver's text for the LLM, e.g. "... reading lamp does not answer
at 127.0.0.1: it is offline or its address changed" or "... run `pibuddy miot setup` ...".
The Mi devices are the real miIO test peer on 127.0.0.1 (tests/peers/miio_device.py); the Mi cloud is a closed
port; Bluetooth is the fake radio switched off, and, through `pibuddy say`, the real BlueZ backend with no
system D-Bus.
"""

from __future__ import annotations

import logging
import re
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason

from pibuddy.brain import LocalBrain, Outcome, Reply
from pibuddy.brain.vocabulary import BleVocabulary, MiotVocabulary
from pibuddy.config import MiotConfig
from pibuddy.drivers.ble import BleDriver, BleService, ble_tools
from pibuddy.drivers.miot import MiotDriver, miot_tools
from pibuddy.drivers.miot.cloud import MiCloud
from pibuddy.drivers.miot.cloud_login import MiAccount
from pibuddy.drivers.miot.cloud_transport import CloudTransport
from pibuddy.drivers.miot.driver import SPECS_DIR
from pibuddy.drivers.miot.lan_transport import LanTransport
from pibuddy.drivers.miot.spec_store import SpecStore
from tests.brain.test_actions_drivers import BLE, FAN_URN, LAMP_DID, LAMP_URN, TOKEN, _brain, _miot_driver, _registry
from tests.peers.fake_bleak_backend import AIR, FakeClient, FakeScanner
from tests.peers.mi_cloud import PASSWORD, USERNAME
from tests.peers.miio_device import Fault, SimulatedDevice, load_spec
from tests.peers.ports import free_port

_NOT_SPOKEN = re.compile(r"\d+\.\d+\.\d+\.\d+|pibuddy|`|miot\.|;")  # addresses, commands, config keys, lists


def _spoken(reply: Reply) -> str:
    assert reply.outcome is Outcome.FAILED, reply
    assert not _NOT_SPOKEN.search(reply.text), f"not fit to be spoken: {reply.text!r}"
    return reply.text


def _failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The registry's one WARNING line per failed tool call (the detail)."""
    return [r.getMessage() for r in caplog.records
            if r.name == "pibuddy.tools.registry" and r.levelno >= logging.WARNING]


@pytest.fixture
async def lamp() -> AsyncIterator[SimulatedDevice]:
    async with SimulatedDevice(load_spec("lamp"), token=bytes.fromhex(TOKEN), did=LAMP_DID) as device:
        yield device


async def _miot_brains(driver: MiotDriver) -> tuple[LocalBrain, LocalBrain]:
    registry = _registry(miot_tools(driver))
    return _brain(registry, MiotVocabulary(driver)), _brain(registry, MiotVocabulary(driver), "zh-CN")


async def test_a_mi_device_that_does_not_answer(lamp: SimulatedDevice, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    lamp.fault = Fault.SILENT
    driver = _miot_driver(tmp_path, lamp.port, lamp.host)
    english, chinese = await _miot_brains(driver)
    try:
        assert _spoken(await english.handle("turn on the reading lamp")) == "Sorry, the reading lamp did not respond."
        assert _spoken(await chinese.handle("关闭阅读灯")) == "抱歉，阅读灯没有回应。"
    finally:
        await driver.close()
    assert lamp.state.values[(2, 1)] is False
    assert _failure_lines(caplog)[0] == ("tool miot_control failed (device_not_responding): reading lamp does not "
                                         "answer at 127.0.0.1: it is offline or its address changed")


async def test_a_mi_device_that_refuses_the_token(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with SimulatedDevice(load_spec("lamp"), token=bytes(16), did=LAMP_DID) as other_token:
        driver = _miot_driver(tmp_path, other_token.port, other_token.host)
        english, _ = await _miot_brains(driver)
        try:
            said = _spoken(await english.handle("turn on the reading lamp"))
        finally:
            await driver.close()
    assert said == "Sorry, the reading lamp refused my access token."
    assert "so its token is wrong: run `pibuddy miot setup` or fix the token" in _failure_lines(caplog)[0]


async def test_a_mi_device_nothing_listens_for(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    driver = _miot_driver(tmp_path, free_port(socket.SOCK_DGRAM))  # ICMP port unreachable: nobody is there
    english, _ = await _miot_brains(driver)
    try:
        assert _spoken(await english.handle("turn on the reading lamp")) == \
            "Sorry, I can't reach the reading lamp right now."
    finally:
        await driver.close()
    assert "reading lamp cannot be reached at 127.0.0.1" in _failure_lines(caplog)[0]


async def test_the_mi_cloud_unreachable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The tower fan has no LAN address: only the Mi cloud reaches it, and nothing answers at the cloud's URL."""
    closed = f"http://127.0.0.1:{free_port()}"
    cloud = MiCloud(state_dir=tmp_path, username=USERNAME, password=PASSWORD, api_url=closed,
                    account=MiAccount(account_url=closed, timeout=5), timeout=5)
    specs = SpecStore(tmp_path / SPECS_DIR, fetch=False)
    specs.save(FAN_URN, load_spec("fan"))
    specs.save(LAMP_URN, load_spec("lamp"))
    config = MiotConfig.model_validate({"enabled": True, "discovery": False, "devices": [
        {"name": "tower fan", "aliases": ["塔扇"], "room": "Bedroom", "did": "5123456789", "model": "pibuddy.fan.fan1",
         "urn": FAN_URN}]})
    driver = MiotDriver(config, tmp_path, transports=[LanTransport(timeout=0.3), CloudTransport(cloud)], cloud=cloud,
                        specs=specs)
    english, chinese = await _miot_brains(driver)
    try:
        assert _spoken(await english.handle("turn on the tower fan")) == "Sorry, I can't reach the Mi cloud right now."
        assert _spoken(await chinese.handle("打开塔扇")) == "抱歉，现在连不上米家云。"
    finally:
        await driver.close()
    assert "cannot reach the Mi account server (ConnectError)" in _failure_lines(caplog)[0]


@pytest.fixture
def bluetooth_off() -> Iterator[None]:
    AIR.reset()
    AIR.unavailable = BleakBluetoothNotAvailableError("No powered Bluetooth adapters found.",
                                                      BleakBluetoothNotAvailableReason.POWERED_OFF)
    yield
    AIR.reset()


@pytest.mark.usefixtures("bluetooth_off")
async def test_bluetooth_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    driver = BleDriver(BLE, scanner_backend=FakeScanner, client_backend=FakeClient)
    service = BleService(driver)
    await service.start()
    registry = _registry(ble_tools(driver))
    try:
        english = _brain(registry, BleVocabulary(BLE))
        assert _spoken(await english.handle("what is the temperature in the bedroom")) == \
            "Sorry, I can't reach Bluetooth right now."
        assert _spoken(await english.handle("turn on the strip light")) == "Sorry, I can't reach Bluetooth right now."
        chinese = _brain(registry, BleVocabulary(BLE), "zh-CN")
        assert _spoken(await chinese.handle("打开灯带")) == "抱歉，现在连不上蓝牙。"
    finally:
        await service.stop()
    assert "Bluetooth is unavailable: the Bluetooth adapter is powered off (try `bluetoothctl power on`" in \
        _failure_lines(caplog)[0]


def test_pibuddy_say_with_no_bluetooth(tmp_path: Path, pibuddy_env: dict[str, str], python: str) -> None:
    """The real BlueZ backend, and no system D-Bus to reach it through."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"audio": {"enabled": False}, "upstream": {"enabled": False}, "ble": {
        "enabled": True, "scan_seconds": 1, "sensors": [{"address": "A4:C1:38:8D:18:B2", "name": "bedroom sensor",
                                                         "area": "bedroom"}]}}))
    env = pibuddy_env | {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path}/no-such-socket"}
    result = subprocess.run([python, "-m", "pibuddy", "say", "--config", str(config),
                             "what is the temperature in the bedroom"],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert "reply:   Sorry, I can't reach Bluetooth right now.\n" in result.stdout
    assert "Bluetooth is unavailable: no system D-Bus (is dbus running?)" in result.stderr, "the detail is logged"
    assert result.returncode == 1
