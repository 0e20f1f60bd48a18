"""The devices PiBuddy knows: the Mi cloud list `pibuddy miot setup` saved, overlaid by config entries, with
the addresses discovery found.

The cloud list holds tokens, so it lives in the state dir (mode 600), not in config.yaml. A config entry
matches a saved device by did, else by name; its non-empty fields win. Config entries that match nothing
are devices of their own (LAN-only with ip + token, or cloud-only with a did).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from pibuddy.config import MiotDeviceConfig
from pibuddy.drivers.miot.codec import Token
from pibuddy.statedir import StateDir

_LOGGER = logging.getLogger(__name__)
DEVICES_FILE: Final = "miot-devices.json"
ADDRESSES_FILE: Final = "miot-addresses.json"


@dataclass(frozen=True, slots=True)
class Device:
    """One device as the driver addresses it. `online` is the last word on it (cloud list, discovery or a
    call), None when nobody has said."""

    name: str
    did: str | None = None
    aliases: tuple[str, ...] = ()
    room: str | None = None
    model: str | None = None
    urn: str | None = None
    ip: str | None = None
    token: Token | None = field(default=None, repr=False)
    online: bool | None = None
    parent_did: str | None = None
    home_id: str | None = None

    @property
    def lan_ready(self) -> bool:
        return self.ip is not None and self.token is not None

    @property
    def key(self) -> str:
        return self.did or self.name

    def spoken(self) -> str:
        """`the desk lamp in the study`-style name for sentences: `desk lamp (study)`."""
        return f"{self.name} ({self.room})" if self.room else self.name

    def to_record(self) -> dict[str, Any]:
        """The JSON record kept in the state dir (token as hex)."""
        return {"name": self.name, "did": self.did, "room": self.room, "model": self.model, "urn": self.urn,
                "ip": self.ip, "token": self.token.raw.hex() if self.token else None, "online": self.online,
                "parent_did": self.parent_did, "home_id": self.home_id}


def device_from_record(record: Any) -> Device | None:
    """A saved record as a `Device`; None (logged) for a record that is not one."""
    if not isinstance(record, dict) or not isinstance(record.get("name"), str) or not record["name"]:
        _LOGGER.warning("ignoring a saved MIoT device without a name: %r", record)
        return None
    token = None
    if isinstance(record.get("token"), str) and record["token"]:
        try:
            token = Token.from_hex(record["token"])
        except ValueError:
            _LOGGER.warning("ignoring the malformed saved token of %s", record["name"])

    def text(key: str) -> str | None:
        value = record.get(key)
        return str(value) if value not in (None, "") else None

    online = record.get("online")
    return Device(record["name"], text("did"), (), text("room"), text("model"), text("urn"), text("ip"), token,
                  online if isinstance(online, bool) else None, text("parent_did"), text("home_id"))


def device_from_config(entry: MiotDeviceConfig) -> Device:
    token = Token.from_hex(entry.token.get_secret_value()) if entry.token else None
    return Device(entry.name, entry.did, entry.aliases, entry.room, entry.model, entry.urn, entry.ip, token)


def merge(saved: Iterable[Device], configured: Iterable[Device]) -> list[Device]:
    """Saved devices with config entries laid over them (see the module docstring)."""
    merged = list(saved)
    for entry in configured:
        index = _match(merged, entry)
        if index is None:
            merged.append(entry)
            continue
        base = merged[index]
        merged[index] = replace(
            base, name=entry.name, aliases=entry.aliases or base.aliases, room=entry.room or base.room,
            model=entry.model or base.model, urn=entry.urn or base.urn, ip=entry.ip or base.ip,
            token=entry.token or base.token, did=entry.did or base.did)
    return merged


def _match(devices: Sequence[Device], entry: Device) -> int | None:
    for index, device in enumerate(devices):
        if entry.did is not None and device.did == entry.did:
            return index
    if entry.did is None:
        wanted = entry.name.casefold()
        for index, device in enumerate(devices):
            if device.name.casefold() == wanted:
                return index
    return None


class Inventory:
    """The merged device list, reloaded when setup or discovery rewrote the state files.

    Args:
        configured: the `miot.devices` config entries.
        state_dir: where the saved cloud list and discovered addresses live.
    """

    def __init__(self, configured: Sequence[MiotDeviceConfig], state_dir: Path) -> None:
        self._configured = [device_from_config(entry) for entry in configured]
        self._state = StateDir(state_dir)
        self._stamp: tuple[float, float] | None = None
        self._devices: list[Device] = []

    @property
    def path(self) -> Path:
        """The saved cloud list (mode 600: it holds tokens)."""
        return self._state.path / DEVICES_FILE

    @property
    def empty(self) -> bool:
        return not self.devices()

    def devices(self) -> list[Device]:
        stamp = (self._mtime(DEVICES_FILE), self._mtime(ADDRESSES_FILE))
        if stamp != self._stamp:
            self._stamp = stamp
            self._devices = self._load()
        return self._devices

    def save_cloud_devices(self, devices: Iterable[Device]) -> None:
        """Replace the saved cloud list (what `pibuddy miot setup` fetched)."""
        self._state.write_json(DEVICES_FILE, {"devices": [d.to_record() for d in devices]})

    def save_addresses(self, addresses: dict[str, str]) -> None:
        """Remember discovered LAN addresses by did (merged into what was known)."""
        known = self._addresses()
        if all(known.get(did) == ip for did, ip in addresses.items()):
            return
        self._state.write_json(ADDRESSES_FILE, {"addresses": {**known, **addresses}})

    def _load(self) -> list[Device]:
        data = self._state.read_json(DEVICES_FILE) or {}
        raw = data.get("devices")
        records: list[Any] = raw if isinstance(raw, list) else []
        saved = [d for d in (device_from_record(r) for r in records) if d is not None]
        addresses = self._addresses()
        return [replace(d, ip=addresses.get(d.did, d.ip)) if d.did else d for d in merge(saved, self._configured)]

    def _addresses(self) -> dict[str, str]:
        data = (self._state.read_json(ADDRESSES_FILE) or {}).get("addresses")
        if not isinstance(data, dict):
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, str)}

    def _mtime(self, name: str) -> float:
        try:
            return (self._state.path / name).stat().st_mtime
        except OSError:
            return 0.0
