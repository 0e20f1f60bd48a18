"""The gateway's three frame kinds, as frozen dataclasses, and their codec (text in, frame out).

Frames are UTF-8 JSON text, one object per WebSocket message (or MQTT payload). `parse_frame` checks the
size before decoding and the shape after, and raises `FrameError` for anything else: the caller logs one
line and drops it. No I/O here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from pibuddy.jsonvalues import is_int
from pibuddy.openclaw.errors import ErrorShape, FrameError


@dataclass(frozen=True, slots=True)
class RequestFrame:
    """`{"type":"req"}`: the only frame a client sends."""

    method: str
    params: Any = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_json(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "req", "id": self.id, "method": self.method}
        if self.params is not None:
            frame["params"] = self.params
        return frame


@dataclass(frozen=True, slots=True)
class ResponseFrame:
    """`{"type":"res"}`: the answer to the request with the same id (some methods answer twice)."""

    id: str
    ok: bool
    payload: Any = None
    error: ErrorShape | None = None

    def to_json(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "res", "id": self.id, "ok": self.ok}
        if self.payload is not None:
            frame["payload"] = self.payload
        if self.error is not None:
            frame["error"] = {"code": self.error.code, "message": self.error.message, "details": self.error.details}
        return frame


@dataclass(frozen=True, slots=True)
class EventFrame:
    """`{"type":"event"}`: broadcasts carry `seq`; events sent to one node carry none."""

    event: str
    payload: Any = None
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "event", "event": self.event}
        if self.payload is not None:
            frame["payload"] = self.payload
        if self.seq is not None:
            frame["seq"] = self.seq
        return frame


Frame = RequestFrame | ResponseFrame | EventFrame


def encode(frame: Frame) -> str:
    return json.dumps(frame.to_json(), ensure_ascii=False, separators=(",", ":"))


def parse_frame(text: str | bytes, *, max_bytes: int) -> Frame:
    """Decode one frame of at most `max_bytes` bytes, or raise `FrameError` saying what is wrong."""
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise FrameError(f"frame of {size} bytes is larger than the {max_bytes}-byte limit")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FrameError(f"frame is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise FrameError(f"frame is a JSON {type(data).__name__}, not an object")
    kind = data.get("type")
    if kind == "event":
        name, seq = data.get("event"), data.get("seq")
        if not isinstance(name, str) or not name:
            raise FrameError("event frame without an event name")
        return EventFrame(name, data.get("payload"), seq if is_int(seq) else None)
    if kind == "res":
        frame_id, ok = data.get("id"), data.get("ok")
        if not isinstance(frame_id, str) or not isinstance(ok, bool):
            raise FrameError("response frame without a string id and a boolean ok")
        error = None if ok else ErrorShape.from_json(data.get("error"))
        return ResponseFrame(frame_id, ok, data.get("payload"), error)
    if kind == "req":
        frame_id, method = data.get("id"), data.get("method")
        if not isinstance(frame_id, str) or not frame_id or not isinstance(method, str) or not method:
            raise FrameError("request frame without a string id and method")
        return RequestFrame(method, data.get("params"), frame_id)
    raise FrameError(f"unknown frame type {kind!r}")
