"""The firmware-like built-in tools: device status and speaker volume for the LLM, system info for users.

`self.get_device_status` keeps the firmware's top-level keys where a Pi has the fact: `audio_speaker
{volume}`, `network {type, ip, rssi?}` and `chip {temperature}`. Additions: `network.interface` and
`system {uptime_seconds, load_average}`. No `screen` or `battery` (a Pi has neither to report).

`self.reboot` is left out on purpose: the firmware offers it to users, but a Pi running PiBuddy is often a
home hub too, and a voice or remote command should not be able to reboot it.
"""

from __future__ import annotations

import contextlib
import platform
import socket
from typing import Any

from pibuddy import __version__
from pibuddy.errors import DriverError
from pibuddy.tools.arguments import integer
from pibuddy.tools.host import Host
from pibuddy.tools.registry import Tool, tool
from pibuddy.tools.volume import SystemVolume


def builtin_tools(volume: SystemVolume, host: Host) -> list[Tool]:
    """The built-ins in the order they are listed (common tools first, then the user-only one)."""

    @tool(
        "self.get_device_status",
        "Gives the device's current state: speaker volume, network, chip temperature, uptime and load.\n"
        "Use it to answer questions about the device (e.g. how loud is the speaker now?) and as the first "
        "step before changing something relative to its current value (e.g. turn the volume up a bit).",
    )
    async def get_device_status(arguments: dict[str, Any]) -> dict[str, Any]:
        del arguments
        return await device_status(volume, host)

    @tool(
        "self.audio_speaker.set_volume",
        "Sets the speaker volume, 0 to 100. If the current volume is unknown, call "
        "`self.get_device_status` first.",
        params={"volume": integer(0, 100)},
    )
    async def set_volume(arguments: dict[str, Any]) -> bool:
        await volume.set_volume(arguments["volume"])
        return True

    @tool("self.get_system_info", "Gives PiBuddy's version and the system it runs on.", user_only=True)
    async def get_system_info(arguments: dict[str, Any]) -> dict[str, Any]:
        del arguments
        return system_info(host)

    return [get_device_status, set_volume, get_system_info]


async def device_status(volume: SystemVolume, host: Host) -> dict[str, Any]:
    speaker: dict[str, Any] = {}  # stays empty without a mixer, like a firmware board without a codec
    with contextlib.suppress(DriverError):
        speaker["volume"] = await volume.get_volume()
    status: dict[str, Any] = {"audio_speaker": speaker, "network": host.network()}
    temperature = host.cpu_temperature()
    if temperature is not None:
        status["chip"] = {"temperature": temperature}
    system = {"uptime_seconds": host.uptime_seconds(), "load_average": host.load_average()}
    status["system"] = {k: v for k, v in system.items() if v is not None}
    return status


def system_info(host: Host) -> dict[str, Any]:
    info = {
        "pibuddy_version": __version__,
        "python": platform.python_version(),
        "os": host.os_name(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "board": host.board_model(),
    }
    return {k: v for k, v in info.items() if v is not None}
