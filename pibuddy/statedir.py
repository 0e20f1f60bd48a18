"""The state dir: where PiBuddy keeps what it generates (identity, keys, tokens), readable only by us.

The service runs as its own user (pibuddy) while CLIs are often run with sudo. So, as root, whatever
PiBuddy creates in the state dir takes the owner of the directory it is created in; otherwise a root-owned
0600 file would lock the service out of its own state.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pwd
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from pibuddy.errors import PiBuddyError


class StatePermissionError(PiBuddyError, PermissionError):
    """A state file or the state dir is not accessible to the user PiBuddy runs as; says how to fix it. The
    user must act, so the supervisor says it once as an ERROR.

    Still a PermissionError, so callers that handle OSError keep working.
    """

    log_level = logging.ERROR

    def __init__(self, path: Path, state_dir: Path, action: str, setting: str | None = None) -> None:
        user = _user_name()
        elsewhere = f", or set {setting} to a place {user} can write" if setting else ""
        message = (f"cannot {action} {path}: permission denied for user {user} (owned by root after a run with "
                   f"sudo?); fix: sudo chown -R {user}: {state_dir}{elsewhere}")
        super().__init__(errno.EACCES, message, str(path))

    def __str__(self) -> str:
        return str(self.strerror)


class StateStorageError(PiBuddyError, OSError):
    """The state dir's filesystem refuses a write (full, read-only, over quota); says how to fix it. The user
    must act, so the supervisor says it once as an ERROR."""

    log_level = logging.ERROR
    _FIXES: ClassVar[dict[int, str]] = {
        errno.ENOSPC: "no space left on that filesystem; free some space (df -h {dir})",
        errno.EDQUOT: "the disk quota is used up; free some space",
        errno.EROFS: "the filesystem is read-only; remount it read-write",
    }

    def __init__(self, code: int, path: Path, state_dir: Path, setting: str = "device.state_dir") -> None:
        fix = self._FIXES[code].format(dir=state_dir)
        super().__init__(code, f"cannot write {path}: {fix}, or set {setting} to a writable place", str(path))

    def __str__(self) -> str:
        return str(self.strerror)

    @classmethod
    def of(cls, exc: OSError, path: Path, state_dir: Path, setting: str = "device.state_dir") -> OSError:
        """This error for a full or read-only filesystem, else `exc` itself (to be raised as it was)."""
        if exc.errno is not None and exc.errno in cls._FIXES:
            return cls(exc.errno, path, state_dir, setting)
        return exc


class StateDir:
    """Reads and atomically writes small files in the state dir; created 0700, files 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def ensure(self) -> Path:
        """Create the dir (and missing parents) if needed; as root, each new dir takes its parent's owner."""
        try:
            missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            for created in reversed(missing):
                _adopt_owner(created, created.parent)
        except PermissionError:
            raise StatePermissionError(self.path, self.path, "create") from None
        except OSError as exc:
            raise StateStorageError.of(exc, self.path, self.path) from None
        return self.path

    def read_text(self, name: str) -> str | None:
        target = self.path / name
        try:
            return target.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except PermissionError:
            raise StatePermissionError(target, self.path, "read") from None

    def write_text(self, name: str, text: str) -> Path:
        """Write `name` atomically with mode 600 (secrets never exist world-readable, even briefly)."""
        directory = self.ensure()
        target = directory / name
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")  # mkstemp creates 0600
        except PermissionError:
            raise StatePermissionError(target, directory, "write") from None
        except OSError as exc:
            raise StateStorageError.of(exc, target, directory) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                _adopt_owner(handle.fileno(), directory)
                handle.write(text)
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise StateStorageError.of(exc, target, directory) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def read_json(self, name: str) -> dict[str, Any] | None:
        text = self.read_text(name)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        return self.write_text(name, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _adopt_owner(target: int | Path, directory: Path) -> None:
    """As root, give `target` (a path or an open fd) the owner and group of `directory`."""
    if os.geteuid() == 0:
        owner = directory.stat()
        os.chown(target, owner.st_uid, owner.st_gid)


def _user_name() -> str:
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
