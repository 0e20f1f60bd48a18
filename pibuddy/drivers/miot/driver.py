"""The MIoT driver: which devices exist, what each can do (its spec), and how to reach it.

Routing: the LAN first when the device has a token and an address and answers, the Mi cloud otherwise (or
when the LAN fails to reach it). A device whose LAN try failed goes straight to the cloud for a while
(`reachability`), so a silent device does not cost every call the LAN timeout; with no other path the LAN
is tried anyway. A device that answered and refused is not asked again by the other path. When every
path fails, the error names each path and what to do ("token rejected: run `pibuddy miot setup`").
Per-item MIoT result codes become short spoken errors (`errors.error_for_code`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from pibuddy.config import MiotConfig
from pibuddy.drivers.miot.cloud import MiCloud, Scene
from pibuddy.drivers.miot.codec import PORT
from pibuddy.drivers.miot.controls import Control, Controls
from pibuddy.drivers.miot.discovery import discover
from pibuddy.drivers.miot.errors import BadReply, SessionExpired, code_ok, error_for_code
from pibuddy.drivers.miot.inventory import Device, Inventory
from pibuddy.drivers.miot.reachability import LanReachability
from pibuddy.drivers.miot.spec import DeviceSpec
from pibuddy.drivers.miot.spec_store import SpecStore
from pibuddy.drivers.miot.transport import MiotTransport, PropertyResult, TransportKind, get_transport
from pibuddy.drivers.names import Named, resolve
from pibuddy.errors import (
    AuthFailed,
    DeviceUnreachable,
    DriverError,
    InvalidArguments,
    NotFound,
    NotSetUp,
    Party,
    TokenInvalid,
)

_LOGGER = logging.getLogger(__name__)
R = TypeVar("R")
# Errors after which the other path is worth a try: the device was not reached, or not understood.
_FALL_THROUGH: Final = (DeviceUnreachable, TokenInvalid, BadReply, AuthFailed)
_PATH_NAMES: Final = {TransportKind.LAN: "on the LAN", TransportKind.CLOUD: "through the Mi cloud"}
SPECS_DIR: Final = "miot-specs"


class MiotDriver:
    """What the MIoT tools and the service work with.

    Args:
        config: the `miot` config section.
        state_dir: PiBuddy's state dir (saved devices, cloud session, spec cache).
        backend: use only this transport instead of LAN-first routing (`pibuddy miot call --via`).
        transports: the transports to route over, in order (tests pass ones aimed at local peers).
        cloud: the Mi cloud client (tests aim it at a local fake).
        specs: the spec store (tests aim it at a local spec server).
        port: the devices' UDP port for the LAN and discovery (54321; tests use others).
        clock: monotonic seconds, for when a silent device's LAN is tried again.
    """

    def __init__(self, config: MiotConfig, state_dir: Path, *, backend: TransportKind | None = None,
                 transports: Sequence[MiotTransport] | None = None, cloud: MiCloud | None = None,
                 specs: SpecStore | None = None, port: int = PORT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.inventory = Inventory(config.devices, state_dir)
        password = config.cloud_password.get_secret_value() if config.cloud_password else None
        self.cloud = cloud or MiCloud(state_dir=state_dir, region=config.cloud_region, username=config.cloud_username,
                                      password=password, timeout=config.cloud_timeout)
        self.specs = specs or SpecStore(state_dir / SPECS_DIR, fetch=config.spec_fetch)
        if transports is None:
            kinds = [backend] if backend else [TransportKind.LAN, TransportKind.CLOUD]
            transports = [get_transport(k, lan_timeout=config.lan_timeout, lan_port=port, cloud=self.cloud)
                          for k in kinds]
        elif backend is not None:
            transports = [t for t in transports if t.kind == backend]
        self._transports = list(transports)
        self._online: dict[str, bool] = {}
        self._lan = LanReachability()
        self._port = port
        self._clock = clock

    @property
    def configured(self) -> bool:
        """Whether there is anything to drive: saved or configured devices, or a Mi account."""
        return not self.inventory.empty or self.cloud.can_log_in

    def devices(self) -> list[Device]:
        return self.inventory.devices()

    def online(self, device: Device) -> bool | None:
        """The last word on whether `device` answers: a call, discovery, or the cloud list."""
        return self._online.get(device.key, device.online)

    def resolve(self, phrase: str) -> list[Device]:
        """The devices a spoken phrase names (several for "living room lights")."""
        pool = [Named(d, (d.name, *d.aliases), d.room, self.kind(d)) for d in self.devices()]
        if not pool:
            raise NotFound("No Mi Home devices are set up: run `pibuddy miot setup` or add miot.devices")
        return resolve(phrase, pool, what="Mi Home devices")

    def kind(self, device: Device) -> str | None:
        """`light`, `fan` ...: from the cached spec, else the model's middle part (`yeelink.light.x`)."""
        spec = self.specs.cached(device.urn) if device.urn else None
        if spec is not None:
            return spec.kind
        parts = (device.model or "").split(".")
        return parts[1] if len(parts) == 3 else None

    def cached_controls(self, device: Device) -> Controls | None:
        spec = self.specs.cached(device.urn) if device.urn else None
        return Controls(spec) if spec is not None else None

    async def spec(self, device: Device) -> DeviceSpec:
        urn = device.urn
        if urn is None and device.model:
            urn = await self.specs.urn_for_model(device.model)
        if urn is None:
            raise NotFound(f"PiBuddy does not know what {device.name} can do: add its model or urn to miot.devices")
        return await self.specs.get(urn)

    async def controls(self, device: Device) -> Controls:
        return Controls(await self.spec(device))

    async def read(self, device: Device, controls: Sequence[Control]) -> list[tuple[Control, Any]]:
        """Values of readable property controls; a per-item failure shows as its DriverError in place."""
        readable = [c for c in controls if c.prop is not None]
        pairs = [(c.prop.siid, c.prop.piid) for c in readable if c.prop is not None]
        results = await self._route(device, lambda t: t.get_properties(device, pairs))
        values: list[tuple[Control, Any]] = []
        for control, result in zip(readable, results, strict=True):
            ok = code_ok(result.code)
            values.append((control, result.value if ok else error_for_code(result.code or 0, name=device.name,
                                                                           what=control.name)))
        return values

    async def write(self, device: Device, changes: Sequence[tuple[Control, Any]]) -> None:
        """Write property controls (values already checked by `Property.to_wire`)."""
        items = [(c.prop.siid, c.prop.piid, v) for c, v in changes if c.prop is not None]
        results = await self._route(device, lambda t: t.set_properties(device, items))
        _raise_item_errors(device, [c for c, _ in changes], results)

    async def act(self, device: Device, control: Control, ins: Sequence[Any]) -> tuple[Any, ...]:
        action = control.action
        if action is None:
            raise InvalidArguments(f"{control.name} of {device.name} is not an action")
        if len(ins) != len(action.ins):
            raise InvalidArguments(f"{control.name} of {device.name} takes {len(action.ins)} inputs, not {len(ins)}")
        result = await self._route(device, lambda t: t.action(device, action.siid, action.aiid, ins))
        if not code_ok(result.code):
            raise error_for_code(result.code or 0, name=device.name, what=control.name)
        return result.out

    async def scenes(self) -> list[Scene]:
        if not self.cloud.can_log_in:
            raise NotSetUp("Scenes need a Mi account: run `pibuddy miot setup`", party=Party.MI_CLOUD)
        homes = await self.cloud.homes()
        return await self.cloud.scenes([h.home_id for h in homes])

    async def run_scene(self, phrase: str) -> Scene:
        scenes = await self.scenes()
        if not scenes:
            raise NotFound("The Mi account has no manual scenes")
        scene = resolve(phrase, [Named(s, (s.name,)) for s in scenes], what="Mi Home scenes")[0]
        await self.cloud.run_scene(scene)
        return scene

    async def discover(self) -> int:
        """One hello round to the configured addresses; remembers who answered where. Returns how many did."""
        found = await discover(self.config.discovery_addresses, port=self._port, duration=self.config.lan_timeout)
        by_did = {str(f.did): f for f in found}
        addresses = {}
        for device in self.devices():
            hit = by_did.get(device.did or "")
            if hit is not None:
                addresses[device.key] = hit.ip
                self._online[device.key] = True
                self._lan.answered_hello(device.key)
        if addresses:
            self.inventory.save_addresses(addresses)
        return len(found)

    async def close(self) -> None:
        await asyncio.gather(*(t.close() for t in self._transports))

    async def _route(self, device: Device, call: Callable[[MiotTransport], Awaitable[R]]) -> R:
        failures: list[tuple[TransportKind, DriverError]] = []
        for transport in self._transports:
            if not transport.can_reach(device):
                continue
            remembered = self._skipped_lan(transport, device)
            if remembered is not None:
                _LOGGER.debug("%s: skipping the LAN, it failed lately: %s", device.name, remembered.message)
                failures.append((transport.kind, remembered))
                continue
            try:
                result = await call(transport)
            except _FALL_THROUGH as exc:
                self._note_failure(transport.kind, device, exc)
                failures.append((transport.kind, exc))
                continue
            if transport.kind is TransportKind.LAN:
                self._lan.answered(device.key)
            self._online[device.key] = True
            return result
        if not failures:
            raise DeviceUnreachable(f"{device.name} cannot be reached: it needs a token and IP address for the LAN, "
                                    "or a Mi account login (run `pibuddy miot setup`)", device=device.name)
        if all(isinstance(e, DeviceUnreachable) for _, e in failures):
            self._online[device.key] = False
        raise _combined(failures)

    def _skipped_lan(self, transport: MiotTransport, device: Device) -> DriverError | None:
        """The LAN error remembered for `device` while its LAN is not due again and another path can reach it."""
        if transport.kind is not TransportKind.LAN:
            return None
        if not any(t.can_reach(device) for t in self._transports if t is not transport):
            return None
        return self._lan.skipped(device.key, self._clock())

    def _note_failure(self, kind: TransportKind, device: Device, error: DriverError) -> None:
        if kind is not TransportKind.LAN:
            _LOGGER.info("%s not reached %s: %s", device.name, _PATH_NAMES[kind], error.message)
            return
        delay = self._lan.failed(device.key, error, self._clock())
        _LOGGER.info("%s not reached on the LAN: %s; the LAN is tried again in %.0f s", device.name, error.message,
                     delay)


def _combined(failures: list[tuple[TransportKind, DriverError]]) -> DriverError:
    """One error for every path that failed; its class is the most actionable one (token, login, offline)."""
    if len(failures) == 1:
        return failures[0][1]
    message = "; ".join(f"{_PATH_NAMES[kind]}: {error.message}" for kind, error in failures)
    for kind_of_error in (TokenInvalid, SessionExpired, AuthFailed, DeviceUnreachable):
        first = next((e for _, e in failures if isinstance(e, kind_of_error)), None)
        if first is not None:  # who failed, as that error says (the device on the LAN, the Mi cloud ...)
            return kind_of_error(message[0].upper() + message[1:], party=first.party, device=first.device)
    return failures[-1][1]


def _raise_item_errors(device: Device, controls: Sequence[Control], results: Sequence[PropertyResult]) -> None:
    for control, result in zip(controls, results, strict=True):
        if not code_ok(result.code):
            raise error_for_code(result.code or 0, name=device.name, what=control.name)
