"""Done-when of the Home Assistant issue: during a conversation with the test xiaozhi server, the server's MCP
client calls `tools/call` on the device and PiBuddy turns on a light in the real test Home Assistant."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pibuddy.config import HomeAssistantConfig
from pibuddy.device_client.service import DeviceClientService
from pibuddy.events import EventBus
from pibuddy.wiring.tools import build_registry
from tests.device_client_helpers import ScriptedAudio, device_config
from tests.peers.homeassistant import HomeAssistantPeer
from tests.peers.xiaozhi_server import XiaozhiTestServer

pytestmark = pytest.mark.peer
_STEP = 5.0


async def test_conversation_turns_on_a_light(homeassistant_peer: HomeAssistantPeer,
                                             tmp_path: Path) -> None:
    peer = homeassistant_peer
    peer.start()
    peer.call("input_boolean", "turn_off", {"entity_id": ["input_boolean.living_room_light_power",
                                                          "input_boolean.floor_lamp_power"]})
    async with XiaozhiTestServer(tts_frames=2, tts_frame_interval=0.01, utterance_frames=3) as server:
        config = device_config(tmp_path, server.ota_url).model_copy(update={"homeassistant": HomeAssistantConfig(
            enabled=True, url=peer.url, token=peer.token)})  # type: ignore[arg-type]
        service = DeviceClientService(config, bus=EventBus(), registry=build_registry(config), audio=ScriptedAudio())
        await service.start()
        try:
            assert service.client is not None
            assert await service.client.wake("你好小智")
            await asyncio.wait_for(server.tools_listed.wait(), _STEP)
            assert "ha_control_device" in [t["name"] for t in server.mcp_tools]
            result = await asyncio.wait_for(
                server.call_tool("ha_control_device", {"target": "客厅的灯", "action": "turn_on"}), 15)
        finally:
            await service.stop()
    assert result["isError"] is False
    assert result["content"][0]["text"] == (
        "In Living Room: Living Room Light is on. Floor Lamp is on, at 0% brightness.")
    assert peer.state("light.living_room_light")["state"] == "on"
    assert peer.state("light.floor_lamp")["state"] == "on"
    peer.call("input_boolean", "turn_off", {"entity_id": ["input_boolean.living_room_light_power",
                                                          "input_boolean.floor_lamp_power"]})
