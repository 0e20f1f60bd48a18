"""`pibuddy check`'s gateway row, against real sockets on 127.0.0.1."""

from __future__ import annotations

import socket

from pibuddy.config import Config
from pibuddy.gateway.probe import probe_gateway
from pibuddy.gateway.service import GatewayService
from pibuddy.wiring import check
from tests.gateway.conftest import gateway_config


def test_pibuddy_check_has_a_gateway_row_when_the_gateway_is_on() -> None:
    row = next(p for p in check.PROBES if p.name == "gateway")
    assert row.applies(Config())  # on by default
    assert not row.applies(Config.model_validate({"gateway": {"enabled": False}}))


async def test_free_ports_pass() -> None:
    config = gateway_config([])
    result = await probe_gateway(config)
    assert result.ok, result.detail
    assert f"{config.mqtt_port}/tcp" in result.detail
    assert f"{config.udp_port}/udp" in result.detail


async def test_a_port_held_by_another_program_fails_naming_it_and_the_fix() -> None:
    config = gateway_config([])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:  # e.g. another gateway's UDP relay
        other.bind(("127.0.0.1", config.udp_port))
        result = await probe_gateway(config)
    assert not result.ok
    assert f"{config.udp_port}/udp (UDP audio, held by PiBuddy itself)" in result.detail  # this process
    assert f"{config.mqtt_port}/tcp" not in result.detail, "only the busy port is named"
    assert "gateway.enabled: false" in result.detail


async def test_ports_held_by_a_running_pibuddy_gateway_pass(gateway: GatewayService) -> None:
    result = await probe_gateway(gateway.config)
    assert result.ok, result.detail
    assert result.detail.startswith("a running PiBuddy gateway holds")
