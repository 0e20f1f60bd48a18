"""The `lan` transport: MIoT methods over miIO (docs/drivers.md §2.3), one `MiioClient` per device address.

Reads go in batches of at most 15 properties, as python-miio does, because some devices fail on more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from pibuddy.drivers.miot.inventory import Device
from pibuddy.drivers.miot.lan import MiioClient
from pibuddy.drivers.miot.transport import (
    ActionResult,
    MiotTransport,
    PropertyResult,
    TransportKind,
    action_result,
    property_results,
)

MAX_BATCH: Final = 15


class LanTransport(MiotTransport):
    """Args:
    timeout: seconds per try for one answer.
    port: the devices' UDP port (54321; tests use others).
    """

    kind = TransportKind.LAN

    def __init__(self, *, timeout: float = 1.5, port: int | None = None) -> None:
        self._timeout = timeout
        self._port = port
        self._clients: dict[tuple[str, bytes], MiioClient] = {}

    def can_reach(self, device: Device) -> bool:
        return device.lan_ready

    async def info(self, device: Device) -> dict[str, Any]:
        """`miIO.info`: model, firmware, MAC, network."""
        result = await self._client(device).call("miIO.info")
        return result if isinstance(result, dict) else {"result": result}

    async def get_properties(self, device: Device, items: Sequence[tuple[int, int]]) -> list[PropertyResult]:
        client = self._client(device)
        results: list[PropertyResult] = []
        for start in range(0, len(items), MAX_BATCH):
            batch = items[start:start + MAX_BATCH]
            params = [{"did": _did(device, client), "siid": s, "piid": p} for s, p in batch]
            raw = await client.call("get_properties", params)
            results += property_results(raw, batch, name=client.name)
        return results

    async def set_properties(self, device: Device, items: Sequence[tuple[int, int, Any]]) -> list[PropertyResult]:
        client = self._client(device)
        results: list[PropertyResult] = []
        for start in range(0, len(items), MAX_BATCH):
            batch = items[start:start + MAX_BATCH]
            params = [{"did": _did(device, client), "siid": s, "piid": p, "value": v} for s, p, v in batch]
            raw = await client.call("set_properties", params)
            results += property_results(raw, [(s, p) for s, p, _ in batch], name=client.name)
        return results

    async def action(self, device: Device, siid: int, aiid: int, ins: Sequence[Any]) -> ActionResult:
        client = self._client(device)
        raw = await client.call("action", {"did": _did(device, client), "siid": siid, "aiid": aiid, "in": list(ins)})
        return action_result(raw, name=client.name)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.close() for c in clients))

    def _client(self, device: Device) -> MiioClient:
        assert device.ip is not None, "can_reach() was not checked"
        assert device.token is not None, "can_reach() was not checked"
        key = (device.ip, device.token.raw)
        client = self._clients.get(key)
        if client is None:
            extra: dict[str, Any] = {"port": self._port} if self._port is not None else {}
            client = MiioClient(device.ip, device.token, timeout=self._timeout, name=device.name, **extra)
            self._clients[key] = client
        return client


def _did(device: Device, client: MiioClient) -> str:
    """The did echoed back: the cloud did if known, else the miIO did from the handshake (devices only echo)."""
    return device.did or str(client.did or 0)
