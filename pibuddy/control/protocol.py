"""The control socket's wire format: one JSON object per line each way, one request per connection.

    -> {"op": "volume", "percent": 40}
    <- {"ok": true, "result": {"volume": 40}}
    <- {"ok": false, "error": "volume must be 0 to 100, not 140"}
"""

from __future__ import annotations

import json
from typing import Any, Final

MAX_LINE_BYTES: Final = 64 * 1024
"""Requests are small; answers (status, history) may be larger, the client allows `MAX_ANSWER_BYTES`."""
MAX_ANSWER_BYTES: Final = 8 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def ok(result: Any) -> bytes:
    return encode({"ok": True, "result": result})


def error(message: str) -> bytes:
    return encode({"ok": False, "error": message})
