"""Authenticated MQTT connections from one source address are capped (a gap found after finding 4).

Seen in the audit: only handshakes were capped per address, so with `admission: open` one host could fill
`max_connections` with devices that completed CONNECT (the OTA signs credentials for any MAC), and the next
legitimate device got CONNACK 3.
"""

from __future__ import annotations

import asyncio

import pytest

from pibuddy.config import GatewayConfig
from pibuddy.gateway.mqtt_codec import ConnackCode
from tests.gateway.attacks.helpers import ATTACKER, bounded_log, close_all, closed_by_server, mqtt_connect_from, signed
from tests.gateway.conftest import GatewayFactory, connect_device, gateway_url
from tests.gateway.test_bad_input import still_serving
from tests.peers.xiaozhi_server import XiaozhiTestServer

CAP = GatewayConfig().max_connections_per_address
"""The default: the attack is replayed against what users run."""
OVER = 12
"""Attempts beyond the cap."""


async def test_one_address_cannot_fill_max_connections(
    start_gateway: GatewayFactory, upstream: XiaozhiTestServer, caplog: pytest.LogCaptureFixture,
) -> None:
    # max_connections just above the cap: before the cap, the attacker alone filled it.
    gateway = await start_gateway([gateway_url(upstream)], admission="open", max_connections=CAP + 4)
    assert gateway.mqtt is not None
    port = gateway.mqtt.port
    device = await connect_device(gateway, 1)  # a legitimate device, on 127.0.0.1, connected first
    held: list[asyncio.StreamWriter] = []
    try:
        with bounded_log(caplog):
            codes: list[int] = []
            for i in range(CAP + OVER):
                mqtt = signed(f"02:00:00:00:02:{i:02x}")
                code, reader, writer = await mqtt_connect_from(port, ATTACKER, mqtt["client_id"], mqtt["username"],
                                                               mqtt["password"])
                codes.append(code)
                if code == ConnackCode.ACCEPTED:
                    held.append(writer)
                else:
                    assert await closed_by_server(reader, 2.0)
                    close_all([writer])
            assert codes == [ConnackCode.ACCEPTED] * CAP + [ConnackCode.SERVER_UNAVAILABLE] * OVER
            # A device at the cap reconnecting from its own address replaces itself: not a new connection.
            again = signed("02:00:00:00:02:00")
            code, _, writer = await mqtt_connect_from(port, ATTACKER, again["client_id"], again["username"],
                                                      again["password"])
            held.append(writer)
            assert code == ConnackCode.ACCEPTED
            # Other addresses are unaffected: the connected device and a new one.
            await still_serving(device, upstream)
            newcomer = await connect_device(gateway, 2)
            await still_serving(newcomer, upstream)
            await newcomer.close()
        refusal_lines = [r for r in caplog.records if "devices from one address" in r.getMessage()]
        assert len(refusal_lines) == 1, "one line per interval, not one per refused connection"
        assert gateway.mqtt.refused.reasons[f"over the cap of {CAP} devices from one address"] == OVER
        assert sum(c.peer_ip == ATTACKER for c in gateway.mqtt.connections.values()) == CAP
    finally:
        close_all(held)
        await device.close()
