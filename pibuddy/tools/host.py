"""What a Raspberry Pi can honestly report about itself, read from /proc, /sys and /etc.

Every reader returns None (or leaves a key out) when the file is absent, as on a non-Pi development
machine: a missing fact is not an error.
"""

from __future__ import annotations

import fcntl
import platform
import socket
import struct
from pathlib import Path
from typing import Any, Final

_SIOCGIFADDR: Final = 0x8915  # linux/sockios.h: an interface's IPv4 address
_RTF_UP: Final = 0x1


class Host:
    """Facts about this machine. The root paths are arguments so tests can point them at fixture trees."""

    def __init__(self, *, proc: Path = Path("/proc"), sysfs: Path = Path("/sys"), etc: Path = Path("/etc")) -> None:
        self._proc = proc
        self._sys = sysfs
        self._etc = etc

    def cpu_temperature(self) -> float | None:
        """°C of the first thermal zone (the SoC on a Pi), one decimal."""
        text = _read(self._sys / "class/thermal/thermal_zone0/temp")
        try:
            return round(int(text) / 1000, 1) if text else None
        except ValueError:
            return None

    def uptime_seconds(self) -> int | None:
        text = _read(self._proc / "uptime")
        try:
            return int(float(text.split()[0])) if text else None
        except (ValueError, IndexError):
            return None

    def load_average(self) -> list[float] | None:
        """1, 5 and 15 minute load averages."""
        text = _read(self._proc / "loadavg")
        try:
            return [float(v) for v in text.split()[:3]] if text else None
        except ValueError:
            return None

    def board_model(self) -> str | None:
        """E.g. "Raspberry Pi 4 Model B Rev 1.4"; None off a device-tree board."""
        model = (_read(self._proc / "device-tree/model") or "").rstrip("\x00").strip()
        return model or None

    def os_name(self) -> str:
        for line in (_read(self._etc / "os-release") or "").splitlines():
            key, _, value = line.partition("=")
            if key == "PRETTY_NAME":
                return value.strip().strip('"')
        return platform.platform()

    def network(self) -> dict[str, Any]:
        """`{"type": "wifi"|"ethernet"|"none", "interface", "ip", "rssi"?}` for the default route's interface."""
        interface = self._default_interface()
        if interface is None:
            return {"type": "none"}
        wireless = (self._sys / "class/net" / interface / "wireless").exists()
        info: dict[str, Any] = {"type": "wifi" if wireless else "ethernet", "interface": interface}
        address = _ipv4_address(interface)
        if address is not None:
            info["ip"] = address
        rssi = self._wifi_signal(interface) if wireless else None
        if rssi is not None:
            info["rssi"] = rssi
        return info

    def _default_interface(self) -> str | None:
        for line in (_read(self._proc / "net/route") or "").splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & _RTF_UP:
                return fields[0]
        return None

    def _wifi_signal(self, interface: str) -> int | None:
        """Signal level in dBm from /proc/net/wireless (`wlan0: 0000   70.  -40.  -256 ...`)."""
        for line in (_read(self._proc / "net/wireless") or "").splitlines()[2:]:
            name, _, values = line.partition(":")
            fields = values.split()
            if name.strip() == interface and len(fields) > 2:
                try:
                    return int(float(fields[2]))
                except ValueError:
                    return None
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _ipv4_address(interface: str) -> str | None:
    request = struct.pack("256s", interface.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
        except OSError:  # no IPv4 address on the interface
            return None
    return socket.inet_ntoa(answer[20:24])
