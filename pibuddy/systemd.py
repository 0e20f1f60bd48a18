"""The systemd notify protocol (sd_notify) over `NOTIFY_SOCKET`, and the watchdog interval.

A unix datagram per message, as systemd expects; a no-op when not started by systemd.
"""

from __future__ import annotations

import logging
import os
import socket

_LOGGER = logging.getLogger(__name__)


class Notifier:
    """Sends READY=1, STATUS=..., WATCHDOG=1 and STOPPING=1 to systemd."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._socket: socket.socket | None = None
        self.watchdog_seconds = _watchdog_seconds(env)
        self._last_status = ""

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self) -> None:
        self._send("READY=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """Set the one-line STATUS= shown by `systemctl status` (sent only when it changes)."""
        text = text.replace("\n", " ")
        if text != self._last_status:
            self._last_status = text
            self._send(f"STATUS={text}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:
            _LOGGER.warning("cannot notify systemd at %s: %s", self._address, exc.strerror)


def _socket_address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()  # abstract namespace
    return value


def _watchdog_seconds(env: dict[str, str] | os._Environ[str]) -> float | None:
    """WATCHDOG_USEC in seconds, if the watchdog is meant for this process."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000
    except ValueError:
        _LOGGER.warning("ignoring malformed WATCHDOG_USEC=%r", usec)
        return None
