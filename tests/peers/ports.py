"""A free port on 127.0.0.1 for a test peer or server to bind a moment later.

Chosen below the kernel's ephemeral range: the kernel hands out ports of that range itself, to every outgoing
connection and every bind to port 0, so a port taken from it and released could be someone else's before the test
binds it again (a fresh-clone run failed so: the gateway's OTA port was held by another PiBuddy's connection).
Below the range only programs that ask for a port by number get one.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Final

_LOWEST: Final = 10000
_TRIES: Final = 200


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port of `kind` (TCP or UDP) that `host` can bind right now, outside the ephemeral range."""
    below = _ephemeral_start()
    for _ in range(_TRIES):
        port = random.randrange(_LOWEST, below)
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {_LOWEST} and {below} on {host} after {_TRIES} tries")


def _ephemeral_start() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    return max(low, _LOWEST + 1000)
