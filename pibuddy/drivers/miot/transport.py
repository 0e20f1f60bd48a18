"""The two ways to reach a device, behind one interface: `lan` (miIO with the device token) and `cloud`
(the Mi cloud's miotspec API). Both speak MIoT's JSON shapes (docs/drivers.md §2.3), so results look the same.

`get_transport(kind, ...)` imports the backend only when asked for, like bleak's backend factory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from pibuddy.drivers.miot.errors import BadReply

if TYPE_CHECKING:
    from pibuddy.drivers.miot.cloud import MiCloud
    from pibuddy.drivers.miot.inventory import Device


class TransportKind(StrEnum):
    LAN = "lan"
    CLOUD = "cloud"


@dataclass(frozen=True, slots=True)
class PropertyResult:
    """One item of a get/set answer; `code` is MIoT's per-item code (None when the device omitted it)."""

    siid: int
    piid: int
    code: int | None
    value: Any = None


@dataclass(frozen=True, slots=True)
class ActionResult:
    code: int | None
    out: tuple[Any, ...] = ()


class MiotTransport(ABC):
    """A path to devices. Methods raise `DriverError` leaves whose text names the device."""

    kind: ClassVar[TransportKind]

    @abstractmethod
    def can_reach(self, device: Device) -> bool:
        """Whether this path applies to `device` at all (a token and address; a did and a login)."""

    @abstractmethod
    async def get_properties(self, device: Device, items: Sequence[tuple[int, int]]) -> list[PropertyResult]:
        """Read (siid, piid) pairs, in order."""

    @abstractmethod
    async def set_properties(self, device: Device, items: Sequence[tuple[int, int, Any]]) -> list[PropertyResult]:
        """Write (siid, piid, value) triples, in order."""

    @abstractmethod
    async def action(self, device: Device, siid: int, aiid: int, ins: Sequence[Any]) -> ActionResult:
        """Run an action with its positional inputs."""

    @abstractmethod
    async def close(self) -> None:
        """Release sockets and connections."""


def get_transport(kind: TransportKind, *, lan_timeout: float = 1.5, lan_port: int | None = None,
                  cloud: MiCloud | None = None) -> MiotTransport:
    """The transport of `kind`; the cloud one needs a `MiCloud` client."""
    match kind:
        case TransportKind.LAN:
            from pibuddy.drivers.miot.lan_transport import LanTransport  # noqa: PLC0415 - lazy backend

            return LanTransport(timeout=lan_timeout, port=lan_port)
        case TransportKind.CLOUD:
            from pibuddy.drivers.miot.cloud_transport import CloudTransport  # noqa: PLC0415 - lazy backend

            if cloud is None:
                raise ValueError("the cloud transport needs a MiCloud client")
            return CloudTransport(cloud)
    raise ValueError(f"unknown MIoT transport {kind!r}")


def property_results(raw: Any, expected: Sequence[tuple[int, int]], *, name: str) -> list[PropertyResult]:
    """Match a get/set answer (a list of `{siid, piid, code, value}`) to the requested pairs, in order."""
    if not isinstance(raw, list):
        raise BadReply(f"{name} answered with {type(raw).__name__} instead of a list of properties")
    by_pair: dict[tuple[int, int], PropertyResult] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("siid"), int) or not isinstance(item.get("piid"), int):
            raise BadReply(f"{name} answered with a malformed property item")
        code = item.get("code")
        by_pair[(item["siid"], item["piid"])] = PropertyResult(
            item["siid"], item["piid"], code if isinstance(code, int) else None, item.get("value"))
    missing = [pair for pair in expected if pair not in by_pair]
    if missing:
        raise BadReply(f"{name} did not answer for {', '.join(f'{s}.{p}' for s, p in missing)}")
    return [by_pair[pair] for pair in expected]


def action_result(raw: Any, *, name: str) -> ActionResult:
    if not isinstance(raw, dict):
        raise BadReply(f"{name} answered the action with {type(raw).__name__}")
    code, out = raw.get("code"), raw.get("out", [])
    return ActionResult(code if isinstance(code, int) else None, tuple(out) if isinstance(out, list) else ())
