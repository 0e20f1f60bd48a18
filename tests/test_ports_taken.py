"""A port PiBuddy wants already taken by another program: `pibuddy run` as a real process stays up, says so in
one ERROR line per service (the port, the setting that moves it, the program holding it), retries quietly and
shows the service failed in STATUS=; `pibuddy check` finds the same ports taken before the run."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pibuddy.ports import port_holder
from tests.peers.ports import free_port

pytestmark = pytest.mark.peer
_RETRIES_SECONDS = 4.0  # the supervisor's first delays are 0.5-1, 1-2 s: two or three retries


@contextlib.contextmanager
def _held(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Another program listening on 127.0.0.1:`port` (Python's http.server)."""
    holder = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while port_holder(port, "tcp") is None:
            assert time.monotonic() < deadline, "http.server did not start"
            assert holder.poll() is None, "http.server exited"
            time.sleep(0.05)
        yield holder
    finally:
        holder.kill()
        holder.wait()


def _config(tmp_path: Path, *, mqtt: int, mcp: int, web: int) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        "audio: {enabled: false}\nupstream: {enabled: false}\n"
        f"gateway: {{host: 127.0.0.1, mqtt_port: {mqtt}, udp_port: {free_port(socket.SOCK_DGRAM)}, "
        f"api_port: {free_port()}, ota_port: {free_port()}, mdns: false}}\n"
        f"tools: {{mcp_http_enabled: true, mcp_http_port: {mcp}}}\n"
        f"web: {{enabled: true, host: 127.0.0.1, port: {web}}}\n")
    return config


def test_taken_ports_are_one_error_line_each_and_the_process_stays_up(
        tmp_path: Path, pibuddy_env: dict[str, str], python: str) -> None:
    mqtt, mcp, web = free_port(), free_port(), free_port()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(10)
    with _held(mqtt) as mqtt_holder, _held(mcp) as mcp_holder, _held(web) as web_holder, notify:
        env = pibuddy_env | {"NOTIFY_SOCKET": notify.getsockname()}
        config = _config(tmp_path, mqtt=mqtt, mcp=mcp, web=web)
        process = subprocess.Popen([python, "-m", "pibuddy", "run", "--config", str(config)], env=env,
                                   stderr=subprocess.PIPE, text=True)
        try:
            statuses: list[str] = []
            deadline = time.monotonic() + 20
            while not any(all(f"{name} failed" in s for name in ("mcp-http", "gateway", "web")) for s in statuses):
                assert time.monotonic() < deadline, statuses
                statuses.append(notify.recv(4096).decode())
            time.sleep(_RETRIES_SECONDS)
            assert process.poll() is None, "a taken port must not end the process"
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=5)
        finally:
            process.kill()
            _, stderr = process.communicate(timeout=5)
    assert returncode == 0, stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 3, stderr
    for port, setting, holder in ((mcp, "tools.mcp_http_port", mcp_holder), (mqtt, "gateway.mqtt_port", mqtt_holder),
                                  (web, "web.port", web_holder)):
        line = next(e for e in errors if setting in e)
        assert f"TCP port {port} is already in use by python -m http.server (pid {holder.pid})" in line
    assert len(re.findall(r"still failing \(TCP port", stderr)) >= 3, "then quiet retries"


def test_check_finds_the_mcp_http_and_web_page_ports_taken(
        tmp_path: Path, pibuddy_env: dict[str, str], python: str) -> None:
    mcp, web = free_port(), free_port()
    with _held(mcp) as mcp_holder, _held(web) as web_holder:
        result = subprocess.run([python, "-m", "pibuddy", "check", "--config",
                                 str(_config(tmp_path, mqtt=free_port(), mcp=mcp, web=web))],
                                env=pibuddy_env, capture_output=True, text=True, timeout=60, check=False)
    for check, port, setting, holder in (("mcp http", mcp, "tools.mcp_http_port", mcp_holder),
                                         ("web page", web, "web.port", web_holder)):
        row = next(line for line in result.stdout.splitlines() if line.startswith(check))
        assert row.split()[len(check.split())] == "FAIL", result.stdout
        assert f"port {port}/tcp on 127.0.0.1 is in use by python -m http.server (pid {holder.pid})" in row
        assert setting in row
    assert result.returncode == 1
