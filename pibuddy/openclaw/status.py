"""What the OpenClaw sessions last did, kept in the state dir for `pibuddy openclaw status`.

One small JSON file, one entry per role: `state` (connecting, connected, waiting-approval, error), the
pending request id, the gateway's version, and the last error with its advice. Secrets never go here.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, Final

from pibuddy.statedir import StateDir

STATUS_FILE: Final = "openclaw_status.json"


class SessionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING_APPROVAL = "waiting-approval"
    ERROR = "error"


class StatusFile:
    def __init__(self, state: StateDir) -> None:
        self._state = state

    def read(self) -> dict[str, Any]:
        return self._state.read_json(STATUS_FILE) or {}

    def update(self, role: str, state: SessionState, **fields: Any) -> None:
        """Replace `role`'s entry, keeping its last error unless a new one is given."""
        data = self.read()
        raw = data.get(role)
        previous: dict[str, Any] = raw if isinstance(raw, dict) else {}
        entry = {"state": str(state), "updatedAtMs": int(time.time() * 1000), **fields}
        if "lastError" not in entry and previous.get("lastError"):
            entry["lastError"] = previous["lastError"]
        data[role] = entry
        self._state.write_json(STATUS_FILE, data)
