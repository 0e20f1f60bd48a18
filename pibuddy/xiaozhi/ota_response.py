"""The OTA server's answer (§2.2): parsed member by member like the firmware, and the transport it offers.

Pure: no I/O. `parse_response(body)` never raises on a malformed member; it drops that member and notes why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from pibuddy.jsonvalues import is_int
from pibuddy.xiaozhi.ota import (
    MAX_RESPONSE_BYTES,
    MQTT_DEFAULT_KEEPALIVE,
    MQTT_TLS_PORT,
    NoTransportOffered,
    OtaFailure,
    OtaUnavailable,
    TransportPreference,
)

_MAX_PORT: Final = 65535
_MAX_KEEPALIVE: Final = 65535  # MQTT's keep-alive field is a u16

# --- The response -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where and as whom to connect over MQTT (§2.3).

    `members` keeps every string and integer member as the server sent it, which is what the firmware
    stores in NVS and what PiBuddy persists; the other fields are the parsed view of it.
    """

    host: str
    port: int
    client_id: str
    username: str
    password: str = field(repr=False)
    publish_topic: str
    subscribe_topic: str
    keepalive: int
    members: Mapping[str, str | int] = field(repr=False, compare=False, hash=False)

    @property
    def tls(self) -> bool:
        """The firmware uses TLS exactly when the port is 8883."""
        return self.port == MQTT_TLS_PORT


