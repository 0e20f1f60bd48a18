"""A running gateway in front of the xiaozhi test server, and firmware-like devices to point at it.

Everything talks over real sockets on 127.0.0.1; the gateway is started through its real service class.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pibuddy.config import GatewayConfig
from pibuddy.gateway.service import GatewayService
from pibuddy.statedir import StateDir
from pibuddy.tools.registry import ToolRegistry
from tests.peers.firmware_device import FirmwareDevice
from tests.peers.ports import free_port
from tests.peers.xiaozhi_server import XiaozhiTestServer

SIGNATURE_KEY = "Gw-Sign-Key9"


def gateway_config(chat_servers: list[str], **overrides: Any) -> GatewayConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1", "mqtt_port": free_port(), "udp_port": free_port(socket.SOCK_DGRAM),
        "api_port": free_port(), "ota_port": free_port(), "mdns": False, "signature_key": SIGNATURE_KEY,
        "chat_servers": chat_servers, "upstream_cooldown": 30.0,
    }
    return GatewayConfig(**(values | overrides))


def gateway_url(server: XiaozhiTestServer) -> str:
    return server.ws_url + "?from=mqtt_gateway"


@pytest.fixture
async def upstream() -> AsyncIterator[XiaozhiTestServer]:
    async with XiaozhiTestServer(tts_frames=4, tts_frame_interval=0.01, mcp_list_delay=0.0) as server:
        yield server


GatewayFactory = Callable[..., Awaitable[GatewayService]]


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    started: list[GatewayService] = []

    async def start(chat_servers: list[str], *, registry: ToolRegistry | None = None,
                    **overrides: Any) -> GatewayService:
        service = GatewayService(gateway_config(chat_servers, **overrides), state_dir=StateDir(tmp_path / "state"),
                                 registry=registry)
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


@pytest.fixture
async def gateway(start_gateway: GatewayFactory, upstream: XiaozhiTestServer) -> GatewayService:
    return await start_gateway([gateway_url(upstream)])


async def ota_credentials(gateway: GatewayService, mac: str, client_uuid: str = "") -> dict[str, Any]:
    """Ask the gateway's local OTA for a device's MQTT credentials, as the firmware does at boot."""
    assert gateway.ota is not None
    headers = {"Device-Id": mac, "Client-Id": client_uuid or f"uuid-{mac[-2:]}", "Content-Type": "application/json"}
    body = {"application": {"version": "2.4.4"}, "board": {"type": "bread-compact-wifi", "mac": mac}}
    async with aiohttp.ClientSession() as http, http.post(
        f"http://127.0.0.1:{gateway.ota.port}/xiaozhi/ota/", headers=headers, json=body
    ) as response:
        assert response.status == 200
        return dict(await response.json())


async def connect_device(gateway: GatewayService, index: int, *, connect: bool = True) -> FirmwareDevice:
    """A firmware-like device `aa:bb:cc:dd:ee:<index>` with OTA-issued credentials, connected by default."""
    mqtt = (await ota_credentials(gateway, f"aa:bb:cc:dd:ee:{index:02x}"))["mqtt"]
    host, port = mqtt["endpoint"].split(":")
    device = FirmwareDevice(host, int(port), client_id=mqtt["client_id"], username=mqtt["username"],
                            password=mqtt["password"])
    if connect:
        assert await device.connect() == 0
    return device


DeviceFactory = Callable[..., Awaitable[FirmwareDevice]]


@pytest.fixture
async def device_factory(gateway: GatewayService) -> AsyncIterator[DeviceFactory]:
    """Makes devices on the `gateway` fixture and closes them at the end."""
    devices: list[FirmwareDevice] = []

    async def make(index: int = 1, *, connect: bool = True) -> FirmwareDevice:
        device = await connect_device(gateway, index, connect=connect)
        devices.append(device)
        return device

    yield make
    for device in devices:
        await device.close()
