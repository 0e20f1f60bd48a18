"""A state dir on a full or read-only filesystem: `pibuddy run` as a real process says so in one ERROR line
that names the path and the fix, not a traceback per retry, and keeps running. The filesystem is a real tmpfs
mounted in a private mount namespace (`unshare -m`, root only)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.peers.ports import free_port

_FULL = "mount -t tmpfs -o size=64k tmpfs {d} && (dd if=/dev/zero of={d}/fill bs=4k count=64 2>/dev/null || true)"
_READ_ONLY = "mount -t tmpfs -o size=64k tmpfs {d} && mount -o remount,ro {d}"


def _can_mount(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    return subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {probe}"],
                          capture_output=True, timeout=10, check=False).returncode == 0


@pytest.mark.parametrize(("prepare", "fix"), [
    (_FULL, "no space left on that filesystem; free some space (df -h {d})"),
    (_READ_ONLY, "the filesystem is read-only; remount it read-write"),
])
def test_a_state_dir_that_cannot_be_written_is_one_error_line_naming_the_path_and_the_fix(
        tmp_path: Path, pibuddy_env: dict[str, str], python: str, prepare: str, fix: str) -> None:
    if not _can_mount(tmp_path):
        pytest.skip("needs root and `unshare -m` to mount a private tmpfs")
    state = tmp_path / "state"
    state.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(  # the gateway keeps its generated signature key in the state dir
        "audio: {enabled: false}\nupstream: {enabled: false}\n"
        f"gateway: {{host: 127.0.0.1, mqtt_port: {free_port()}, udp_port: {free_port(socket.SOCK_DGRAM)}, "
        f"api_port: {free_port()}, ota_port: {free_port()}, mdns: false}}\n")
    env = pibuddy_env | {"PIBUDDY_DEVICE_STATE_DIR": str(state)}
    script = f"{prepare.format(d=state)} && exec {python} -m pibuddy run --config {config}"
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr_file:
        process = subprocess.Popen(["unshare", "-m", "sh", "-c", script], env=env, stderr=stderr_file, text=True)
    try:
        # Until the first error and a retry after it are logged (not a fixed sleep: a loaded machine starts late).
        deadline = time.monotonic() + 60
        while "still failing (cannot write" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, "a state dir that cannot be written must not end the process"
            time.sleep(0.1)
        assert process.poll() is None, "a state dir that cannot be written must not end the process"
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
    finally:
        process.kill()
        process.wait(timeout=5)
    stderr = log.read_text()
    assert returncode == 0, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "ERROR" in line]
    services = [line.split("service ", 1)[1].split(":", 1)[0] for line in errors]
    assert "gateway" in services, stderr
    assert len(services) == len(set(services)), "one line per service, then quiet retries"
    for line in errors:  # the gateway's key; on a read-only one the control socket too (control.socket)
        assert f"cannot write {state}/" in line
        assert fix.format(d=state) in line
        assert "to a writable place" in line
    assert "still failing (cannot write" in stderr, "then quiet retries"
