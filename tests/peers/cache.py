"""Build-once installs of the heavy test peers (Home Assistant, the OpenClaw gateway).

Each install lives in `${PIBUDDY_TEST_CACHE:-~/.cache/pibuddy-tests}/<name>-<version>/`. It is built where it
stays (venv scripts hard-code their path) under a lock file, so two test processes never build it at once,
and counts as complete only once its marker file is written, so an interrupted build is redone, not used.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

Progress = Callable[[str], None]

_MARKER: Final = ".pibuddy-complete"
_SHOWN_PREFIXES: Final = ("Collecting", "Successfully", "Installing", "ERROR", "added", "npm error")
# pip's and npm's words for "the package index cannot be reached".
_NO_NETWORK_MARKERS: Final = (
    "NewConnectionError",
    "Network is unreachable",
    "Temporary failure in name resolution",
    "No matching distribution found",
    "Could not find a version that satisfies",
    "ENOTFOUND",
    "EAI_AGAIN",
    "ECONNREFUSED",
    "ETIMEDOUT",
)
_TAIL_LINES: Final = 40


class InstallImpossible(RuntimeError):
    """A peer cannot be installed here (no route to PyPI or npm): tests skip rather than fail."""


def cache_root() -> Path:
    return Path(os.environ.get("PIBUDDY_TEST_CACHE") or Path.home() / ".cache" / "pibuddy-tests").expanduser()


def cached_install(name: str, version: str, build: Callable[[Path], None], *, label: str,
                   progress: Progress) -> Path:
    """`<cache root>/<name>-<version>`, first built by `build(directory)` unless an earlier build completed.

    `build` gets a directory that does not exist yet and raises if the result is unusable; `label` names the
    peer in progress lines ("Home Assistant").
    """
    root = cache_root()
    target = root / f"{name}-{version}"
    marker = target / _MARKER
    if marker.exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}-{version}.lock", "w") as lock:
        progress(f"waiting for the {label} {version} build lock in {root}")
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():  # another process built it while we waited
            return target
        shutil.rmtree(target, ignore_errors=True)
        build(target)
        marker.write_text(f"{name} {version}\n")
    progress(f"{label} {version} is installed in {target}")
    return target


def run_step(command: list[str], progress: Progress, *, what: str, sources: str,
             env: dict[str, str] | None = None, heartbeat_seconds: float | None = None) -> None:
    """Run one install step, passing pip's and npm's interesting lines to `progress` (and any line after
    `heartbeat_seconds` of silence, when given).

    Raises `InstallImpossible` when the output says `sources` ("PyPI") cannot be reached, else RuntimeError
    with the output's tail.
    """
    tail: list[str] = []
    last_shown = 0.0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-_TAIL_LINES:], line.rstrip()]
            now = time.monotonic()
            if line.startswith(_SHOWN_PREFIXES) or (heartbeat_seconds is not None
                                                     and now - last_shown > heartbeat_seconds):
                progress("  " + line.rstrip()[:150])
                last_shown = now
    if proc.returncode != 0:
        text = "\n".join(tail)
        if any(marker in text for marker in _NO_NETWORK_MARKERS):
            raise InstallImpossible(f"cannot install {what} (no route to {sources}?):\n{text}")
        raise RuntimeError(f"{' '.join(command[:4])} failed with exit code {proc.returncode}:\n{text}")
