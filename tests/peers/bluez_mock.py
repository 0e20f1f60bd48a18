"""BlueZ without a radio: a private system D-Bus (dbus-daemon) with python-dbusmock's `bluez5` template.

bleak's real BlueZ backend talks to it exactly as on a Pi (dbus-fast honours DBUS_SYSTEM_BUS_ADDRESS). An
"advertisement" is a Device1 object appearing (InterfacesAdded) or changing (PropertiesChanged) with
ServiceData/RSSI, which is how BlueZ reports what it hears. Devices are added with correctly typed properties
(ManufacturerData as a{qv}) instead of the template's AddDevice, whose array-typed ManufacturerData makes
bleak's handler raise once.

Usage: `with BluezMock() as bluez: bluez.start_bluez(); bluez.add_adapter("hci0"); ... bluez.advertise(...)`.
The bus address is put into os.environ for the duration and restored afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any, Final

import dbus
from dbusmock.testcase import BusType, PrivateDBus, SpawnedMock

_ENV: Final = "DBUS_SYSTEM_BUS_ADDRESS"
_DEVICE: Final = "org.bluez.Device1"
_ADAPTER: Final = "org.bluez.Adapter1"
_MOCK: Final = "org.freedesktop.DBus.Mock"


def available() -> bool:
    return shutil.which("dbus-daemon") is not None


class BluezMock:
    def __init__(self) -> None:
        self._saved_env = os.environ.get(_ENV)
        self._bus: PrivateDBus | None = None
        self._bluez: SpawnedMock | None = None
        self._connection: Any = None
        self._devices: set[str] = set()

    @property
    def address(self) -> str:
        assert self._bus is not None
        return self._bus.address

    def __enter__(self) -> BluezMock:
        self._bus = PrivateDBus(BusType.SYSTEM)
        self._bus.start()  # sets DBUS_SYSTEM_BUS_ADDRESS
        self._connection = dbus.bus.BusConnection(self._bus.address)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_bluez()
        if self._connection is not None:
            self._connection.close()
        if self._bus is not None:
            self._bus.stop()
        if self._saved_env is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = self._saved_env

    def start_bluez(self) -> None:
        """bluetoothd appears on the bus (without adapters)."""
        self._bluez = SpawnedMock.spawn_with_template("bluez5", {}, BusType.SYSTEM, subprocess.DEVNULL,
                                                      subprocess.DEVNULL)

    def stop_bluez(self) -> None:
        if self._bluez is not None:
            self._bluez.terminate()
            self._bluez = None
            self._devices.clear()

    def add_adapter(self, name: str = "hci0") -> None:
        self._control().AddAdapter(name, "pibuddy-test")

    def set_powered(self, adapter: str, powered: bool) -> None:
        self._mock(f"/org/bluez/{adapter}").UpdateProperties(_ADAPTER, {"Powered": dbus.Boolean(powered)})

    def discovering(self, adapter: str = "hci0") -> bool:
        props = dbus.Interface(self._object(f"/org/bluez/{adapter}"), "org.freedesktop.DBus.Properties")
        return bool(props.Get(_ADAPTER, "Discovering"))

    def wait_discovering(self, adapter: str = "hci0", timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.discovering(adapter):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{adapter} did not start discovering within {timeout} s")
            time.sleep(0.05)

    def advertise(self, address: str, *, name: str | None = None, service_data: dict[str, bytes] | None = None,
                  rssi: int = -60, adapter: str = "hci0") -> None:
        """BlueZ heard `address`: the device object appears, or its properties change."""
        path = f"/org/bluez/{adapter}/dev_{address.upper().replace(':', '_')}"
        heard = {
            "RSSI": dbus.Int16(rssi),
            "ServiceData": dbus.Dictionary({uuid: dbus.Array(data, signature="y")
                                            for uuid, data in (service_data or {}).items()}, signature="sv"),
            "UUIDs": dbus.Array(list(service_data or {}), signature="s"),
        }
        if name:
            heard["Name"] = dbus.String(name)
        if path in self._devices:
            self._mock(path).UpdateProperties(_DEVICE, heard)
            return
        properties = {
            "Address": dbus.String(address.upper()), "AddressType": dbus.String("public"),
            "Alias": dbus.String(name or address.upper().replace(":", "-")),
            "Adapter": dbus.ObjectPath(f"/org/bluez/{adapter}"),
            "Paired": dbus.Boolean(False), "Bonded": dbus.Boolean(False), "Trusted": dbus.Boolean(False),
            "Blocked": dbus.Boolean(False), "Connected": dbus.Boolean(False), "LegacyPairing": dbus.Boolean(False),
            "ServicesResolved": dbus.Boolean(False),
            "ManufacturerData": dbus.Dictionary({}, signature="qv"),
            **heard,
        }
        self._mock("/").AddObject(path, _DEVICE, properties, [])
        self._mock("/").EmitSignal("org.freedesktop.DBus.ObjectManager", "InterfacesAdded", "oa{sa{sv}}",
                                   [dbus.ObjectPath(path),
                                    dbus.Dictionary({_DEVICE: dbus.Dictionary(properties, signature="sv")},
                                                    signature="sa{sv}")])
        self._devices.add(path)

    def _object(self, path: str) -> Any:
        return self._connection.get_object("org.bluez", path)

    def _mock(self, path: str) -> Any:
        return dbus.Interface(self._object(path), _MOCK)

    def _control(self) -> Any:
        """The bluez5 template's own helpers (AddAdapter ...)."""
        assert self._bluez is not None, "start_bluez() first"
        return dbus.Interface(self._object("/"), "org.bluez.Mock")
