"""The JSON control messages (§7), one frozen dataclass per `type`, validated in the constructor.

Constructors raise `LocalProtocolError` (we built a bad message); `parse_message` turns the same checks
into `RemoteProtocolError` subclasses for what a peer sent. Fields a class does not declare are kept in
`extra` and written out again by `to_json()`, so a relay (the gateway) loses nothing: `glyph_push` on
`stt`, `text_font` on `hello`, whatever newer firmware adds. Known fields sent as JSON null are dropped.

Liberal as the firmware (docs/compat.md has the audit, field by field): a field is required only where
the firmware or the reference gateway requires it, a missing optional one is None (its default is
applied where it is used, e.g. `AudioParams.downlink`), and a `state` or `mode` value we do not know
makes the whole message an `UnknownMessage` (ignored, or relayed verbatim) rather than an error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar, Self

from pibuddy.jsonvalues import is_int
from pibuddy.xiaozhi.const import (
    AUDIO_FORMAT,
    DOWNLINK_FRAME_DURATION_DEFAULT_MS,
    DOWNLINK_SAMPLE_RATE_DEFAULT,
    MAX_JSON_MESSAGE_SIZE,
    UPLINK_CHANNELS,
    Role,
)
from pibuddy.xiaozhi.errors import BadJson, InvalidMessage, LocalProtocolError, MessageTooLarge
from pibuddy.xiaozhi.udp_codec import UdpParams

ABORT_REASON_WAKE_WORD: str = "wake_word_detected"

_DEVICE = frozenset({Role.DEVICE})
_SERVER = frozenset({Role.SERVER})
_BOTH = frozenset(Role)


class ListenState(StrEnum):
    START = "start"
    STOP = "stop"
    DETECT = "detect"


class ListenMode(StrEnum):
    AUTO = "auto"
    """The server's VAD ends each turn (AEC off)."""
    MANUAL = "manual"
    """Push-to-talk: the device ends the turn with `listen stop`."""
    REALTIME = "realtime"
    """Barge-in with AEC: the microphone keeps streaming while the device speaks."""


class TtsState(StrEnum):
    START = "start"
    STOP = "stop"
    SENTENCE_START = "sentence_start"
    SENTENCE_END = "sentence_end"


