"""The systemd notify protocol, for tests that run `pibuddy run` as a real process (the socket itself is the
`notify_socket` fixture in conftest.py)."""

from __future__ import annotations

import socket
import time


def messages_until(sock: socket.socket, wanted: str, deadline: float) -> list[str]:
    """The messages received up to and including `wanted`; fails if it has not come by `deadline`."""
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen.append(sock.recv(4096).decode())
        if seen[-1] == wanted:
            return seen
    raise AssertionError(f"{wanted} not received; got {seen}")
