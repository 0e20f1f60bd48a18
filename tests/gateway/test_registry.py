"""Several gateways as one: a real Redis (Debian's redis-server) as the device registry, two `pibuddy run`
gateway processes, a firmware-like device on one of them, and the management API of the other finding it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pibuddy.gateway.credentials import daily_api_token
from pibuddy.gateway.registry import KEY_PREFIX
from pibuddy.gateway.service import GatewayService
from tests.gateway.conftest import SIGNATURE_KEY, GatewayFactory, connect_device
from tests.peers.firmware_device import FirmwareDevice
from tests.peers.ports import free_port
from tests.peers.processes import stop_process
from tests.peers.redis import RedisServer
from tests.polling import eventually

pytestmark = pytest.mark.peer
_STATUS_COMMAND = {"type": "mcp", "payload": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                              "params": {"name": "self.get_device_status", "arguments": {}}}}


@dataclass
class GatewayProcess:
    process: asyncio.subprocess.Process
    mqtt_port: int
    api_port: int
    ota_port: int

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@pytest.fixture
async def redis() -> AsyncIterator[RedisServer]:
    async with RedisServer() as server:
        yield server


async def start_gateway_process(tmp_path: Path, name: str, registry_url: str | None) -> GatewayProcess:
    """`pibuddy run` with only the gateway on, its ports free, the shared key and registry (if any); its state
    dir (and control socket) in `tmp_path / name`, its config in `tmp_path / f"{name}.yaml"`."""
    ports = {key: free_port() for key in ("mqtt_port", "api_port", "ota_port")}
    config = {"device": {"state_dir": str(tmp_path / name)}, "audio": {"enabled": False},
              "upstream": {"enabled": False}, "tools": {"builtin": False}, "logging": {"level": "INFO"},
              "gateway": {"host": "127.0.0.1", "udp_port": free_port(socket.SOCK_DGRAM), "mdns": False,
                          "signature_key": SIGNATURE_KEY, "registry_url": registry_url, **ports}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(config))
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "pibuddy", "run", "--config", str(path),
                                                   stdin=asyncio.subprocess.DEVNULL, env=_own_state_dir())
    gateway = GatewayProcess(process, **ports)
    deadline = time.monotonic() + 30
    while True:  # up when its management API answers
        try:
            await api_call(gateway, "GET", "/api/devices")
            return gateway
        except aiohttp.ClientConnectionError:
            if process.returncode is not None or time.monotonic() > deadline:
                await stop_process(process, 5)
                raise AssertionError(f"gateway {name} did not start") from None
            await asyncio.sleep(0.1)


def _own_state_dir() -> dict[str, str]:
    """The environment without PIBUDDY_* overrides: the config's state dir is the one used."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PIBUDDY_")}


async def api_call(gateway: GatewayProcess | GatewayService, method: str, path: str, *, body: Any = None
                   ) -> tuple[int, Any]:
    """(status, JSON body or None) of one management API call with today's token."""
    base = gateway.api if isinstance(gateway, GatewayProcess) else f"http://127.0.0.1:{gateway.api.port}"  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {daily_api_token(SIGNATURE_KEY, dt.date.today())}"}
    async with aiohttp.ClientSession() as http, http.request(method, base + path, json=body, headers=headers,
                                                              allow_redirects=False) as response:
        answer = await response.json() if response.content_type == "application/json" else None
        return response.status, answer


async def device_on(gateway: GatewayProcess, index: int) -> FirmwareDevice:
    """A firmware-like device with credentials from `gateway`'s OTA, connected to its MQTT."""
    mac = f"aa:bb:cc:dd:ee:{index:02x}"
    body = {"application": {"version": "2.4.4"}, "board": {"type": "bread-compact-wifi", "mac": mac}}
    headers = {"Device-Id": mac, "Client-Id": f"uuid-{index}"}
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{gateway.ota_port}/xiaozhi/ota/", json=body, headers=headers) as response:
        mqtt = (await response.json())["mqtt"]
    host, port = mqtt["endpoint"].split(":")
    device = FirmwareDevice(host, int(port), client_id=mqtt["client_id"], username=mqtt["username"],
                            password=mqtt["password"])
    assert await device.connect() == 0
    return device


async def location(gateway: GatewayProcess | GatewayService, client_id: str) -> tuple[int, Any]:
    return await api_call(gateway, "GET", f"/api/devices/{client_id}/location")


