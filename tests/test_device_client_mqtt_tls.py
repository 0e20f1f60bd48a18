"""MQTT over TLS, as the official server offers it (port 8883): a real mosquitto with a TLS listener on a
loopback address of its own (so 8883 is free), a certificate from a throwaway CA, verified by PiBuddy."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pibuddy.device_client.service import DeviceClientService
from pibuddy.errors import ConnectionLost
from pibuddy.events import EventBus
from pibuddy.wiring.tools import build_registry
from tests.device_client_helpers import ScriptedAudio, device_config
from tests.peers.mosquitto import SKIP_REASON, MosquittoBroker, TlsListener, mosquitto_binary
from tests.peers.tls_certs import ServerCertificate, make_server_certificate
from tests.peers.xiaozhi_server import MqttBrokerInfo, XiaozhiTestServer

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason=SKIP_REASON)
_STEP = 5.0
_TLS_IP = f"127.88.{random.randrange(1, 255)}.{random.randrange(1, 255)}"


@pytest.fixture
def certificate(tmp_path: Path) -> ServerCertificate:
    return make_server_certificate(tmp_path, _TLS_IP)


@pytest.fixture
async def server(tmp_path: Path, certificate: ServerCertificate) -> AsyncIterator[XiaozhiTestServer]:
    """The test server uses the broker's plain listener; devices are sent to the TLS one on 8883."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    tls = TlsListener(_TLS_IP, 8883, certificate.cert, certificate.key)
    async with MosquittoBroker(workdir, tls=tls) as broker:
        mqtt = MqttBrokerInfo(broker.host, broker.port, device_endpoint=f"{_TLS_IP}:8883")
        async with XiaozhiTestServer(mqtt=mqtt, tts_frames=4, tts_frame_interval=0.01, utterance_frames=3) as srv:
            await asyncio.wait_for(srv.mqtt_ready.wait(), _STEP)
            yield srv


async def _service(tmp_path: Path, server: XiaozhiTestServer) -> DeviceClientService:
    config = device_config(tmp_path, server.ota_url, transport="mqtt")
    service = DeviceClientService(config, bus=EventBus(), registry=build_registry(config), audio=ScriptedAudio())
    await service.start()
    return service


async def test_a_conversation_over_mqtt_with_tls_on_port_8883(
        server: XiaozhiTestServer, certificate: ServerCertificate, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.ca))  # trust the test CA, as a system CA would be
    with caplog.at_level(logging.INFO, logger="pibuddy.device_client"):
        service = await _service(tmp_path, server)
        try:
            assert service.client is not None
            assert await service.client.wake("你好小智")
            for milestone in (server.hello_received, server.listen_start, server.tts_done):
                await asyncio.wait_for(milestone.wait(), _STEP)
        finally:
            await service.stop()
    assert f"MQTT connected to {_TLS_IP}:8883 (TLS)" in caplog.messages
    assert server.bad_input == []


async def test_an_untrusted_broker_certificate_is_refused_with_a_clear_reason(
        server: XiaozhiTestServer, tmp_path: Path) -> None:
    config = device_config(tmp_path, server.ota_url, transport="mqtt")
    service = DeviceClientService(config, bus=EventBus(), registry=build_registry(config), audio=ScriptedAudio())
    try:  # the system CAs do not know the test CA; the supervisor logs this and retries with backoff
        with pytest.raises(ConnectionLost, match=rf"MQTT connection to {_TLS_IP}:8883 failed: .*certificate verify"):
            await service.start()
    finally:
        await service.stop()
    assert not server.hello_received.is_set()
