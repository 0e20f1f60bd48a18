"""bleak's and D-Bus's exceptions, converted once into PiBuddy's driver errors.

"Bluetooth is unavailable" has many faces on Linux: no system D-Bus socket (`FileNotFoundError`), bluetoothd
not running (`BleakDBusError` ServiceUnknown), no adapter or a powered-off one
(`BleakBluetoothNotAvailableError`, or BlueZ's `NotReady` when an adapter is named explicitly), or no
permission. Each becomes `BluetoothUnavailable` with a reason a user can act on.
"""

from __future__ import annotations

from typing import Final

from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakError,
)

from pibuddy.errors import DriverError, Failure, Party

_POWERED_OFF: Final = "the Bluetooth adapter is powered off (try `bluetoothctl power on` or `rfkill unblock bluetooth`)"
_REASONS: Final = {
    BleakBluetoothNotAvailableReason.NO_BLUETOOTH: "no Bluetooth adapter found",
    BleakBluetoothNotAvailableReason.NO_BLE_CENTRAL_ROLE: "the Bluetooth adapter cannot scan for BLE devices",
    BleakBluetoothNotAvailableReason.POWERED_OFF: _POWERED_OFF,
    BleakBluetoothNotAvailableReason.DENIED_BY_USER: "access to Bluetooth was denied",
    BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM: "access to Bluetooth was denied by the system",
}
_DBUS_REASONS: Final = {
    "org.freedesktop.DBus.Error.ServiceUnknown": "BlueZ (bluetoothd) is not running",
    "org.freedesktop.DBus.Error.AccessDenied": "no permission to use BlueZ on the system D-Bus",
    "org.bluez.Error.NotReady": _POWERED_OFF,
}


class BluetoothUnavailable(DriverError):
    code = "bluetooth_unavailable"
    failure = Failure.UNREACHABLE
    default_party = Party.BLUETOOTH


def unavailable_reason(exc: BaseException) -> str | None:
    """Why Bluetooth as a whole is unusable, if `exc` says so; None for errors about one device."""
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return "no system D-Bus (is dbus running?)"
    if isinstance(exc, PermissionError):
        return "no permission to use the system D-Bus"
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return _REASONS.get(exc.reason, str(exc))
    if isinstance(exc, BleakDBusError):
        return _DBUS_REASONS.get(exc.dbus_error)
    if isinstance(exc, BleakError) and "adapter" in str(exc) and "not found" in str(exc):
        return str(exc.args[0]) if exc.args else "the Bluetooth adapter was not found"
    return None


def as_unavailable(exc: BaseException) -> BluetoothUnavailable | None:
    reason = unavailable_reason(exc)
    return None if reason is None else BluetoothUnavailable(f"Bluetooth is unavailable: {reason}")
