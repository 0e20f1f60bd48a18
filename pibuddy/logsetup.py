"""Logging: one line per event, readable in journald, with secrets masked."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Final, TextIO

_MASK: Final = "***"
MAX_MESSAGE_CHARS: Final = 2000
"""A longer message (a peer's 1 MB tool name, quoted by a library) is cut here, with the count of the rest."""
_NOISY_LIBRARIES: Final = ("httpx", "httpcore", "websockets", "aiohttp.access")


class SecretFilter(logging.Filter):
    """Replaces every known secret value in a record's final message with `***`, and caps its length."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets.update(s for s in secrets if len(s) >= 4)  # masking "a" would shred every line

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        for secret in self._secrets:
            masked = masked.replace(secret, _MASK)
        if len(masked) > MAX_MESSAGE_CHARS:  # after masking: a cut must not leave half a secret
            masked = f"{masked[:MAX_MESSAGE_CHARS]}… ({len(masked) - MAX_MESSAGE_CHARS} more characters)"
        if masked != message:
            record.msg, record.args = masked, None
        return True


SECRET_FILTER: Final = SecretFilter()


def _own_stderr() -> TextIO:
    """A stream on a private duplicate of file descriptor 2.

    sounddevice points fd 2 at /dev/null while PortAudio initialises (to hide ALSA's chatter), and PiBuddy
    does that in a worker thread: every line the event loop logged meanwhile was lost ("gateway up" and
    "service ... is running" at start). Our own descriptor keeps pointing at the journal or terminal.
    """
    try:
        descriptor = os.dup(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # a replaced sys.stderr without a file behind it
        return sys.stderr
    return open(descriptor, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                errors="backslashreplace", closefd=True)


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once; journald adds its own timestamps, a terminal gets ours."""
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald else (
        "%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = logging.StreamHandler(_own_stderr())
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    SECRET_FILTER.add(secrets)
    handler.addFilter(SECRET_FILTER)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
