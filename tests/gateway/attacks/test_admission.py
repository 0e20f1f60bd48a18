"""Finding 4: squatting and takeover.

Seen: the OTA handed valid credentials to any MAC, so 200 squatting connections with keep-alive 0 (never
timed out) filled max_connections; knowing a device's MAC and Client-Id (sent in clear) let anyone take its
session over.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import aiohttp
import pytest

from pibuddy.events import Command, CommandName, EventBus
from pibuddy.gateway import admission as admission_rules
from pibuddy.gateway.admission import KNOWN_DEVICES_FILE
from pibuddy.gateway.credentials import daily_api_token
from pibuddy.gateway.service import GatewayService
from pibuddy.statedir import StateDir
from tests.gateway.attacks.helpers import ATTACKER, bounded_log, close_all, mqtt_connect_from, signed
from tests.gateway.conftest import SIGNATURE_KEY, GatewayFactory, connect_device, gateway_config, gateway_url
from tests.gateway.test_bad_input import still_serving
from tests.peers.xiaozhi_server import XiaozhiTestServer
from tests.polling import eventually

KNOWN_MAC = "aa:bb:cc:dd:ee:01"


def remember(tmp_path: Path, *macs: str) -> None:
    StateDir(tmp_path / "state").write_json(KNOWN_DEVICES_FILE, {"devices": list(macs)})


async def ota_status(gateway: GatewayService, mac: str) -> int:
    assert gateway.ota is not None
    async with aiohttp.ClientSession() as http, http.post(
        f"http://127.0.0.1:{gateway.ota.port}/xiaozhi/ota/", headers={"Device-Id": mac, "Client-Id": "u"}, json={},
    ) as response:
        return response.status


async def connack_from(gateway: GatewayService, source: str, client_id: str, username: str, password: str) -> int:
    """CONNECT from another source address; the CONNACK return code."""
    assert gateway.mqtt is not None
    code, _, writer = await mqtt_connect_from(gateway.mqtt.port, source, client_id, username, password)
    close_all([writer])
    return code


async def test_outside_pairing_new_devices_are_refused_and_known_ones_work(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    remember(tmp_path, KNOWN_MAC)
    gateway = await start_gateway([gateway_url(upstream)], pairing_minutes=0, max_connections=20)
    device = await connect_device(gateway, 1)  # known: OTA and MQTT as always
    with bounded_log(caplog):
        statuses = [await ota_status(gateway, f"02:00:00:00:{i // 256:02x}:{i % 256:02x}") for i in range(200)]
        assert set(statuses) == {403}
        # Credentials signed for devices that are not known (issued earlier, or by hand) do not get in.
        for i in range(30):
            mqtt = signed(f"02:00:00:00:01:{i:02x}")
            assert await connack_from(gateway, ATTACKER, mqtt["client_id"], mqtt["username"], mqtt["password"]) == 5
        await still_serving(device, upstream)
    assert gateway.mqtt is not None
    assert len(gateway.mqtt.connections) == 1
    await device.close()


async def test_pair_opens_a_window_that_admits_and_remembers_new_devices(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer, tmp_path: Path,
) -> None:
    window = 0.02  # minutes: 1.2 s
    gateway = await start_gateway([gateway_url(upstream)], pairing_minutes=window)
    await asyncio.sleep(window * 60 + 0.1)
    assert await ota_status(gateway, "aa:bb:cc:dd:ee:02") == 403
    assert gateway.api is not None
    token = daily_api_token(SIGNATURE_KEY, dt.date.today())
    async with aiohttp.ClientSession() as http, http.post(
        f"http://127.0.0.1:{gateway.api.port}/api/pairing", headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 200
        assert (await response.json()) == {"pairingSeconds": 1, "admission": "pairing"}
    device = await connect_device(gateway, 2)
    await asyncio.sleep(window * 60 + 0.1)  # closed again: the paired device is remembered, a new one is not
    assert await ota_status(gateway, "aa:bb:cc:dd:ee:02") == 200
    assert await ota_status(gateway, "aa:bb:cc:dd:ee:03") == 403
    assert StateDir(tmp_path / "state").read_json(KNOWN_DEVICES_FILE) == {"devices": ["aa:bb:cc:dd:ee:02"]}
    await still_serving(device, upstream)
    await device.close()


async def test_a_long_button_press_opens_pairing(tmp_path: Path) -> None:
    bus = EventBus()
    gateway = GatewayService(gateway_config([], pairing_minutes=0.02), state_dir=StateDir(tmp_path / "state"),
                             bus=bus)
    await gateway.start()
    serving = asyncio.create_task(gateway.serve())
    try:
        await asyncio.sleep(0.02 * 60 + 0.1)
        assert await ota_status(gateway, "aa:bb:cc:dd:ee:05") == 403
        bus.publish(Command(CommandName.OPEN_PAIRING))  # what gpio.button.hold_action: pair sends
        await eventually(lambda: gateway.admission.pairing_remaining() > 0)
        assert await ota_status(gateway, "aa:bb:cc:dd:ee:05") == 200
    finally:
        serving.cancel()
        await gateway.stop()


async def test_a_live_device_is_not_taken_over_from_another_address(
    gateway: GatewayService, upstream: XiaozhiTestServer, caplog: pytest.LogCaptureFixture,
) -> None:
    device = await connect_device(gateway, 1)
    await device.hello()
    with bounded_log(caplog):
        for _ in range(20):  # MAC and Client-Id are in clear; the OTA gives anyone the password
            assert device.username is not None
            assert device.password is not None
            assert await connack_from(gateway, ATTACKER, device.client_id, device.username, device.password) == 5
        await still_serving(device, upstream)
    assert "takeover of a live device from another IP address: 1" in caplog.text
    await device.close()


async def test_open_admission_serves_anyone_but_squatters_without_hello_are_closed(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(admission_rules, "NO_HELLO_SECONDS", 1.5)
    gateway = await start_gateway([gateway_url(upstream)], admission="open", pairing_minutes=0)
    talker = await connect_device(gateway, 1)
    await talker.hello()
    squatters = [await connect_device(gateway, 10 + i, connect=False) for i in range(5)]
    for squatter in squatters:
        squatter.keepalive = 0
        assert await squatter.connect() == 0
    leaver = await connect_device(gateway, 20)  # leaves by itself: its timer goes with it
    await leaver.close()
    await eventually(lambda: len(gateway.hello_deadlines) == len(squatters), within=1.0)
    for squatter in squatters:
        await asyncio.wait_for(squatter.closed.wait(), 3)
        await squatter.close()
    assert not talker.closed.is_set()
    assert not gateway.hello_deadlines
    await still_serving(talker, upstream)
    assert StateDir(tmp_path / "state").read_json(KNOWN_DEVICES_FILE) == {"devices": [KNOWN_MAC]}
    await talker.close()
