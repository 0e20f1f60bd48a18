"""BLE: BTHome and MiBeacon sensors heard by a bleak scanner, and configured GATT devices, as tools.

`BleDriver` holds what the tools read (sensor cache, GATT connections); `BleService` keeps a scanner
feeding it; `ble_tools(driver)` are `ble_list_sensors`, `ble_read_sensor` and `ble_control`.
"""

from pibuddy.drivers.ble.driver import BleDriver
from pibuddy.drivers.ble.errors import BluetoothUnavailable
from pibuddy.drivers.ble.service import BleService
from pibuddy.drivers.ble.tools import ble_tools

__all__ = ["BleDriver", "BleService", "BluetoothUnavailable", "ble_tools"]
