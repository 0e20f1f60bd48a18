"""The control socket as systemd lays it out: `pibuddy run` as its own user, the socket in a runtime directory
of mode 0750 (RuntimeDirectory=pibuddy, RuntimeDirectoryMode=0750, Group=pibuddy). A user in the service's
group reaches it; any other user is told in one line what to do, never shown a traceback. Users are switched
with setpriv(1), which needs root (as the tests run in CI)."""

from __future__ import annotations

import asyncio
import grp
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from pibuddy.control.client import ControlRefused, NotRunning, request
from tests.audio.test_run_e2e import _line_containing
from tests.peers.processes import stop_process

_SERVICE_UID: Final = 61234  # the service's own user (User=pibuddy)
_SERVICE_GID: Final = 1  # its group (Group=pibuddy): one with a name on every Debian (daemon), none is created
_USER_ID: Final = 61235  # someone logged in on the Pi
_SETPRIV = shutil.which("setpriv")

needs_root = pytest.mark.skipif(os.geteuid() != 0 or _SETPRIV is None,
                                reason="switching users needs root and setpriv (util-linux)")


@pytest.fixture
def layout() -> Iterator[Path]:
    """A directory everyone may enter, holding the service's config, state dir (0700) and runtime dir (0750)."""
    base = Path(tempfile.mkdtemp(prefix="pibuddy-perm-"))  # not under pytest's tmp_path: that is root's only
    try:
        base.chmod(0o755)
        (base / "run").mkdir(0o750)
        (base / "state").mkdir(0o700)
        for directory in (base / "run", base / "state"):
            os.chown(directory, _SERVICE_UID, _SERVICE_GID)
        config = base / "config.yaml"
        config.write_text("audio: {enabled: false}\nupstream: {enabled: false}\ngateway: {enabled: false}\n"
                          f"control: {{socket: '{base / 'run' / 'control.sock'}'}}\n")
        config.chmod(0o644)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _as(user: int, *groups: int, group: int = _USER_ID) -> list[str]:
    assert _SETPRIV is not None
    return [_SETPRIV, f"--reuid={user}", f"--regid={group}",
            f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"]


def _env(base: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(base),
            "PIBUDDY_DEVICE_STATE_DIR": str(base / "state")}


def _cli(base: Path, user: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*user, sys.executable, "-m", "pibuddy", *args, "--config", str(base / "config.yaml")],
                          env=_env(base), capture_output=True, text=True, timeout=60, check=False)


def _one_clear_line(result: subprocess.CompletedProcess[str], path: Path, group: str) -> None:
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr == (f"pibuddy: permission denied on {path}: run as root, or join the {group} group "
                             f"(sudo usermod -aG {group} $USER, then log in again)\n")


@needs_root
async def test_a_group_member_reaches_the_service_of_its_own_user_and_anyone_else_is_told_what_to_do(
        layout: Path) -> None:
    sock = layout / "run" / "control.sock"
    service = await asyncio.create_subprocess_exec(
        *_as(_SERVICE_UID, group=_SERVICE_GID), sys.executable, "-m", "pibuddy", "run", "--config",
        str(layout / "config.yaml"), env=_env(layout), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert service.stderr is not None
    log: list[str] = []
    try:
        await asyncio.wait_for(_line_containing(service.stderr, "control socket at", log), 60)
        follow = asyncio.create_task(_line_containing(service.stderr, "no such line", log))  # drains the pipe
        assert (sock.stat().st_uid, sock.stat().st_gid, sock.stat().st_mode & 0o777) == (
            _SERVICE_UID, _SERVICE_GID, 0o660)
        group = grp.getgrgid(_SERVICE_GID).gr_name

        member = await asyncio.to_thread(_cli, layout, _as(_USER_ID, _SERVICE_GID), "status")
        assert member.returncode == 0, member.stderr
        assert "control       running" in member.stdout

        # Not in the group: the runtime directory (0750) does not even let this user see the socket.
        stranger = await asyncio.to_thread(_cli, layout, _as(_USER_ID), "volume", "30")
        _one_clear_line(stranger, sock, group)

        # In the group, but the socket itself is closed to it (chmod 000): the same line.
        sock.chmod(0)
        closed = await asyncio.to_thread(_cli, layout, _as(_USER_ID, _SERVICE_GID), "history")
        _one_clear_line(closed, sock, group)
        follow.cancel()
    finally:
        await stop_process(service, 10)
    assert service.returncode == 0, "".join(log)
    assert "Traceback" not in "".join(log)


async def test_a_service_that_takes_the_request_but_never_answers_is_refused_not_called_absent(
        tmp_path: Path) -> None:
    """`pibuddy tools call` and `pibuddy mcp` do a call themselves only when no PiBuddy runs: one that has the
    request and is slow (a tool may take 25 s) must not have its call done a second time."""
    path = tmp_path / "control.sock"
    taken = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        taken.set()
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_unix_server(silent, path=str(path))
    try:
        with pytest.raises(ControlRefused, match=r"did not answer on .* within 0.3 s"):
            await asyncio.to_thread(request, [path], "call_tool", timeout=0.3, name="x", arguments={})
        assert taken.is_set()
    finally:
        server.close()


def test_no_socket_anywhere_says_no_pibuddy_is_running(tmp_path: Path) -> None:
    with pytest.raises(NotRunning, match=r"^no PiBuddy is running \(no control socket at "):
        request([tmp_path / "a" / "control.sock", tmp_path / "control.sock"], "status")
