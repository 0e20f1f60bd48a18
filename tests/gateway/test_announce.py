"""`pibuddy announce --device MAC|all` on the gateway's devices: a real `pibuddy run` gateway, firmware-like
devices connected through its local OTA and MQTT (not in a conversation), and the CLI over the control socket.
Each device shows the alert the firmware way (status, message, emotion); the others stay quiet."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pibuddy.gateway.device import ALERT_STATUS
from tests.gateway.test_registry import _own_state_dir, device_on, start_gateway_process
from tests.peers.firmware_device import Alert, FirmwareDevice
from tests.peers.processes import stop_process

pytestmark = pytest.mark.peer
_NOTHING_SECONDS = 0.5  # "must not happen" is asserted with this short wait


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pibuddy", *args, "--config", str(config)], env=_own_state_dir(),
                          capture_output=True, text=True, timeout=60, check=False)


async def _shown(device: FirmwareDevice) -> Alert:
    return await asyncio.wait_for(device.alerts.get(), 5)


async def _nothing_shown(device: FirmwareDevice) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(device.alerts.get(), _NOTHING_SECONDS)


async def test_announce_reaches_one_device_by_mac_and_all_devices_with_all(tmp_path: Path) -> None:
    gateway = await start_gateway_process(tmp_path, "hub", None)
    config = tmp_path / "hub.yaml"
    devices: list[FirmwareDevice] = []
    try:
        devices += [await device_on(gateway, 1), await device_on(gateway, 2)]
        kitchen, porch = devices

        one = await asyncio.to_thread(_cli, config, "announce", "Dinner is ready", "--device", "AA:BB:CC:DD:EE:01")
        assert (one.returncode, one.stdout, one.stderr) == (0, "announced on aa:bb:cc:dd:ee:01\n", "")
        assert await _shown(kitchen) == Alert(ALERT_STATUS, "Dinner is ready", "neutral")
        await _nothing_shown(porch)

        every = await asyncio.to_thread(_cli, config, "announce", "The washing machine is done", "--device", "all")
        assert every.returncode == 0, every.stderr
        assert every.stdout == "announced on aa:bb:cc:dd:ee:01, aa:bb:cc:dd:ee:02\n"
        for device in devices:
            assert (await _shown(device)).message == "The washing machine is done"

        gone = await asyncio.to_thread(_cli, config, "announce", "hello", "--device", "aa:bb:cc:dd:ee:09")
        assert (gone.returncode, gone.stdout) == (1, "")
        assert gone.stderr == "pibuddy: no gateway device aa:bb:cc:dd:ee:09 is connected (see `pibuddy status`)\n"

        history = [json.loads(line) for line in (await asyncio.to_thread(_cli, config, "history", "--json")).stdout
                   .splitlines()]
        assert [(e["name"], e["arguments"].get("device"), e["is_error"]) for e in history] == [
            ("announce", "AA:BB:CC:DD:EE:01", False), ("announce", "all", False),
            ("announce", "aa:bb:cc:dd:ee:09", True)]
    finally:
        for device in devices:
            await device.close()
        await stop_process(gateway.process, 10)
    assert gateway.process.returncode == 0
