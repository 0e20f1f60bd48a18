"""The Pi's network identity, read from sysfs and procfs: its primary interface, MAC and IPv4 address.

The firmware's Device-Id is its Wi-Fi MAC. A Pi may have several interfaces, so the primary one is the
interface of the default route (lowest metric), else the first non-loopback interface with a hardware
MAC, physical devices before virtual ones. Paths are parameters so tests can point at a fake tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pibuddy.macaddr import parse_mac

_LOGGER = logging.getLogger(__name__)
SYS_CLASS_NET: Final = Path("/sys/class/net")
PROC_NET_ROUTE: Final = Path("/proc/net/route")
_ARPHRD_ETHER: Final = "1"  # sysfs `type` of Ethernet and Wi-Fi interfaces
_RTF_UP: Final = 0x1
_SIOCGIFADDR: Final = 0x8915
_IFNAMSIZ: Final = 16


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    mac: str
    """Lower-case, colon separated."""


def normalize_mac(text: str) -> str | None:
    """`parse_mac`, and None unless it is a usable unicast hardware address (for this machine's own id)."""
    mac = parse_mac(text)
    if mac is None or mac == "00:00:00:00:00:00" or int(mac[:2], 16) & 0x01:  # unset, multicast, broadcast
        return None
    return mac


def interface_mac(name: str, sys_class_net: Path = SYS_CLASS_NET) -> str | None:
    """The hardware address of an Ethernet-like interface, or None (loopback, tunnels, unreadable)."""
    base = sys_class_net / name
    try:
        if (base / "type").read_text().strip() != _ARPHRD_ETHER:
            return None
        return normalize_mac((base / "address").read_text())
    except OSError:
        return None


def default_route_interfaces(proc_route: Path = PROC_NET_ROUTE) -> list[str]:
    """Interfaces carrying an IPv4 default route, lowest metric first."""
    try:
        lines = proc_route.read_text().splitlines()[1:]
    except OSError:
        return []
    routes: list[tuple[int, str]] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        name, destination, flags, metric, mask = fields[0], fields[1], fields[3], fields[6], fields[7]
        with contextlib.suppress(ValueError):
            if int(destination, 16) == 0 and int(mask, 16) == 0 and int(flags, 16) & _RTF_UP:
                routes.append((int(metric), name))
    return [name for _, name in sorted(routes)]


def primary_interface(sys_class_net: Path = SYS_CLASS_NET, proc_route: Path = PROC_NET_ROUTE) -> Interface | None:
    """The default-route interface if it has a MAC, else the best other candidate, else None."""
    for name in default_route_interfaces(proc_route):
        mac = interface_mac(name, sys_class_net)
        if mac is not None:
            return Interface(name, mac)
    candidates = [
        Interface(name, mac)
        for name in _interface_names(sys_class_net)
        if name != "lo" and (mac := interface_mac(name, sys_class_net)) is not None
    ]
    # Physical interfaces have a `device` link; bridges, veths and ifbs (often with random MACs) do not.
    candidates.sort(key=lambda iface: (not (sys_class_net / iface.name / "device").exists(), iface.name))
    return candidates[0] if candidates else None


def local_macs(sys_class_net: Path = SYS_CLASS_NET) -> set[str]:
    """The hardware addresses of every interface of this machine."""
    return {mac for name in _interface_names(sys_class_net) if (mac := interface_mac(name, sys_class_net))}


def ipv4_address(interface: str) -> str | None:
    """The interface's IPv4 address, or None if it has none (down, not configured, IPv6 only)."""
    request = struct.pack("256s", interface.encode()[: _IFNAMSIZ - 1])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
    except OSError:
        return None
    return socket.inet_ntoa(answer[20:24])  # struct ifreq: 16-byte name, then sockaddr_in (family, port, addr)


def _interface_names(sys_class_net: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in sys_class_net.iterdir())
    except OSError as exc:
        _LOGGER.debug("cannot list %s: %s", sys_class_net, exc)
        return []
