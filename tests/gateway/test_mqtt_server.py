"""The MQTT endpoint's own rules: keep-alive, takeover, max_connections, topics, SUBSCRIBE and PINGREQ."""

from __future__ import annotations

import asyncio
import time

import pytest

from pibuddy.gateway.service import GatewayService
from tests.gateway.conftest import DeviceFactory, GatewayFactory, connect_device, gateway_url
from tests.peers.firmware_device import PINGREQ, FirmwareDevice, subscribe_packet
from tests.peers.xiaozhi_server import XiaozhiTestServer
from tests.polling import eventually


async def test_replies_go_to_the_p2p_topic_without_subscribing(device_factory: DeviceFactory) -> None:
    device = await device_factory(0x2A)
    device.publish({"session_id": "", "type": "listen", "state": "stop"})
    topic, message = await asyncio.wait_for(device.messages.get(), 2)
    assert topic == "devices/p2p/aa_bb_cc_dd_ee_2a"
    assert message == {"type": "goodbye", "session_id": ""}


async def test_subscribe_and_ping_are_answered(device_factory: DeviceFactory) -> None:
    device = await device_factory(1)
    device.send_raw(subscribe_packet("devices/p2p/aa_bb_cc_dd_ee_01", packet_id=5) + PINGREQ)
    device.publish({"type": "hello", "version": 3, "transport": "udp"})  # still served afterwards
    assert (await device.next_message(of_type="hello"))["transport"] == "udp"
    assert device.acks == [(9, b"\x00\x05\x00"), (13, b"")]  # SUBACK granting QoS 0, PINGRESP
    assert not device.closed.is_set()


async def test_keepalive_kills_a_silent_client_after_one_and_a_half_times(
    gateway: GatewayService, device_factory: DeviceFactory
) -> None:
    quiet = await device_factory(1, connect=False)
    quiet.keepalive = 1
    pinging = await device_factory(2, connect=False)
    pinging.keepalive = 1
    started = time.monotonic()
    assert await quiet.connect() == 0
    assert await pinging.connect() == 0
    for _ in range(5):
        await asyncio.sleep(0.5)
        pinging.send_raw(PINGREQ)
    await asyncio.wait_for(quiet.closed.wait(), 1)
    assert 1.4 < time.monotonic() - started < 3.0
    assert not pinging.closed.is_set()


async def test_same_client_id_takes_over_the_older_connection(
    gateway: GatewayService, upstream: XiaozhiTestServer
) -> None:
    old = await connect_device(gateway, 1)
    await old.hello()
    new = await connect_device(gateway, 1)
    await asyncio.wait_for(old.closed.wait(), 2)
    await asyncio.wait_for(upstream.disconnected.wait(), 2)  # the old session's WebSocket went too
    assert gateway.sessions[new.client_id].connection is not None
    await new.hello()
    await eventually(lambda: gateway.sessions[new.client_id].bridge is not None)
    await old.close()
    await new.close()


async def test_max_connections_refuses_with_rc_3(start_gateway: GatewayFactory, upstream: XiaozhiTestServer) -> None:
    gateway = await start_gateway([gateway_url(upstream)], max_connections=2)
    first, second = await connect_device(gateway, 1), await connect_device(gateway, 2)
    third = await connect_device(gateway, 3, connect=False)
    assert await third.connect() == 3
    again = await connect_device(gateway, 2, connect=False)
    assert await again.connect() == 0  # a takeover is not a new connection
    for device in (first, second, third, again):
        await device.close()


@pytest.mark.parametrize("allowed", [True, False])
async def test_two_part_client_ids_follow_config(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer, allowed: bool
) -> None:
    gateway = await start_gateway([gateway_url(upstream)], allow_two_part_client_ids=allowed)
    assert gateway.mqtt is not None
    legacy = FirmwareDevice("127.0.0.1", gateway.mqtt.port, client_id="GID_old@@@aa_bb_cc_dd_ee_07",
                            username=None, password=None)
    assert await legacy.connect() == (0 if allowed else 5)
    if allowed:
        await legacy.hello()
        headers = {k.lower(): v for k, v in upstream.ws_requests[-1].headers.items()}
        assert "client-id" not in headers  # no uuid part to send (§8.1)
        assert headers["device-id"] == "aa:bb:cc:dd:ee:07"
    await legacy.close()
