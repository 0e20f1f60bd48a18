"""`pibuddy run` and `pibuddy check` as real processes: the notify protocol on a real unix datagram socket,
SIGTERM/SIGINT within 5 s, and FAIL rows instead of crashes."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.ports import free_port
from tests.timescale import scaled

_QUIET_CONFIG = """
audio: {enabled: false}
upstream: {enabled: false}
gateway: {enabled: false}
"""


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(scaled(10))
    yield sock
    sock.close()


def _messages_until(sock: socket.socket, wanted: str, deadline: float) -> list[str]:
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen.append(sock.recv(4096).decode())
        if seen[-1] == wanted:
            return seen
    raise AssertionError(f"{wanted} not received; got {seen}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_notify_protocol_and_clean_stop_within_5_seconds(
    tmp_path: Path, notify_socket: socket.socket, pibuddy_env: dict[str, str], python: str, signum: int
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(_QUIET_CONFIG)
    env = pibuddy_env | {"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "200000"}
    process = subprocess.Popen([python, "-m", "pibuddy", "run", "--config", str(config)], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        # Start-up and the first pings only have to happen (slower when emulated); stopping within 5 s is the claim.
        before_ready = _messages_until(notify_socket, "READY=1", time.monotonic() + scaled(20))
        assert all(m.startswith(("STATUS=", "WATCHDOG=1")) for m in before_ready[:-1])
        after_ready = _messages_until(notify_socket, "WATCHDOG=1", time.monotonic() + scaled(2))
        _messages_until(notify_socket, "WATCHDOG=1", time.monotonic() + scaled(2))  # repeated
        assert any(m.startswith("STATUS=") for m in before_ready + after_ready)
        process.send_signal(signum)
        sent = time.monotonic()
        stopping = _messages_until(notify_socket, "STOPPING=1", sent + 5)
        assert stopping[-1] == "STOPPING=1"
        returncode = process.wait(timeout=5)
        assert time.monotonic() - sent < 5
    finally:
        process.kill()
        _, stderr = process.communicate(timeout=5)
    assert returncode == 0, stderr
    assert "PiBuddy is up" in stderr
    assert "PiBuddy stopped" in stderr
    assert "Traceback" not in stderr


def test_check_reports_fail_for_unreachable_upstream_without_crashing(
    tmp_path: Path, pibuddy_env: dict[str, str], python: str
) -> None:
    port = free_port()  # a port nothing listens on
    config = tmp_path / "config.yaml"
    config.write_text(f"audio: {{enabled: false}}\nupstream:\n  ota_url: http://127.0.0.1:{port}/xiaozhi/ota/\n")
    result = subprocess.run([python, "-m", "pibuddy", "check", "--config", str(config)], env=pibuddy_env,
                            capture_output=True, text=True, timeout=scaled(60), check=False)
    assert result.returncode == 1
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert rows["config"].split()[1] == "OK"
    assert rows["upstream"].split()[1] == "FAIL"
    assert f"127.0.0.1:{port}" in rows["upstream"]
    assert "Traceback" not in result.stderr
