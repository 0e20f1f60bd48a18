"""`pibuddy check`'s gateway row: can the gateway have its ports, or does a running PiBuddy hold them already?"""

from __future__ import annotations

from typing import Final

import httpx

from pibuddy.config import GatewayConfig
from pibuddy.gateway.ota_server import OTA_PATH
from pibuddy.ports import Kind, port_free, port_holder
from pibuddy.probe import ProbeResult

_OWN_OTA_ANSWER: Final = "PiBuddy local OTA"
_ASK_SECONDS: Final = 2.0


async def probe_gateway(config: GatewayConfig) -> ProbeResult:
    ports = _ports(config)
    busy = [f"{port}/{kind} ({role}{_held_by(kind, port)})" for role, kind, port in ports
            if not port_free(config.host, kind, port)]
    listing = ", ".join(f"{port}/{kind}" for _, kind, port in ports)
    if not busy:
        return ProbeResult(True, f"ports free on {config.host}: {listing}")
    if await _pibuddy_serves(config):
        return ProbeResult(True, f"a running PiBuddy gateway holds {listing}")
    return ProbeResult(False, f"in use by another program: {', '.join(busy)}; stop it (another MQTT broker?), "
                              "move the gateway.*_port keys, or set gateway.enabled: false")


def _held_by(kind: Kind, port: int) -> str:
    holder = port_holder(port, kind)
    return f", held by {holder}" if holder else ""


def _ports(config: GatewayConfig) -> list[tuple[str, Kind, int]]:
    return [("MQTT", "tcp", config.mqtt_port), ("UDP audio", "udp", config.udp_port),
            ("OTA", "tcp", config.ota_port), ("management API", "tcp", config.api_port)]


async def _pibuddy_serves(config: GatewayConfig) -> bool:
    """Whether PiBuddy's own local OTA answers on the OTA port (the service is running)."""
    host = "127.0.0.1" if config.host in ("", "0.0.0.0") else "::1" if config.host == "::" else config.host
    url = f"http://{host if ':' not in host else f'[{host}]'}:{config.ota_port}{OTA_PATH}"
    try:
        async with httpx.AsyncClient(timeout=_ASK_SECONDS) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return False
    return response.text.startswith(_OWN_OTA_ANSWER)
