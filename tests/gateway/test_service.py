"""The gateway as a service: local OTA, mDNS, the signature key in the state dir, wiring and the CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
import yaml
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from pibuddy.config import Config
from pibuddy.events import EventBus
from pibuddy.gateway.credentials import validate_client
from pibuddy.gateway.ota_server import MDNS_SERVICE_TYPE
from pibuddy.gateway.service import SIGNATURE_KEY_FILE, GatewayService
from pibuddy.statedir import StateDir
from pibuddy.wiring.services import build_services
from tests.gateway.conftest import SIGNATURE_KEY, GatewayFactory, gateway_config, ota_credentials
from tests.peers.firmware_device import FirmwareDevice


async def test_ota_answer_points_at_this_gateway_with_signed_credentials(gateway: GatewayService) -> None:
    before = time.time()
    answer = await ota_credentials(gateway, "AA:BB:CC:DD:EE:05", "6f1c9a3e-uuid")
    assert gateway.mqtt is not None
    mqtt = answer["mqtt"]
    assert mqtt["endpoint"] == f"127.0.0.1:{gateway.mqtt.port}"
    assert mqtt["client_id"] == "GID_bread-compact-wifi@@@aa_bb_cc_dd_ee_05@@@6f1c9a3e-uuid"
    assert json.loads(base64.b64decode(mqtt["username"])) == {"ip": "127.0.0.1"}
    validate_client(mqtt["client_id"], mqtt["username"], mqtt["password"].encode(), "127.0.0.1",
                    key=SIGNATURE_KEY, allow_two_part=False)
    assert before * 1000 - 1000 <= answer["server_time"]["timestamp"] <= time.time() * 1000 + 1000
    assert isinstance(answer["server_time"]["timezone_offset"], int)
    assert answer["firmware"] == {"version": "2.4.4", "url": ""}  # never an upgrade
    assert "websocket" not in answer  # the firmware must choose MQTT+UDP


async def test_activate_is_200_and_a_request_without_device_id_is_400(gateway: GatewayService) -> None:
    assert gateway.ota is not None
    base = f"http://127.0.0.1:{gateway.ota.port}/xiaozhi/ota/"
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "activate", json={}) as response:
            assert response.status == 200
        async with http.post(base, json={}) as response:
            assert response.status == 400
        async with http.post(base, data=b"not json", headers={"Device-Id": "aa:bb:cc:dd:ee:06"}) as response:
            assert response.status == 200  # an odd body still gets a configuration
            assert "mqtt" in await response.json()
        async with http.post(base, json={}, headers={"Device-Id": "not-a-mac"}) as response:
            assert response.status == 400


@pytest.mark.parametrize("device_id", ["11:22:33:44:55:66", "11_22_33_44_55_66", "11-22-33-44-55-66"])
async def test_ota_takes_any_mac_spelling_the_mqtt_side_takes(gateway: GatewayService, device_id: str) -> None:
    """Seen: the reference docs' test MAC 11:22:33:44:55:66 got HTTP 400 (multicast bit) from the local OTA."""
    mqtt = (await ota_credentials(gateway, device_id))["mqtt"]
    assert mqtt["client_id"].split("@@@")[1] == "11_22_33_44_55_66"
    device = FirmwareDevice("127.0.0.1", int(mqtt["endpoint"].split(":")[1]), client_id=mqtt["client_id"],
                            username=mqtt["username"], password=mqtt["password"])
    try:
        assert await device.connect() == 0
    finally:
        await device.close()


async def test_mdns_advertises_the_ota_url_on_loopback(tmp_path: Path) -> None:
    service = GatewayService(gateway_config([], mdns=True), state_dir=StateDir(tmp_path),
                             mdns_interfaces=["127.0.0.1"])
    await service.start()
    browser = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        assert service.mdns is not None
        info = AsyncServiceInfo(MDNS_SERVICE_TYPE, service.mdns.instance)
        assert await info.async_request(browser.zeroconf, 3000)
        assert service.ota is not None
        assert service.mqtt is not None
        assert info.port == service.ota.port
        assert info.parsed_addresses() == ["127.0.0.1"]
        assert info.properties[b"path"] == b"/xiaozhi/ota/"
        assert info.properties[b"mqtt_port"] == str(service.mqtt.port).encode()
    finally:
        await browser.async_close()
        await service.stop()


