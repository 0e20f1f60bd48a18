"""This device's identity towards xiaozhi servers, generated once and kept in `identity.json` (mode 600).

What the ESP32 keeps in eFuse and NVS, a Pi keeps in its state dir:
- `device_id`: the MAC of the primary interface, pinned at first start so that a change of default
  route (Ethernet plugged in next to Wi-Fi) does not turn the buddy into a new, unbound device. A Pi
  without any usable MAC gets a random locally administered one. `device.device_id` overrides it.
- `client_id`: a UUID v4, like the firmware's NVS `board.uuid`.
- `serial_number` and `hmac_key`: what an Activation-Version 2 board has burnt in eFuse.

A damaged file is moved aside and the damaged fields regenerated with a warning; it never stops startup.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pibuddy import netinfo
from pibuddy.errors import PiBuddyError
from pibuddy.statedir import StateDir, StatePermissionError

_LOGGER = logging.getLogger(__name__)
IDENTITY_FILE: Final = "identity.json"
SOURCE_GENERATED: Final = "generated"
SOURCE_CONFIG: Final = "config"
# "SN-" + 29 hex digits = 32 characters, the length of the firmware's eFuse serial, in case a server
# checks it; random rather than derived from the MAC so that it reveals nothing.
_SERIAL_PREFIX: Final = "SN-"
_SERIAL_HEX_DIGITS: Final = 29
_HMAC_KEY_BYTES: Final = 32
_MAC_RE: Final = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SERIAL_RE: Final = re.compile(rf"^{_SERIAL_PREFIX}[0-9a-f]{{{_SERIAL_HEX_DIGITS}}}$")
_HMAC_KEY_RE: Final = re.compile(rf"^[0-9a-f]{{{2 * _HMAC_KEY_BYTES}}}$")


class IdentityError(PiBuddyError):
    """The identity cannot be read or saved (state dir unreadable or not writable)."""


@dataclass(frozen=True, slots=True)
class Identity:
    device_id: str
    device_id_source: str
    """Interface the MAC was read from, `generated`, or `config`."""
    client_id: str
    serial_number: str
    hmac_key: bytes = field(repr=False)


def _is_client_id(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _matches(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and pattern.match(value) is not None


_VALID: Final[dict[str, Callable[[Any], bool]]] = {
    "device_id": _matches(_MAC_RE),
    "device_id_source": lambda value: isinstance(value, str) and bool(value),
    "client_id": _is_client_id,
    "serial_number": _matches(_SERIAL_RE),
    "hmac_key": _matches(_HMAC_KEY_RE),
}


def load_identity(
    state: StateDir,
    *,
    configured_device_id: str | None = None,
    sys_class_net: Path = netinfo.SYS_CLASS_NET,
    proc_route: Path = netinfo.PROC_NET_ROUTE,
) -> Identity:
    """Read the identity, creating or repairing `identity.json` as needed.

    Args:
        state: The state dir holding `identity.json`.
        configured_device_id: `device.device_id` from the config; wins over the stored one without
            replacing it, so removing it from the config restores the old identity.
        sys_class_net: Where to look for interfaces (tests point it at a fake tree).
        proc_route: The IPv4 routing table (ditto).
    """
    stored = _read(state)
    data = {key: value for key, value in stored.items() if key not in _VALID or _VALID[key](value)}
    damaged = sorted(key for key in stored if key not in data)
    if damaged:
        _LOGGER.warning("%s: invalid %s; generating new values", _path(state), ", ".join(damaged))
    if "device_id" in data:
        _warn_if_cloned(state, data, sys_class_net)
    else:
        data["device_id"], data["device_id_source"] = _new_device_id(state, sys_class_net, proc_route)
    data.setdefault("device_id_source", SOURCE_GENERATED)
    data.setdefault("client_id", str(uuid.uuid4()))
    data.setdefault("serial_number", _SERIAL_PREFIX + secrets.token_hex(16)[:_SERIAL_HEX_DIGITS])
    data.setdefault("hmac_key", secrets.token_hex(_HMAC_KEY_BYTES))
    created = data != stored
    if created:
        _write(state, data)
    identity = Identity(
        device_id=configured_device_id or data["device_id"],
        device_id_source=SOURCE_CONFIG if configured_device_id else data["device_id_source"],
        client_id=data["client_id"],
        serial_number=data["serial_number"],
        hmac_key=bytes.fromhex(data["hmac_key"]),
    )
    # Loaded on every upstream (re)try: said at INFO only when something new was written.
    _LOGGER.log(logging.INFO if created else logging.DEBUG, "device id %s (%s), client id %s",
                identity.device_id, identity.device_id_source, identity.client_id)
    return identity


def _read(state: StateDir) -> dict[str, Any]:
    """The stored fields; {} on first start; {} with the file moved aside when it is not a JSON object."""
    try:
        text = state.read_text(IDENTITY_FILE)
    except UnicodeDecodeError:
        text = ""  # not UTF-8: damaged like any other non-JSON content
    except StatePermissionError:
        raise  # already says which file and how to fix the owner
    except OSError as exc:
        raise IdentityError(f"cannot read {_path(state)}: {exc.strerror or exc}") from None
    if text is None:
        _LOGGER.info("no %s yet: creating this device's identity", _path(state))
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    aside = _path(state).with_name(IDENTITY_FILE + ".corrupt")
    try:
        os.replace(_path(state), aside)
    except OSError as exc:
        raise IdentityError(f"cannot move the damaged {_path(state)} aside: {exc.strerror or exc}") from None
    _LOGGER.warning(
        "%s is damaged (moved to %s); generating a new identity: the server will see a new device and "
        "may ask for activation again", _path(state), aside)
    return {}


def _write(state: StateDir, data: dict[str, Any]) -> None:
    try:
        state.write_json(IDENTITY_FILE, data)
    except StatePermissionError:
        raise  # already says which file and how to fix the owner
    except OSError as exc:
        raise IdentityError(f"cannot save {_path(state)}: {exc.strerror or exc}") from None


def _warn_if_cloned(state: StateDir, data: dict[str, Any], sys_class_net: Path) -> None:
    """A pinned MAC that no local interface has means the state dir came from another machine."""
    source = data.get("device_id_source", SOURCE_GENERATED)
    if source != SOURCE_GENERATED and data["device_id"] not in netinfo.local_macs(sys_class_net):
        _LOGGER.warning(
            "device id %s is the MAC of %s on another machine (a cloned SD card?); two devices with one "
            "identity confuse the server: delete %s on one of them to give it a new identity",
            data["device_id"], source, _path(state))


def _new_device_id(state: StateDir, sys_class_net: Path, proc_route: Path) -> tuple[str, str]:
    interface = netinfo.primary_interface(sys_class_net, proc_route)
    if interface is not None:
        return interface.mac, interface.name
    octets = bytearray(secrets.token_bytes(6))
    octets[0] = (octets[0] & 0xFC) | 0x02  # unicast, locally administered: can never clash with real hardware
    mac = ":".join(f"{octet:02x}" for octet in octets)
    _LOGGER.warning(
        "no network interface with a hardware MAC: using the generated, locally administered device id %s "
        "(kept in %s)", mac, _path(state))
    return mac, SOURCE_GENERATED


def _path(state: StateDir) -> Path:
    return state.path / IDENTITY_FILE