@dataclass(frozen=True, slots=True)
class AudioParams:
    """A hello's `audio_params`."""

    sample_rate: int
    frame_duration: int
    channels: int = UPLINK_CHANNELS
    format: str = AUDIO_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "sample_rate": self.sample_rate, "channels": self.channels,
                "frame_duration": self.frame_duration}

    @classmethod
    def downlink(cls, params: Mapping[str, Any] | None) -> AudioParams:
        """The downlink decoder settings a device takes from a server hello: numbers only, else 24000/60."""
        params = params or {}
        rate, duration = params.get("sample_rate"), params.get("frame_duration")
        return cls(
            rate if is_int(rate) and rate > 0 else DOWNLINK_SAMPLE_RATE_DEFAULT,
            duration if is_int(duration) and duration > 0 else DOWNLINK_FRAME_DURATION_DEFAULT_MS,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Base of every message: `session_id` (device messages carry it first) and unknown `extra` fields.

    Subclasses declare `TYPE`, who may send them (`SENDERS`) and the JSON kind of each field (`KINDS`:
    str, int, Mapping, a StrEnum the string is turned into, or a nested class); fields without a
    default are required.
    """

    TYPE: ClassVar[str] = ""
    SENDERS: ClassVar[frozenset[Role]] = _BOTH
    KINDS: ClassVar[Mapping[str, type]] = {}
    session_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self, "session_id", str, required=False)
        required = _required_names(type(self))
        for name, kind in self.KINDS.items():
            _check(self, name, kind, required=name in required)
        if not isinstance(self.extra, Mapping):
            raise LocalProtocolError(f"{self.TYPE}.extra must be a mapping")
        clash = self.extra.keys() & {"type", "session_id", *_body_names(type(self))}
        if clash:
            raise LocalProtocolError(f"{self.TYPE}.extra repeats declared fields: {sorted(clash)}")

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Self:
        names = (*_body_names(cls), "session_id")
        missing = [name for name in _required_names(cls) if name not in obj]
        if missing:
            raise InvalidMessage(f"{cls.TYPE}: missing {', '.join(missing)}")
        kwargs = {name: obj[name] for name in names if name in obj}
        extra = {k: v for k, v in obj.items() if k not in names and k != "type"}
        try:
            return cls(**cls._convert(kwargs), extra=extra)
        except LocalProtocolError as exc:
            raise InvalidMessage(exc.reason) from exc

    @classmethod
    def _convert(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Turn nested JSON into field values before construction (hello.udp)."""
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.session_id is None else {"session_id": self.session_id}
        out["type"] = self.TYPE
        for name in _body_names(type(self)):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extra)
        return out

    def to_json(self) -> str:
        """Compact JSON, UTF-8 text unescaped, like the firmware's cJSON_PrintUnformatted."""
        try:
            return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                              default=_mapping_to_dict)
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"{self.TYPE} is not serialisable: {exc}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """Both forms: the device's (no session_id, no udp) and the server's (session_id, udp for MQTT).

    Nothing is required here: the firmware checks only a server hello's `transport` (and `udp` over
    MQTT), which `Session` does; the reference gateway requires `version` 3 of a device, which the
    gateway does. Platforms answer without `version` or `session_id` (Xrobot), and that is fine.
    """

    TYPE: ClassVar[str] = "hello"
    KINDS: ClassVar[Mapping[str, type]] = {
        "version": int, "transport": str, "features": Mapping, "udp": UdpParams, "audio_params": Mapping,
    }
    version: int | None = None
    transport: str | None = None
    features: Mapping[str, Any] | None = None
    udp: UdpParams | None = None
    audio_params: Mapping[str, Any] | None = None

    @classmethod
    def _convert(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("udp") is not None:
            kwargs["udp"] = UdpParams.from_dict(kwargs["udp"])
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        # The gateway's order: type, version, session_id, transport, ... (a device hello has no session_id).
        out: dict[str, Any] = {"type": self.TYPE}
        if self.version is not None:
            out["version"] = self.version
        if self.session_id is not None:
            out["session_id"] = self.session_id
        if self.transport is not None:
            out["transport"] = self.transport
        if self.features is not None:
            out["features"] = self.features
        if self.udp is not None:
            out["udp"] = self.udp.to_dict()
        if self.audio_params is not None:
            out["audio_params"] = self.audio_params
        out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Listen(Message):
    TYPE: ClassVar[str] = "listen"
    SENDERS: ClassVar[frozenset[Role]] = _DEVICE
    KINDS: ClassVar[Mapping[str, type]] = {"state": ListenState, "mode": ListenMode, "text": str}
    state: ListenState
    mode: ListenMode | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Abort(Message):
    TYPE: ClassVar[str] = "abort"
    SENDERS: ClassVar[frozenset[Role]] = _DEVICE
    KINDS: ClassVar[Mapping[str, type]] = {"reason": str}
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Mcp(Message):
    """A JSON-RPC 2.0 object for the device's MCP server, or its answer."""

    TYPE: ClassVar[str] = "mcp"
    KINDS: ClassVar[Mapping[str, type]] = {"payload": Mapping}
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Goodbye(Message):
    TYPE: ClassVar[str] = "goodbye"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stt(Message):
    TYPE: ClassVar[str] = "stt"
    SENDERS: ClassVar[frozenset[Role]] = _SERVER
    KINDS: ClassVar[Mapping[str, type]] = {"text": str}
    text: str | None = None
    """The firmware shows it when it is a string and ignores the message otherwise."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Llm(Message):
    TYPE: ClassVar[str] = "llm"
    SENDERS: ClassVar[frozenset[Role]] = _SERVER
    KINDS: ClassVar[Mapping[str, type]] = {"emotion": str, "text": str}
    emotion: str | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Tts(Message):
    TYPE: ClassVar[str] = "tts"
    SENDERS: ClassVar[frozenset[Role]] = _SERVER
    KINDS: ClassVar[Mapping[str, type]] = {"state": TtsState, "text": str}
    state: TtsState
    text: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class System(Message):
    TYPE: ClassVar[str] = "system"
    SENDERS: ClassVar[frozenset[Role]] = _SERVER
    KINDS: ClassVar[Mapping[str, type]] = {"command": str}
    command: str | None = None
    """Only `reboot` does anything on the firmware; without a command the message is ignored."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert(Message):
    TYPE: ClassVar[str] = "alert"
    SENDERS: ClassVar[frozenset[Role]] = _SERVER
    KINDS: ClassVar[Mapping[str, type]] = {"status": str, "message": str, "emotion": str}
    status: str
    message: str
    emotion: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Custom(Message):
    TYPE: ClassVar[str] = "custom"
    KINDS: ClassVar[Mapping[str, type]] = {"payload": Mapping}
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(Message):
    """The gateway's answer to a failed hello; firmware ignores it (§3.4)."""

    TYPE: ClassVar[str] = "error"
    SENDERS: ClassVar[frozenset[Role]] = _SERVER
    KINDS: ClassVar[Mapping[str, type]] = {"message": str}
    message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Iot(Message):
    """Legacy (firmware < 1.8): descriptors/states up, commands down; all fields live in `extra`."""

    TYPE: ClassVar[str] = "iot"