async def test_signature_key_is_generated_once_and_kept_mode_600(tmp_path: Path) -> None:
    first = GatewayService(gateway_config([], signature_key=None), state_dir=StateDir(tmp_path / "state"))
    await first.start()
    device_creds = await ota_credentials(first, "aa:bb:cc:dd:ee:07")
    await first.stop()
    key_file = tmp_path / "state" / SIGNATURE_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 16

    second = GatewayService(gateway_config([], signature_key=None), state_dir=StateDir(tmp_path / "state"))
    await second.start()
    try:
        mqtt = device_creds["mqtt"]  # credentials from before the restart still pass
        validate_client(mqtt["client_id"], mqtt["username"], mqtt["password"].encode(), "127.0.0.1", key=key,
                        allow_two_part=False)
        assert key_file.read_text().strip() == key
    finally:
        await second.stop()


async def test_weak_configured_key_keeps_the_api_off_but_serves_devices(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await start_gateway([], signature_key="password1A")
    assert gateway.api is None
    assert "management API not started" in caplog.text
    assert gateway.mqtt is not None  # devices are still served


def test_run_wires_the_gateway_by_default_and_not_when_disabled(tmp_path: Path) -> None:
    enabled = Config.model_validate({"device": {"state_dir": str(tmp_path)}, "audio": {"enabled": False}})
    assert enabled.gateway.enabled
    assert any(isinstance(s, GatewayService) for s in build_services(enabled, EventBus()))
    disabled = enabled.model_copy(update={"gateway": enabled.gateway.model_copy(update={"enabled": False})})
    assert not any(isinstance(s, GatewayService) for s in build_services(disabled, EventBus()))


async def test_cli_credentials_and_status(tmp_path: Path, pibuddy_env: dict[str, str], python: str,
                                          start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(["ws://127.0.0.1:9/xiaozhi/v1/?from=mqtt_gateway"])
    assert gateway.api is not None
    assert gateway.mqtt is not None
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"gateway": {"host": "127.0.0.1", "api_port": gateway.api.port,
                                                  "mqtt_port": gateway.mqtt.port, "signature_key": SIGNATURE_KEY}}))
    # The reference docs' test MAC (its first byte has the multicast bit; it was refused as "not a MAC").
    creds = await _cli(python, pibuddy_env, "credentials", "11:22:33:44:55:66", "--config", str(config))
    mqtt = json.loads(creds)["mqtt"]
    assert mqtt["endpoint"] == f"127.0.0.1:{gateway.mqtt.port}"
    assert mqtt["client_id"] == "GID_default@@@11_22_33_44_55_66@@@11_22_33_44_55_66"
    device = FirmwareDevice("127.0.0.1", gateway.mqtt.port, client_id=mqtt["client_id"],
                            username=mqtt["username"], password=mqtt["password"])
    assert await device.connect() == 0
    status = await _cli(python, pibuddy_env, "status", "--config", str(config))
    assert "11:22:33:44:55:66" in status
    assert "idle" in status
    assert "chat server ws://127.0.0.1:9/xiaozhi/v1/: healthy, 0 active" in status
    await device.close()


async def _cli(python: str, env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(python, "-m", "pibuddy", "gateway", *args, env=env,
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_public_host_name_is_advertised_in_credentials_without_mdns(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await start_gateway([], public_ip="gw.example.invalid", mdns=True)
    assert gateway.mdns is None
    assert "no mDNS advertisement" in caplog.text
    answer = await ota_credentials(gateway, "aa:bb:cc:dd:ee:09")
    assert gateway.mqtt is not None
    assert answer["mqtt"]["endpoint"] == f"gw.example.invalid:{gateway.mqtt.port}"
