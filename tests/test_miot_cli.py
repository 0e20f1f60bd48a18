"""`pibuddy miot setup | devices | call` against the local Mi cloud fake: what setup saves (mode 600, tokens
never printed), the 2FA and QR paths, and the command line itself in a subprocess."""

from __future__ import annotations

import asyncio
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pibuddy.cli.miot import call, parse_value, run_setup
from pibuddy.config import MiotConfig
from pibuddy.drivers.miot.cloud import MiCloud
from pibuddy.drivers.miot.cloud_login import MiAccount
from pibuddy.drivers.miot.driver import SPECS_DIR, MiotDriver
from pibuddy.drivers.miot.inventory import DEVICES_FILE
from pibuddy.drivers.miot.spec_store import SpecStore
from tests.peers.mi_cloud import PASSWORD, USERNAME, CloudDevice, FakeMiCloud
from tests.peers.miio_device import load_spec

LAMP_URN = "urn:miot-spec-v2:device:light:0000A001:pibuddy-lamp1:1"
SWITCH_URN = "urn:miot-spec-v2:device:switch:0000A003:pibuddy-switch1:1"
LAMP_TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
async def fake() -> AsyncIterator[FakeMiCloud]:
    cloud = await FakeMiCloud(devices=[
        CloudDevice("4294967298", "Desk lamp", "pibuddy.light.lamp1", LAMP_URN, "Study", LAMP_TOKEN, "192.0.2.20"),
        CloudDevice("blt.3.1abcd", "Hall switch", "pibuddy.switch.switch1", SWITCH_URN, "Hall"),
        CloudDevice("88", "Old plug", "pibuddy.outlet.unknown", "", None)]).start()
    yield cloud
    await cloud.stop()


def _parts(fake: FakeMiCloud, state: Path) -> tuple[MiAccount, MiotDriver]:
    account = MiAccount(account_url=fake.base_url, timeout=5)
    cloud = MiCloud(state_dir=state, api_url=fake.api_url, account=account, timeout=5)
    specs = SpecStore(state / SPECS_DIR, fetch=False)
    specs.save(LAMP_URN, load_spec("lamp"))
    specs.save(SWITCH_URN, load_spec("switch"))
    return account, MiotDriver(MiotConfig(enabled=True), state, cloud=cloud, specs=specs)


async def test_setup_saves_devices_with_tokens_privately_and_prints_no_secret(fake: FakeMiCloud,
                                                                              tmp_path: Path) -> None:
    account, driver = _parts(fake, tmp_path)
    printed: list[str] = []
    code = await run_setup(account, driver.cloud, driver.specs, driver, username=USERNAME, password=PASSWORD,
                           out=printed.append)
    await driver.close()
    text = "\n".join(printed)
    assert code == 0
    assert LAMP_TOKEN not in text
    assert "Desk lamp    Study  pibuddy.light.lamp1" in text
    assert "No spec yet for: Old plug" in text  # no URN known and the release list is not reachable offline
    assert 'did: "4294967298"' in text
    saved = tmp_path / DEVICES_FILE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert LAMP_TOKEN in saved.read_text()
    reloaded = MiotDriver(MiotConfig(enabled=True), tmp_path)  # a later `pibuddy run` sees them
    assert [(d.name, d.lan_ready) for d in reloaded.devices()] == [
        ("Desk lamp", True), ("Hall switch", False), ("Old plug", False)]
    assert reloaded.cloud.logged_in


async def test_setup_explains_two_factor_and_qr_login_works(fake: FakeMiCloud, tmp_path: Path) -> None:
    account, driver = _parts(fake, tmp_path)
    fake.require_2fa = True
    printed: list[str] = []
    assert await run_setup(account, driver.cloud, driver.specs, driver, username=USERNAME, password=PASSWORD,
                           out=printed.append) == 1
    assert "verify this login" in printed[0]
    assert "--qr" in printed[0]
    printed.clear()
    asyncio.get_running_loop().call_later(0.1, fake.scanned.set)
    assert await run_setup(account, driver.cloud, driver.specs, driver, username=None, password=None, qr=True,
                           out=printed.append) == 0
    await driver.close()
    assert printed[0].startswith(f"Scan the QR code at {fake.base_url}/qr.png")
    assert (tmp_path / DEVICES_FILE).exists()


async def test_call_reads_and_controls_through_the_cloud(fake: FakeMiCloud, tmp_path: Path) -> None:
    account, driver = _parts(fake, tmp_path)
    await run_setup(account, driver.cloud, driver.specs, driver, username=USERNAME, password=PASSWORD,
                    out=lambda _: None)
    printed: list[str] = []
    assert await call(driver, "hall switch", "on", parse_value("true"), out=printed.append) == 0
    assert await call(driver, "hall switch", None, None, out=printed.append) == 0
    assert await call(driver, "sofa", None, None, out=printed.append) == 1
    assert printed[:2] == ["Turned the Hall switch on.", "The Hall switch is on."]
    assert printed[2].startswith('pibuddy: I could not find "sofa"')


def test_parse_value() -> None:
    assert [parse_value(t) for t in ("true", "40", "[1, 2]", "sleep", None)] == [True, 40, [1, 2], "sleep", None]


def test_devices_command_lists_saved_devices(tmp_path: Path, pibuddy_env: dict[str, str], python: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("miot:\n  enabled: true\n  devices:\n    - name: desk lamp\n      room: study\n"
                      f"      ip: 192.0.2.7\n      token: {LAMP_TOKEN}\n")
    result = subprocess.run([python, "-m", "pibuddy", "miot", "devices", "--config", str(config)],
                            capture_output=True, text=True, env=pibuddy_env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "NAME       ROOM   MODEL  DID  PATH  STATE",
        "desk lamp  study  -      -    lan   ?"]
    assert LAMP_TOKEN not in result.stdout + result.stderr
