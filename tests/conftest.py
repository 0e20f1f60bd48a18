"""Shared fixtures. Real peers live in tests/peers/."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.homeassistant import homeassistant_peer  # noqa: F401 - registered once: one HA per session
from tests.peers.model_mirror import mirror  # noqa: F401 - a vosk/piper model mirror on 127.0.0.1
from tests.timescale import scaled

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pibuddy_env(tmp_path: Path) -> dict[str, str]:
    """An environment for running `python -m pibuddy` in a subprocess: no inherited PIBUDDY_* overrides,
    a private state dir, and no systemd socket unless a test sets one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIBUDDY_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    env["PIBUDDY_DEVICE_STATE_DIR"] = str(tmp_path / "state")
    return env


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """A bound unix datagram socket to pass as NOTIFY_SOCKET (tests/sdnotify.py reads it)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(scaled(10))
    yield sock
    sock.close()
