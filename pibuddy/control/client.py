"""The CLI's side of the control socket: one request, one answer, or one clear line saying why not."""

from __future__ import annotations

import grp
import json
import socket
from pathlib import Path
from typing import Any, Final

from pibuddy.control import protocol
from pibuddy.errors import PiBuddyError

_TIMEOUT_SECONDS: Final = 15.0


class NotRunning(PiBuddyError):
    """No PiBuddy answers on any control socket."""


class ControlRefused(PiBuddyError):
    """The service answered the request with an error (the message is the service's)."""


def request(paths: list[Path], op: str, *, timeout: float = _TIMEOUT_SECONDS, **params: Any) -> Any:
    """Send `op` to the first socket in `paths` that exists and return the service's result.

    Raises NotRunning (no socket, nobody listening, or no permission: the message says what to do; nothing was
    asked) or ControlRefused (the service's error, or no answer within `timeout` seconds: it may still act).
    """
    path = _socket_path(paths)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except PermissionError:
            raise NotRunning(_denied(path)) from None
        except (ConnectionRefusedError, FileNotFoundError):
            raise NotRunning(f"no PiBuddy is running (nothing answers on {path}); "
                             "start it with `sudo systemctl start pibuddy` or `pibuddy run`") from None
        sock.sendall(protocol.encode({"op": op} | params))
        answer = _read_line(sock, path, timeout)
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlRefused(f"the service sent an answer this CLI does not understand: {answer!r:.200}")
    if not answer["ok"]:
        raise ControlRefused(str(answer.get("error", "failed")))
    return answer.get("result")


def _socket_path(paths: list[Path]) -> Path:
    """The first socket in `paths` that exists. One this user may not even look at (the service's runtime
    directory is mode 0750, group pibuddy) counts only when no other is there."""
    denied: Path | None = None
    for path in paths:
        try:
            path.stat()
        except PermissionError:
            denied = denied or path
        except OSError:  # not there (ENOENT, ENOTDIR ...)
            continue
        else:
            return path
    if denied is not None:
        raise NotRunning(_denied(denied))
    raise NotRunning(f"no PiBuddy is running (no control socket at {' or '.join(map(str, paths))}); "
                     "start it with `sudo systemctl start pibuddy` or `pibuddy run`")


def _denied(path: Path) -> str:
    """What to do about a socket this user may not use: join the group that owns it (or its directory)."""
    group = "pibuddy"
    for owner in (path, *path.parents):
        try:
            gid = owner.stat().st_gid
        except OSError:
            continue
        try:
            group = grp.getgrgid(gid).gr_name
        except KeyError:  # a group id without a name here: usermod takes the number too
            group = str(gid)
        break
    return (f"permission denied on {path}: run as root, or join the {group} group "
            f"(sudo usermod -aG {group} $USER, then log in again)")


def _read_line(sock: socket.socket, path: Path, timeout: float) -> Any:
    chunks: list[bytes] = []
    size = 0
    try:
        while not chunks or not chunks[-1].endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > protocol.MAX_ANSWER_BYTES:
                raise ControlRefused("the service's answer is too large")
    except TimeoutError:  # it has the request: not NotRunning, whose callers may do the request themselves
        raise ControlRefused(f"PiBuddy did not answer on {path} within {timeout:g} s") from None
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise ControlRefused("the service closed the connection without an answer") from None
