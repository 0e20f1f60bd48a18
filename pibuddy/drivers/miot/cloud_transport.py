"""The `cloud` transport: MIoT get/set/action through the Mi cloud's `miotspec` API (docs/drivers.md §1.4), for
devices the LAN cannot reach, such as BLE/Zigbee/mesh sub-devices behind a hub.

An answer whose every item says "device offline" is the path failing, not the device refusing: it is raised
as `DeviceUnreachable`, so routing can report it beside the LAN's reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from pibuddy.drivers.miot.cloud import MiCloud
from pibuddy.drivers.miot.inventory import Device
from pibuddy.drivers.miot.transport import (
    ActionResult,
    MiotTransport,
    PropertyResult,
    TransportKind,
    action_result,
    property_results,
)
from pibuddy.errors import DeviceUnreachable

_OFFLINE: Final = -704042011


class CloudTransport(MiotTransport):
    kind = TransportKind.CLOUD

    def __init__(self, cloud: MiCloud) -> None:
        self._cloud = cloud

    def can_reach(self, device: Device) -> bool:
        return device.did is not None and self._cloud.can_log_in

    async def get_properties(self, device: Device, items: Sequence[tuple[int, int]]) -> list[PropertyResult]:
        raw = await self._cloud.call("/miotspec/prop/get", {
            "datasource": 1, "params": [{"did": device.did, "siid": s, "piid": p} for s, p in items]})
        return _online(device, property_results(raw, items, name=device.name))

    async def set_properties(self, device: Device, items: Sequence[tuple[int, int, Any]]) -> list[PropertyResult]:
        raw = await self._cloud.call("/miotspec/prop/set", {
            "params": [{"did": device.did, "siid": s, "piid": p, "value": v} for s, p, v in items]})
        return _online(device, property_results(raw, [(s, p) for s, p, _ in items], name=device.name))

    async def action(self, device: Device, siid: int, aiid: int, ins: Sequence[Any]) -> ActionResult:
        raw = await self._cloud.call("/miotspec/action", {
            "params": {"did": device.did, "siid": siid, "aiid": aiid, "in": list(ins)}})
        result = action_result(raw, name=device.name)
        _online(device, [result])
        return result

    async def close(self) -> None:
        await self._cloud.close()


def _online(device: Device, results: list[Any]) -> list[Any]:
    if results and all(r.code == _OFFLINE for r in results):
        raise DeviceUnreachable(f"{device.name} is offline", device=device.name)
    return results