@dataclass(frozen=True, slots=True)
class WebsocketSettings:
    """The WebSocket endpoint (§6.1). `version` is the binary framing the server asks for, if any."""

    url: str
    token: str = field(repr=False)
    version: int | None
    members: Mapping[str, str | int] = field(repr=False, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class ServerTime:
    """The server's clock; the firmware sets its clock to local time, timestamp + offset."""

    timestamp_ms: int
    timezone_offset_minutes: int


@dataclass(frozen=True, slots=True)
class FirmwareInfo:
    version: str
    url: str
    force: bool

    def offers_upgrade(self, current: str) -> bool:
        """The firmware's rule: forced, or numerically newer comparing dot-separated integers."""
        if self.force:
            return True
        offered, running = _version_tuple(self.version), _version_tuple(current)
        return offered is not None and running is not None and offered > running


@dataclass(frozen=True, slots=True)
class Activation:
    """The server wants the user to bind this device; `challenge` enables polling `/activate`."""

    code: str
    message: str
    challenge: str | None
    timeout_ms: int | None


@dataclass(frozen=True, slots=True)
class OtaResponse:
    """The parsed OTA answer; every member may be absent. `problems` lists what was dropped and why."""

    mqtt: MqttSettings | None = None
    websocket: WebsocketSettings | None = None
    server_time: ServerTime | None = None
    firmware: FirmwareInfo | None = None
    activation: Activation | None = None
    problems: tuple[str, ...] = ()


class _Member:
    """Typed access to one JSON object member, recording a problem for each field it has to drop."""

    def __init__(self, name: str, data: Mapping[str, Any], problems: list[str]) -> None:
        self.name = name
        self.data = data
        self.problems = problems

    def problem(self, key: str, why: str) -> None:
        self.problems.append(f"{self.name}.{key}: {why}")

    def string(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        self.problem(key, f"not a string ({type(value).__name__})")
        return None

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not is_int(value):
            self.problem(key, f"not an integer ({type(value).__name__})")
            return None
        if not low <= value <= high:
            self.problem(key, f"{value} out of range {low}..{high}")
            return None
        return value

    def scalars(self) -> Mapping[str, str | int]:
        """Every string and integer member, the way the firmware copies them into NVS."""
        return MappingProxyType({k: v for k, v in self.data.items() if isinstance(v, str) or is_int(v)})


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` → (host, port); the port defaults to 8883 (TLS)."""
    if endpoint.startswith("["):
        host, bracket, rest = endpoint[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed IPv6 endpoint {endpoint!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = endpoint.partition(":")
        port_text = port_text_or_empty if colon else None
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise ValueError(f"no usable host in {endpoint!r}")
    if port_text is None:
        return host, MQTT_TLS_PORT
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= _MAX_PORT:
        raise ValueError(f"bad port in {endpoint!r}")
    return host, int(port_text)


def _parse_mqtt(member: _Member) -> MqttSettings | None:
    endpoint = member.string("endpoint")
    if not endpoint:
        member.problem("endpoint", "missing; mqtt ignored")
        return None
    try:
        host, port = split_endpoint(endpoint)
    except ValueError as exc:
        member.problem("endpoint", f"{exc}; mqtt ignored")
        return None
    keepalive = member.integer("keepalive", 0, _MAX_KEEPALIVE)
    return MqttSettings(
        host=host,
        port=port,
        client_id=member.string("client_id") or "",
        username=member.string("username") or "",
        password=member.string("password") or "",
        publish_topic=member.string("publish_topic") or "",
        subscribe_topic=member.string("subscribe_topic") or "",
        keepalive=MQTT_DEFAULT_KEEPALIVE if keepalive is None else keepalive,
        members=member.scalars(),
    )


def _parse_websocket(member: _Member) -> WebsocketSettings | None:
    url = member.string("url")
    if not url or not url.lower().startswith(("ws://", "wss://")):
        member.problem("url", "missing or not a ws:// or wss:// URL; websocket ignored")
        return None
    return WebsocketSettings(
        url=url,
        token=member.string("token") or "",
        version=member.integer("version", 1, 3),
        members=member.scalars(),
    )


def _parse_server_time(member: _Member) -> ServerTime | None:
    timestamp = member.data.get("timestamp")
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool) or not math.isfinite(timestamp):
        member.problem("timestamp", "missing or not a number; server_time ignored")
        return None
    offset = member.integer("timezone_offset", -24 * 60, 24 * 60)
    return ServerTime(int(timestamp), 0 if offset is None else offset)


def _parse_firmware(member: _Member) -> FirmwareInfo | None:
    version = member.string("version")
    if version is None:
        member.problem("version", "missing; firmware ignored")
        return None
    force = member.data.get("force")
    return FirmwareInfo(version, member.string("url") or "", force is True or (is_int(force) and force == 1))


def _parse_activation(member: _Member) -> Activation | None:
    code = member.string("code") or ""
    challenge = member.string("challenge") or None
    if not code and challenge is None:
        return None  # the firmware's test: neither a code nor a challenge means nothing to do
    return Activation(code, member.string("message") or "", challenge, member.integer("timeout_ms", 0, 2**31 - 1))


_MEMBER_PARSERS: Final[dict[str, Callable[[_Member], Any]]] = {
    "mqtt": _parse_mqtt,
    "websocket": _parse_websocket,
    "server_time": _parse_server_time,
    "firmware": _parse_firmware,
    "activation": _parse_activation,
}


def response_from_json(data: Mapping[str, Any]) -> OtaResponse:
    """Parse each known member of an OTA answer independently; unknown members are ignored."""
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    for name, parse in _MEMBER_PARSERS.items():
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(f"{name}: not an object ({type(value).__name__}); ignored")
            continue
        parsed[name] = parse(_Member(name, value, problems))
    return OtaResponse(**parsed, problems=tuple(problems))


def parse_response(body: bytes | str) -> OtaResponse:
    """Parse the body of a 200 answer; raise `OtaUnavailable` if it is not a usable OTA answer."""
    if len(body) > MAX_RESPONSE_BYTES:
        raise OtaUnavailable(f"OTA answer too large ({len(body)} bytes)", reason=OtaFailure.BAD_BODY)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: deep nesting
        raise OtaUnavailable(f"OTA answer is not JSON: {_preview(body)}", reason=OtaFailure.BAD_BODY) from None
    if not isinstance(data, dict):
        raise OtaUnavailable(f"OTA answer is a JSON {type(data).__name__}, not an object", reason=OtaFailure.BAD_BODY)
    # xiaozhi-server answers {"success": false, "message": ...} with HTTP 200; manager-api uses "error".
    if data.get("success") is False or isinstance(data.get("error"), str):
        why = data.get("message") if data.get("success") is False else data.get("error")
        raise OtaUnavailable(f"OTA server refused the request: {_preview(str(why))}", reason=OtaFailure.REJECTED)
    return response_from_json(data)


def _preview(body: bytes | str, limit: int = 80) -> str:
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def _version_tuple(version: str) -> tuple[int, ...] | None:
    parts = version.split(".")
    if not all(p.isascii() and p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


# --- Choosing the transport ---------------------------------------------------------------------


def choose_transport(
    response: OtaResponse, preference: str = TransportPreference.AUTO
) -> MqttSettings | WebsocketSettings:
    """The firmware's rule (MQTT+UDP when offered, else WebSocket), narrowed by the configured preference.

    Raises `NoTransportOffered` when what is allowed is not offered; `ValueError` for an unknown preference.
    """
    wanted = TransportPreference(preference)
    if wanted in (TransportPreference.AUTO, TransportPreference.MQTT) and response.mqtt is not None:
        return response.mqtt
    if wanted in (TransportPreference.AUTO, TransportPreference.WEBSOCKET) and response.websocket is not None:
        return response.websocket
    offered = [name for name in ("mqtt", "websocket") if getattr(response, name) is not None]
    raise NoTransportOffered(
        f"upstream.transport is {wanted.value} but the OTA server offers {' and '.join(offered) or 'no transport'}"
    )
