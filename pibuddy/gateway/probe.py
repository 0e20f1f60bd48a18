"""`pibuddy check`'s gateway row: can the gateway have its ports, or does a running PiBuddy hold them already?"""

from __future__ import annotations

import errno
import socket
from typing import Final

import httpx

from pibuddy.config import GatewayConfig
from pibuddy.gateway.ota_server import OTA_PATH
from pibuddy.probe import ProbeResult

_OWN_OTA_ANSWER: Final = "PiBuddy local OTA"
_ASK_SECONDS: Final = 2.0


async def probe_gateway(config: GatewayConfig) -> ProbeResult:
    ports = _ports(config)
    busy = [f"{port}/{kind} ({role})" for role, kind, port in ports if not _free(config.host, kind, port)]
    listing = ", ".join(f"{port}/{kind}" for _, kind, port in ports)
    if not busy:
        return ProbeResult(True, f"ports free on {config.host}: {listing}")
    if await _pibuddy_serves(config):
        return ProbeResult(True, f"a running PiBuddy gateway holds {listing}")
    return ProbeResult(False, f"in use by another program: {', '.join(busy)}; stop it (another MQTT broker?), "
                              "move the gateway.*_port keys, or set gateway.enabled: false")


def _ports(config: GatewayConfig) -> list[tuple[str, str, int]]:
    return [("MQTT", "tcp", config.mqtt_port), ("UDP audio", "udp", config.udp_port),
            ("OTA", "tcp", config.ota_port), ("management API", "tcp", config.api_port)]


def _free(host: str, kind: str, port: int) -> bool:
    """Whether the gateway could bind there now (bound and released at once, as the servers bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    try:
        if kind == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio and aiohttp bind
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    finally:
        sock.close()
    return True


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
