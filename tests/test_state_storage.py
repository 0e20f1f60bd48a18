"""A state dir on a full or read-only filesystem, or one the service user may not enter (owned by root after a
run with sudo): `pibuddy run` as a real process says so in one ERROR line that names the path and the fix, not a
traceback per retry, and keeps running. The filesystem is a real tmpfs mounted in a private mount namespace
(`unshare -m`, root only); the service user is `nobody`, through `setpriv` (root only)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.ports import free_port

_FULL = "mount -t tmpfs -o size=64k tmpfs {d} && (dd if=/dev/zero of={d}/fill bs=4k count=64 2>/dev/null || true)"
_READ_ONLY = "mount -t tmpfs -o size=64k tmpfs {d} && mount -o remount,ro {d}"
_NOBODY = 65534


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
    config = _gateway_config(tmp_path)
    env = pibuddy_env | {"PIBUDDY_DEVICE_STATE_DIR": str(state)}
    script = f"{prepare.format(d=state)} && exec {python} -m pibuddy run --config {config}"
    errors = _error_lines_until_a_quiet_retry(["unshare", "-m", "sh", "-c", script], env, tmp_path / "stderr.log")
    for line in errors:  # the gateway's key; on a read-only one the control socket too (control.socket)
        assert f"cannot write {state}/" in line
        assert fix.format(d=state) in line
        assert "to a writable place" in line


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A dir `nobody` can enter (pytest's tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="pibuddy-eacces-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_state_dir_the_service_user_may_not_enter_is_one_error_line_naming_the_path_and_the_fix(
        shared_dir: Path, pibuddy_env: dict[str, str], python: str) -> None:
    as_nobody = ["setpriv", f"--reuid={_NOBODY}", f"--regid={_NOBODY}", "--clear-groups"]
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and `setpriv` to run PiBuddy as the user nobody")
    if subprocess.run([*as_nobody, python, "-c", "import pibuddy"], capture_output=True, timeout=30,
                      check=False).returncode != 0:
        pytest.skip("the user nobody cannot import PiBuddy from this checkout (under a private home dir?)")
    state = shared_dir / "state"
    state.mkdir(mode=0o700)  # root's, as `sudo pibuddy gateway credentials` leaves it on a first run
    config = _gateway_config(shared_dir)
    config.chmod(0o644)
    env = pibuddy_env | {"PIBUDDY_DEVICE_STATE_DIR": str(state), "HOME": str(shared_dir)}
    errors = _error_lines_until_a_quiet_retry([*as_nobody, python, "-m", "pibuddy", "run", "--config", str(config)],
                                              env, shared_dir / "stderr.log")
    services = {line.split("service ", 1)[1].split(":", 1)[0] for line in errors}
    assert services == {"gateway", "control"}, errors  # its signature key; the control socket, in the state dir
    for line in errors:
        assert f"cannot read {state}/gateway_signature_key" in line or f"cannot create {state}/control.sock" in line
        assert "permission denied for user nobody" in line
        assert f"fix: sudo chown -R nobody: {state}" in line


def _gateway_config(directory: Path) -> Path:
    config = directory / "config.yaml"
    config.write_text(  # the gateway keeps its generated signature key in the state dir
        "audio: {enabled: false}\nupstream: {enabled: false}\n"
        f"gateway: {{host: 127.0.0.1, mqtt_port: {free_port()}, udp_port: {free_port(socket.SOCK_DGRAM)}, "
        f"api_port: {free_port()}, ota_port: {free_port()}, mdns: false}}\n")
    return config


def _error_lines_until_a_quiet_retry(command: list[str], env: dict[str, str], log: Path) -> list[str]:
    """Run `pibuddy run` until a service failed and was retried quietly, stop it with SIGTERM, check that it
    stayed up, exited 0 and logged no traceback, and return its ERROR lines (one per failing service)."""
    with log.open("w") as stderr_file:
        process = subprocess.Popen(command, env=env, stderr=stderr_file, text=True)
    try:
        # Until the first error and a retry after it are logged (not a fixed sleep: a loaded machine starts late).
        deadline = time.monotonic() + 60
        while "still failing (cannot " not in log.read_text() and time.monotonic() < deadline:
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
    assert "still failing (cannot " in stderr, "then quiet retries"
    return errors
