"""The management API on a real port: daily tokens, commands to a device's MCP, status and device list."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import aiohttp
import pytest

from pibuddy.gateway.credentials import daily_api_token
from pibuddy.gateway.service import GatewayService
from tests.gateway.conftest import SIGNATURE_KEY, DeviceFactory
from tests.peers.opus_audio import encode_tone
from tests.polling import eventually


def token(days_from_today: int = 0) -> str:
    return daily_api_token(SIGNATURE_KEY, dt.date.today() + dt.timedelta(days=days_from_today))


async def call(gateway: GatewayService, method: str, path: str, *, body: Any = None,
               authorization: str | None = None) -> tuple[int, Any]:
    assert gateway.api is not None
    headers = {"Authorization": authorization if authorization is not None else f"Bearer {token()}"}
    async with aiohttp.ClientSession() as http, http.request(
        method, f"http://127.0.0.1:{gateway.api.port}{path}", json=body, headers=headers
    ) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(("days", "status"), [(-1, 200), (0, 200), (1, 200), (-2, 401), (2, 401)])
async def test_daily_token_window(gateway: GatewayService, days: int, status: int) -> None:
    code, body = await call(gateway, "GET", "/api/devices", authorization=f"Bearer {token(days)}")
    assert code == status
    if status == 401:
        assert body == {"error": "invalid token"}


@pytest.mark.parametrize("authorization", ["", "Basic abc", token()])
async def test_missing_or_non_bearer_header_is_401(gateway: GatewayService, authorization: str) -> None:
    answer = await call(gateway, "POST", "/api/devices/status", body={"clientIds": []}, authorization=authorization)
    assert answer == (401, {"error": "no valid Authorization header (expected: Bearer <token>)"})


async def test_command_round_trips_to_the_device_mcp(gateway: GatewayService, device_factory: DeviceFactory) -> None:
    device = await device_factory(1)
    command = {"type": "mcp", "payload": {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                          "params": {"name": "self.get_device_status", "arguments": {}}}}
    code, body = await call(gateway, "POST", f"/api/commands/{device.client_id}", body=command)
    assert (code, body) == (200, {"success": True, "data": {
        "content": [{"type": "text", "text": '{"audio_speaker":{"volume":70}}'}], "isError": False}})
    listed = {"type": "mcp", "payload": {"method": "tools/list", "params": {"withUserTools": True}}}
    code, body = await call(gateway, "POST", f"/api/commands/{device.client_id}", body=listed)
    assert code == 200
    assert [t["name"] for t in body["data"]["tools"]] == ["self.get_device_status"]


async def test_command_failures_use_the_reference_bodies(
    gateway: GatewayService, device_factory: DeviceFactory
) -> None:
    device = await device_factory(1)
    path = f"/api/commands/{device.client_id}"
    unknown = {"type": "mcp", "payload": {"method": "resources/list"}}
    assert await call(gateway, "POST", path, body=unknown) == (500, {"success": False,
                                                                     "error": "Unknown resources/list"})
    assert await call(gateway, "POST", path, body={"type": "iot", "payload": {}}) == \
        (500, {"success": False, "error": "invalid command type (expected: mcp with a payload method)"})
    assert await call(gateway, "POST", "/api/commands/GID_x@@@aa_bb_cc_dd_ee_99@@@u", body=unknown) == \
        (500, {"success": False, "error": "device not connected"})
    # The reference looks the device up before it reads the command.
    assert await call(gateway, "POST", "/api/commands/GID_x@@@aa_bb_cc_dd_ee_99@@@u", body={"type": "iot"}) == \
        (500, {"success": False, "error": "device not connected"})


async def test_command_timeout_after_five_seconds(gateway: GatewayService, device_factory: DeviceFactory) -> None:
    device = await device_factory(1)
    await eventually(lambda: gateway.sessions[device.client_id].mcp.discovered)
    device.answer_mcp = False
    started = time.monotonic()
    command = {"type": "mcp", "payload": {"method": "tools/call", "params": {"name": "self.get_device_status"}}}
    assert await call(gateway, "POST", f"/api/commands/{device.client_id}", body=command) == \
        (500, {"success": False, "error": "timeout"})
    assert 4.8 < time.monotonic() - started < 7
    request = (await device.next_message(of_type="mcp"))["payload"]
    assert request["method"] == "tools/call"
    assert request["id"] >= 10000  # the gateway's own id space


async def test_status_and_device_list(gateway: GatewayService, device_factory: DeviceFactory) -> None:
    idle, talking = await device_factory(1), await device_factory(2)
    await talking.hello()
    talking.send_audio(encode_tone(1, rate=16000)[0])
    await eventually(lambda: gateway.sessions[talking.client_id].bridge.frames_up == 1)  # type: ignore[union-attr]
    ids = [idle.client_id, talking.client_id, "GID_x@@@aa_bb_cc_dd_ee_99@@@gone"]
    code, body = await call(gateway, "POST", "/api/devices/status", body={"clientIds": ids})
    assert code == 200
    # The reference's isAlive is `bridge && bridge.isAlive()`: null for a connected device without a session.
    assert body == {ids[0]: {"isAlive": None, "exists": True}, ids[1]: {"isAlive": True, "exists": True},
                    ids[2]: {"isAlive": False, "exists": False}}
    assert await call(gateway, "POST", "/api/devices/status", body={"deviceIds": ids}) == \
        (400, {"error": "clientIds must be an array"})

    code, body = await call(gateway, "GET", "/api/devices")
    devices = {d["clientId"]: d for d in body["devices"]}
    assert devices[idle.client_id]["state"] == "idle"
    listed = devices[talking.client_id]
    assert listed["state"] == "bridged"
    assert listed["sessionId"] == talking.session_id
    assert listed["mac"] == "aa:bb:cc:dd:ee:02"
    assert listed["ip"] == "127.0.0.1"
    assert listed["upstream"].endswith("/xiaozhi/v1/")
    assert dt.datetime.fromisoformat(listed["connectedAt"]) <= dt.datetime.now(dt.UTC)
    assert listed["mqtt"]["messagesIn"] >= 3  # hello plus the MCP discovery answers
    assert listed["udp"] == {"packetsIn": 1, "packetsOut": 0}
    assert listed["websocket"]["framesUp"] == 1
    assert body["upstreams"] == [{"url": listed["upstream"], "healthy": True, "activeSessions": 1,
                                  "sessionsTotal": 1, "failures": 0}]