@dataclass(frozen=True, slots=True, kw_only=True)
class UdpTimeout(Message):
    TYPE: ClassVar[str] = "udp_timeout"
    SENDERS: ClassVar[frozenset[Role]] = _DEVICE


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Message):
    TYPE: ClassVar[str] = "ping"
    SENDERS: ClassVar[frozenset[Role]] = _DEVICE


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(Message):
    """xiaozhi-server's answer to ping; its `timestamp` string stays in `extra`."""

    TYPE: ClassVar[str] = "pong"
    SENDERS: ClassVar[frozenset[Role]] = _SERVER


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownMessage(Message):
    """A message whose `type` we do not know; `raw` is the whole object, written back unchanged."""

    KINDS: ClassVar[Mapping[str, type]] = {"type": str, "raw": Mapping}
    type: str
    raw: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.raw)
        if self.session_id is not None:
            out["session_id"] = self.session_id
        return out

    def describe(self) -> str:
        """What is unknown, for a log line: `type 'call_accepted'`, or `tts state 'pause'`."""
        cls = MESSAGE_CLASSES.get(self.type)
        if cls is None:
            return f"type {self.type!r}"
        unknown = [f"{name} {self.raw[name]!r}" for name, kind in cls.KINDS.items()
                   if issubclass(kind, StrEnum) and self.raw.get(name) not in _choices(kind)
                   and isinstance(self.raw.get(name), str)]
        return f"{self.type} {', '.join(unknown)}"


MESSAGE_CLASSES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (Hello, Listen, Abort, Mcp, Goodbye, Stt, Llm, Tts, System, Alert, Custom, Error, Iot,
                UdpTimeout, Ping, Pong)
}


def parse_message(data: str | bytes, *, max_size: int = MAX_JSON_MESSAGE_SIZE) -> Message:
    """Parse one control message; the size cap (bytes, or characters for str) is checked first."""
    if len(data) > max_size:
        raise MessageTooLarge(f"JSON message of {len(data)} bytes exceeds {max_size}")
    try:
        obj = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadJson(f"not JSON: {exc}"[:200]) from None
    if not isinstance(obj, dict):
        raise BadJson(f"JSON {type(obj).__name__} instead of an object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise InvalidMessage("missing or non-string 'type'")
    cls = MESSAGE_CLASSES.get(kind)
    if cls is None or _has_unknown_choice(cls, obj):
        session_id = obj.get("session_id")
        return UnknownMessage(type=kind, raw=obj, session_id=session_id if isinstance(session_id, str) else None)
    try:
        return cls.from_dict(obj)
    except InvalidMessage as exc:
        exc.message_type = kind
        raise


def _has_unknown_choice(cls: type[Message], obj: Mapping[str, Any]) -> bool:
    """A string we do not know in a choice field (`tts` state `pause`): the firmware ignores such a message."""
    return any(
        issubclass(kind, StrEnum) and isinstance(obj.get(name), str) and obj[name] not in _choices(kind)
        for name, kind in cls.KINDS.items()
    )


@cache
def _choices(kind: type[StrEnum]) -> frozenset[str]:
    return frozenset(member.value for member in kind)


def _check(msg: Message, name: str, kind: type, *, required: bool) -> None:
    """Check one field against its declared kind; a string for a StrEnum field becomes the member."""
    value = getattr(msg, name)
    if value is None:
        if required:
            raise LocalProtocolError(f"{msg.TYPE}.{name} is required")
        return
    if issubclass(kind, StrEnum):
        try:
            member = kind(value) if isinstance(value, str) else None
        except ValueError:
            member = None
        if member is None:
            choices = "/".join(kind)
            raise LocalProtocolError(f"{msg.TYPE}.{name} must be one of {choices}, not {value!r}")
        object.__setattr__(msg, name, member)
    elif not (is_int(value) if kind is int else isinstance(value, kind)):
        raise LocalProtocolError(f"{msg.TYPE}.{name} must be {_KIND_NAMES.get(kind, kind.__name__)}")


_KIND_NAMES: dict[type, str] = {str: "a string", int: "an integer", Mapping: "an object"}


# Per-class caches (functools.cache would do, but mypy takes a dataclass's type object for unhashable).
_BODY_NAMES: dict[type, tuple[str, ...]] = {}
_REQUIRED_NAMES: dict[type, tuple[str, ...]] = {}


def _body_names(cls: type[Message]) -> tuple[str, ...]:
    if cls not in _BODY_NAMES:
        _BODY_NAMES[cls] = tuple(f.name for f in fields(cls) if f.name not in ("session_id", "extra"))
    return _BODY_NAMES[cls]


def _required_names(cls: type[Message]) -> tuple[str, ...]:
    if cls not in _REQUIRED_NAMES:
        _REQUIRED_NAMES[cls] = tuple(f.name for f in fields(cls)
                                     if f.default is MISSING and f.default_factory is MISSING)
    return _REQUIRED_NAMES[cls]


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _mapping_to_dict(value: object) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
