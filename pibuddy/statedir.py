"""The state dir: where PiBuddy keeps what it generates (identity, keys, tokens), readable only by us."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class StateDir:
    """Reads and atomically writes small files in the state dir; created 0700, files 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def ensure(self) -> Path:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.path

    def read_text(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def write_text(self, name: str, text: str) -> Path:
        """Write `name` atomically with mode 600 (secrets never exist world-readable, even briefly)."""
        directory = self.ensure()
        target = directory / name
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.")  # mkstemp creates 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, target)
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
