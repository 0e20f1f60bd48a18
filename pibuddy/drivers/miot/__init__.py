"""Xiaomi MIoT devices as tools, with PiBuddy's own protocol code (docs/drivers.md §0: no Xiaomi integration code,
client ids or keys): the miIO LAN protocol with device tokens, the user's Mi account for tokens and for devices
the LAN cannot reach, and MIoT-Spec-V2 specs turned into tools. `MiotService` is the supervised part."""

from pibuddy.drivers.miot.driver import MiotDriver
from pibuddy.drivers.miot.service import MiotService
from pibuddy.drivers.miot.tools import miot_tools

__all__ = ["MiotDriver", "MiotService", "miot_tools"]
