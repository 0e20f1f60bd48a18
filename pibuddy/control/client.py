"""The CLI's side of the control socket: one request, one answer, or one clear line saying why not."""

from __future__ import annotations

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


def request(paths: list[Path], op: str, **params: Any) -> Any:
    """Send `op` to the first socket in `paths` that exists and return the service's result.

    Raises NotRunning (no socket, nobody listening, or no permission: the message says what to do) or
    ControlRefused (the service's error).
    """
    existing = [p for p in paths if p.exists()]
    if not existing:
        raise NotRunning(f"no PiBuddy is running (no control socket at {' or '.join(map(str, paths))}); "
                         "start it with `sudo systemctl start pibuddy` or `pibuddy run`")
    path = existing[0]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_TIMEOUT_SECONDS)
        try:
            sock.connect(str(path))
        except PermissionError:
            raise NotRunning(f"permission denied on {path}: run as root, or join the pibuddy group "
                             "(sudo usermod -aG pibuddy $USER, then log in again)") from None
        except (ConnectionRefusedError, FileNotFoundError):
            raise NotRunning(f"no PiBuddy is running (nothing answers on {path}); "
                             "start it with `sudo systemctl start pibuddy` or `pibuddy run`") from None
        sock.sendall(protocol.encode({"op": op} | params))
        answer = _read_line(sock, path)
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlRefused(f"the service sent an answer this CLI does not understand: {answer!r:.200}")
    if not answer["ok"]:
        raise ControlRefused(str(answer.get("error", "failed")))
    return answer.get("result")


def _read_line(sock: socket.socket, path: Path) -> Any:
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
    except TimeoutError:
        raise NotRunning(f"PiBuddy did not answer on {path} within {_TIMEOUT_SECONDS:g} s") from None
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise ControlRefused("the service closed the connection without an answer") from None