async def until_location(gateway: GatewayProcess | GatewayService, client_id: str, expected: tuple[int, Any],
                         within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (found := await location(gateway, client_id)) != expected:
        assert time.monotonic() < deadline, f"location {found}, expected {expected}"
        await asyncio.sleep(0.05)


async def test_two_gateway_processes_find_each_others_devices(tmp_path: Path, redis: RedisServer) -> None:
    first = await start_gateway_process(tmp_path, "first", redis.url)
    second = await start_gateway_process(tmp_path, "second", redis.url)
    devices: list[FirmwareDevice] = []
    try:
        devices.append(device := await device_on(first, 1))
        client_id = device.client_id
        await until_location(second, client_id, (200, {"clientId": client_id, "local": False,
                                                       "gateway": first.api}))
        assert await location(first, client_id) == (200, {"clientId": client_id, "local": True, "gateway": None})

        # A command sent to the other gateway is passed on and reaches the device's MCP.
        path = f"/api/commands/{client_id}"
        status, answer = await api_call(second, "POST", path, body=_STATUS_COMMAND)
        assert (status, answer["success"]) == (200, True)
        assert answer["data"]["content"][0]["text"] == '{"audio_speaker":{"volume":70}}'

        # The device leaves: no gateway holds it.
        await device.close()
        gone = (404, {"clientId": client_id, "error": "device not connected"})
        await until_location(second, client_id, gone)
        status, answer = await api_call(second, "POST", path, body=_STATUS_COMMAND)
        assert (status, answer) == (500, {"success": False, "error": "device not connected"})

        # A gateway that stops takes its devices out of the registry with it.
        devices.append(device := await device_on(first, 2))
        await until_location(second, device.client_id, (200, {"clientId": device.client_id, "local": False,
                                                              "gateway": first.api}))
        await stop_process(first.process, 10)
        assert first.process.returncode == 0
        await until_location(second, device.client_id, (404, {"clientId": device.client_id,
                                                              "error": "device not connected"}))
    finally:
        for device in devices:
            await device.close()
        for gateway in (first, second):
            await stop_process(gateway.process, 10)


async def test_a_device_that_moved_keeps_its_new_entry_when_the_old_gateway_lets_go(
        start_gateway: GatewayFactory, redis: RedisServer) -> None:
    from redis.asyncio import Redis  # noqa: PLC0415

    first = await start_gateway([], registry_url=redis.url)
    second = await start_gateway([], registry_url=redis.url)
    assert first.device_registry is not None
    assert second.device_registry is not None
    assert second.mqtt is not None
    device = await connect_device(first, 7)
    client = Redis.from_url(redis.url, decode_responses=True)
    key = KEY_PREFIX + device.client_id
    try:
        await eventually_value(client, key, first.device_registry.api_url)
        # The same device reconnects to the second gateway before the first has noticed it is gone ...
        moved = FirmwareDevice("127.0.0.1", second.mqtt.port, client_id=device.client_id,
                               username=device.username, password=device.password)
        assert await moved.connect() == 0
        await eventually_value(client, key, second.device_registry.api_url)
        # ... which then sees the old connection close: the registry still names the second gateway.
        await device.close()
        await eventually(lambda: device.client_id not in first.sessions)
        await asyncio.sleep(0.3)  # the first gateway's delete has had time to reach Redis
        assert await client.get(key) == second.device_registry.api_url
        assert await location(first, device.client_id) == (200, {"clientId": device.client_id, "local": False,
                                                                 "gateway": second.device_registry.api_url})
        await moved.close()
    finally:
        await client.aclose()
        await device.close()


async def eventually_value(client: Any, key: str, expected: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (found := await client.get(key)) != expected:
        assert time.monotonic() < deadline, f"{key} = {found!r}, expected {expected!r}"
        await asyncio.sleep(0.05)


async def test_without_redis_the_gateway_serves_and_the_api_says_why_it_cannot_look_elsewhere(
        start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway([], registry_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    device = await connect_device(gateway, 3)
    try:
        assert await location(gateway, device.client_id) == (200, {"clientId": device.client_id, "local": True,
                                                                   "gateway": None})
        status, answer = await location(gateway, "GID_test@@@aa_bb_cc_dd_ee_99@@@elsewhere")
        assert status == 503
        assert answer["error"].startswith("device registry unavailable: ")
        status, answer = await api_call(gateway, "POST", f"/api/commands/{device.client_id}",
                                        body=_STATUS_COMMAND)
        assert (status, answer["success"]) == (200, True)
    finally:
        await device.close()


async def test_entries_carry_a_time_to_live(start_gateway: GatewayFactory, redis: RedisServer) -> None:
    """A gateway killed without a goodbye must not hold its devices in the registry for ever."""
    from redis.asyncio import Redis  # noqa: PLC0415

    gateway = await start_gateway([], registry_url=redis.url)
    device = await connect_device(gateway, 4)
    client = Redis.from_url(redis.url, decode_responses=True)
    try:
        key = KEY_PREFIX + device.client_id
        deadline = time.monotonic() + 5
        while await client.get(key) is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert 0 < await client.ttl(key) <= 30
    finally:
        await client.aclose()
        await device.close()
