"""Ports PiBuddy binds: a port already taken becomes one `PortInUse` error that names the port, the config
setting that moves it and, when /proc shows it, the program holding it (Linux: /proc/net/* + /proc/*/fd)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Final, Literal

from pibuddy.errors import PiBuddyError

Kind = Literal["tcp", "udp"]
_TCP_LISTEN: Final = "0A"  # the state column of /proc/net/tcp for a listening socket


class PortInUse(PiBuddyError):
    """Binding a port failed because another socket holds it; the user must move one of the two."""

    log_level: ClassVar[int] = logging.ERROR

    def __init__(self, *, port: int, kind: Kind, setting: str, holder: str | None) -> None:
        by = f" by {holder}" if holder else " by another program"
        super().__init__(f"{kind.upper()} port {port} is already in use{by}; stop that program or set {setting} "
                         "to a free port in config.yaml")
        self.port = port
        self.holder = holder


@contextlib.contextmanager
def binding(port: int, kind: Kind, setting: str) -> Iterator[None]:
    """Turn EADDRINUSE raised inside into `PortInUse` for `setting` (other errors pass unchanged)."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortInUse(port=port, kind=kind, setting=setting, holder=port_holder(port, kind)) from None


def port_free(host: str, kind: Kind, port: int) -> bool:
    """Whether PiBuddy could bind there now (bound and released at once, as its servers bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    try:
        if kind == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio and aiohttp bind
        sock.bind((host, port))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    finally:
        sock.close()
    return True


def port_holder(port: int, kind: Kind, proc: Path = Path("/proc")) -> str | None:
    """"name (pid N)" of a process with a socket bound to `port` (TCP: listening), or None when none is
    visible (another user's process without root, another network namespace)."""
    inodes = _socket_inodes(port, kind, proc)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    own = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        if _links(entry / "fd") & wanted:
            pid = int(entry.name)
            return "PiBuddy itself" if pid == own else f"{_name(entry)} (pid {pid})"
    return None


def _links(fds: Path) -> set[str]:
    """Where a process's descriptors point; empty when it is gone or not ours to look at."""
    try:
        entries = list(fds.iterdir())
    except OSError:
        return set()
    links = set()
    for fd in entries:
        with contextlib.suppress(OSError):  # closed meanwhile (the listing's own descriptor, for one)
            links.add(os.readlink(fd))
    return links


def _socket_inodes(port: int, kind: Kind, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in (proc / "net" / kind, proc / "net" / f"{kind}6"):
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or int(fields[1].rsplit(":", 1)[1], 16) != port:
                continue
            if (kind == "udp" or fields[3] == _TCP_LISTEN) and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def _name(process: Path) -> str:
    """The program's name: its command line's first words (python -m pibuddy ...), else its comm."""
    try:
        words = [w.decode(errors="replace") for w in (process / "cmdline").read_bytes().split(b"\0") if w]
        shown = " ".join([os.path.basename(words[0]), *words[1:3]]) if words else ""
        if shown:
            return shown
        return (process / "comm").read_text().strip()
    except OSError:
        return "a program"
