"""The connect handshake as data: the challenge, the signed `connect` params, and `hello-ok`.

Sequence (every gateway since January 2026): the gateway's first frame is the `connect.challenge` event;
the client answers with one `connect` request signed over the challenge's nonce, with `signedAt` = the
challenge's `ts` (so clock skew cannot make it stale); the gateway answers `hello-ok` or an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from pibuddy.jsonvalues import is_int
from pibuddy.openclaw.errors import FrameError
from pibuddy.openclaw.frames import EventFrame
from pibuddy.openclaw.identity import DeviceIdentity, signature_payload

MIN_PROTOCOL: Final = 3  # node sessions: every gateway since January 2026
MAX_PROTOCOL: Final = 4  # current gateways; operator sessions need it there
CHALLENGE_EVENT: Final = "connect.challenge"
# Protocol-3 gateways sent no policy in some builds; their frame cap was 512 KiB.
_DEFAULT_MAX_PAYLOAD: Final = 512 * 1024
_DEFAULT_TICK_MS: Final = 30_000


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """`connect.client`. id and mode come from the gateway's closed lists; keep all four stable per
    identity, because changing them makes the gateway ask for approval again ("metadata-upgrade")."""

    id: str
    mode: str
    version: str
    display_name: str
    instance_id: str
    platform: str = "linux"
    device_family: str = "Linux"  # with platform "linux" it selects the linux command allowlist

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "mode": self.mode, "version": self.version, "platform": self.platform,
                "deviceFamily": self.device_family, "displayName": self.display_name,
                "instanceId": self.instance_id}


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """What a session asks for: its role, operator scopes, and (for a node) caps and commands."""

    role: str
    scopes: tuple[str, ...] = ()
    caps: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    permissions: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Challenge:
    nonce: str
    ts: int

    @classmethod
    def from_event(cls, frame: EventFrame) -> Challenge:
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        nonce, ts = payload.get("nonce"), payload.get("ts")
        if frame.event != CHALLENGE_EVENT or not isinstance(nonce, str) or not nonce or not is_int(ts):
            raise FrameError(f"expected a {CHALLENGE_EVENT} with a nonce and ts, got {frame.event!r}")
        return cls(nonce, ts)


def connect_params(*, challenge: Challenge, identity: DeviceIdentity, client: ClientInfo, spec: SessionSpec,
                   token: str | None, locale: str = "en-US", user_agent: str = "pibuddy") -> dict[str, Any]:
    """The `connect` params, signed (v2) over the challenge. `token` is the shared or the device token."""
    signature = identity.sign(signature_payload(
        device_id=identity.device_id, client_id=client.id, client_mode=client.mode, role=spec.role,
        scopes=spec.scopes, signed_at_ms=challenge.ts, token=token or "", nonce=challenge.nonce))
    params: dict[str, Any] = {
        "minProtocol": MIN_PROTOCOL,
        "maxProtocol": MAX_PROTOCOL,
        "client": client.to_json(),
        "role": spec.role,
        "scopes": list(spec.scopes),
        "caps": list(spec.caps),
        "commands": list(spec.commands),
        "permissions": dict(spec.permissions),
        "locale": locale,
        "userAgent": user_agent,
        "device": {"id": identity.device_id, "publicKey": identity.public_key, "signature": signature,
                   "signedAt": challenge.ts, "nonce": challenge.nonce},
    }
    if token:
        params["auth"] = {"token": token}  # auth.deviceToken does not exist on protocol-3 gateways
    return params


@dataclass(frozen=True, slots=True)
class HelloOk:
    """What PiBuddy uses from `hello-ok` (protocol 3 and 4 shapes)."""

    protocol: int
    server_version: str
    conn_id: str
    role: str
    scopes: tuple[str, ...]
    device_token: str | None
    auth_method: str
    max_payload: int
    tick_interval_ms: int
    main_session_key: str

    @classmethod
    def from_payload(cls, payload: object) -> HelloOk:
        if not isinstance(payload, dict) or payload.get("type") != "hello-ok" or not is_int(payload.get("protocol")):
            raise FrameError("connect succeeded without a hello-ok payload")
        server = _dict(payload.get("server"))
        auth = _dict(payload.get("auth"))
        policy = _dict(payload.get("policy"))
        defaults = _dict(_dict(payload.get("snapshot")).get("sessionDefaults"))
        token = auth.get("deviceToken")
        scopes = auth.get("scopes")
        max_payload, tick = policy.get("maxPayload"), policy.get("tickIntervalMs")
        return cls(
            protocol=payload["protocol"],
            server_version=str(server.get("version") or "unknown"),
            conn_id=str(server.get("connId") or ""),
            role=str(auth.get("role") or ""),
            scopes=tuple(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else (),
            device_token=token if isinstance(token, str) and token else None,
            # protocol 3 does not say how the connect authenticated
            auth_method=str(auth.get("method") or "unknown"),
            max_payload=max_payload if is_int(max_payload) and max_payload > 0 else _DEFAULT_MAX_PAYLOAD,
            tick_interval_ms=tick if is_int(tick) and tick > 0 else _DEFAULT_TICK_MS,
            main_session_key=str(defaults.get("mainSessionKey") or "agent:main:main"),
        )


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}

