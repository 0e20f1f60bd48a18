"""Two independent device implementations through the gateway at once: PiBuddy's own device client (OTA
from the gateway, MQTT via its library, the shared xiaozhi codec) and the hand-built firmware-like device."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pibuddy.device_client.service import DeviceClientService
from pibuddy.events import EventBus
from pibuddy.gateway.service import GatewayService
from pibuddy.wiring.tools import build_registry
from pibuddy.xiaozhi import State
from tests.device_client_helpers import ScriptedAudio, device_config
from tests.gateway.conftest import DeviceFactory
from tests.gateway.test_conversation import reply_audio, speak
from tests.peers.xiaozhi_server import XiaozhiTestServer
from tests.polling import eventually


async def test_pibuddy_client_and_firmware_device_talk_at_once(
    gateway: GatewayService, upstream: XiaozhiTestServer, device_factory: DeviceFactory, tmp_path: Path
) -> None:
    assert gateway.ota is not None
    config = device_config(tmp_path, f"http://127.0.0.1:{gateway.ota.port}/xiaozhi/ota/")
    audio = ScriptedAudio()
    service = DeviceClientService(config, bus=EventBus(), registry=build_registry(config), audio=audio)
    await service.start()
    firmware = await device_factory(1)
    try:
        client = service.client
        assert client is not None
        pibuddy_id = next(cid for cid in gateway.sessions if "02_11_22_33_44_55" in cid)
        await firmware.hello()
        assert await client.wake("你好小智")  # PiBuddy's hello goes through the gateway too
        await speak(firmware)
        await reply_audio(firmware, 4)
        await eventually(lambda: len(audio.played) >= 4, within=5)  # the greeting reached PiBuddy's speaker
        assert all(len(pcm) == 2 * 1440 for pcm in audio.decoded_playback(24000))
        sessions = {cid: s.session_id for cid, s in gateway.sessions.items()}
        assert sessions[pibuddy_id] == client.session.session_id
        assert sessions[firmware.client_id] == firmware.session_id
        assert client.session.state in (State.LISTENING, State.SPEAKING)
        await client.close_conversation()
        await eventually(lambda: gateway.sessions[pibuddy_id].bridge is None)
        assert gateway.sessions[firmware.client_id].bridge is not None  # the other device talks on
        while (await firmware.next_message(of_type="tts"))["state"] != "stop":
            pass
        await speak(firmware)
        await asyncio.wait_for(firmware.next_message(of_type="stt"), 5)
    finally:
        await service.stop()
