"""manager-api's OTA and activation endpoints (docs/protocol.md §2.2-§2.4), for the xiaozhi test server."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from .xiaozhi_record import RecordedRequest, ServerRecord
from .xiaozhi_wire import (
    activation_hmac,
    mqtt_client_id,
    mqtt_password,
    mqtt_username,
    reply_topic,
    ws_auth_token,
)

_LOG = logging.getLogger("tests.peers.xiaozhi")
_MAC_RE: Final = re.compile(r"^([0-9A-Za-z]{2}[:-]){5}[0-9A-Za-z]{2}$")  # manager-api's Device-Id check
_REQUEST_ERROR: Final = {"success": False, "message": "request error."}
_ACTIVATION_TIMEOUT_MS: Final = 30000


@dataclass(frozen=True, slots=True)
class MqttBrokerInfo:
    """The broker the OTA answer points devices at, and how credentials are signed for it."""

    host: str = "127.0.0.1"
    port: int = 1883
    signature_key: str = "PiBuddyTest9"
    group: str = "GID_test"
    publish_topic: str = "device-server"
    #: Optional ``keepalive`` (seconds) in the OTA answer; None leaves the firmware default (240).
    keepalive: int | None = None
    #: The endpoint devices are told, when it is not the one the server uses (e.g. a TLS listener on 8883).
    device_endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class OtaSettings:
    activation: bool
    activation_polls: int
    activation_code: str | None
    #: Key the v2 activate body's HMAC must verify against (None: record only, like manager-api).
    activation_hmac_key: bytes | None
    websocket_token: str
    #: xiaozhi-server ``auth_key``; when set (and no fixed token) OTA issues §6.2 HMAC tokens.
    auth_key: str | None
    firmware_version: str | None
    timezone_offset: int = 480


@dataclass(slots=True)
class _Activation:
    code: str
    challenge: str
    polls: int = 0
    done: bool = False


class OtaService:
    """``POST /xiaozhi/ota/`` and ``POST /xiaozhi/ota/activate``."""

    def __init__(
        self,
        settings: OtaSettings,
        record: ServerRecord,
        *,
        ws_url: Callable[[], str],
        mqtt: MqttBrokerInfo | None,
        on_mqtt_device: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._record = record
        self._ws_url = ws_url
        self._mqtt = mqtt
        self._on_mqtt_device = on_mqtt_device
        self._activations: dict[str, _Activation] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/xiaozhi/ota/", self.handle_ota)
        app.router.add_post("/xiaozhi/ota/activate", self.handle_activate)

    async def handle_ota(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        self._record.ota_requests.append(_recorded(request, body))
        device_id, client_id = _identity(request)
        if device_id is None or client_id is None or not isinstance(body, dict):
            return web.json_response(_REQUEST_ERROR)
        application = body.get("application")
        if not isinstance(application, dict):
            # manager-api dereferences it for unknown devices and fails with a server error.
            return web.json_response({"error": "application is required"}, status=500)
        answer: dict[str, Any] = {
            "server_time": {
                "timestamp": int(time.time() * 1000),
                "timeZone": "Asia/Shanghai",
                "timezone_offset": self._settings.timezone_offset,
            },
            "firmware": self._firmware(application, str(request.url.origin())),
            "websocket": {"url": self._ws_url(), "token": self._ws_token(device_id, client_id)},
        }
        if self._mqtt is not None:
            answer["mqtt"] = self._mqtt_credentials(self._mqtt, device_id, client_id, request.remote or "")
            self._on_mqtt_device(answer["mqtt"]["client_id"])
        activation = self._pending_activation(device_id)
        if activation is not None:
            answer["activation"] = {
                "code": activation.code,
                "message": f"{request.host}\n{activation.code}",
                "challenge": activation.challenge,
                "timeout_ms": _ACTIVATION_TIMEOUT_MS,
            }
        return web.json_response(answer)

    async def handle_activate(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        device_id, client_id = _identity(request)
        activation = self._activations.get(device_id or "")
        hmac_valid = self._check_hmac(body, activation)
        self._record.activate_requests.append(_recorded(request, body, hmac_valid=hmac_valid))
        if device_id is None or client_id is None:
            return web.json_response(_REQUEST_ERROR)
        if hmac_valid is False:
            # The real server ignores the HMAC; rejecting lets a test see a wrong one fail loudly.
            return web.json_response({"error": "hmac mismatch"}, status=401)
        if activation is None or activation.done:
            return web.Response(text="success")
        activation.polls += 1
        if activation.polls < self._settings.activation_polls:
            return web.Response(status=202)
        activation.done = True
        return web.Response(text="success")

    def _pending_activation(self, device_id: str) -> _Activation | None:
        if not self._settings.activation:
            return None
        activation = self._activations.get(device_id)
        if activation is None:
            code = self._settings.activation_code or f"{secrets.randbelow(10**6):06d}"
            # manager-api uses the Device-Id as challenge; a random one proves the device echoes
            # the challenge it was given rather than its MAC.
            activation = self._activations[device_id] = _Activation(code, str(uuid.uuid4()))
        return None if activation.done else activation

    def _check_hmac(self, body: Any, activation: _Activation | None) -> bool | None:
        key = self._settings.activation_hmac_key
        if key is None or not isinstance(body, dict):
            return None
        # py-xiaozhi wraps the fields in "Payload"; firmware sends them flat.
        fields = body.get("Payload") if isinstance(body.get("Payload"), dict) else body
        if "hmac" not in fields:
            return None
        challenge = fields.get("challenge")
        given = fields.get("hmac")
        if activation is None or challenge != activation.challenge or not isinstance(given, str):
            return False
        return hmac.compare_digest(activation_hmac(key, challenge), given.lower())

    def _firmware(self, application: dict[str, Any], origin: str) -> dict[str, str]:
        """Echo the device's version (no upgrade) unless a test asks to offer another one."""
        version = self._settings.firmware_version
        if version is None:
            return {"version": str(application.get("version", "")), "url": ""}
        return {"version": version, "url": f"{origin}/xiaozhi/ota/download/pibuddy_{version}.bin"}

    def _ws_token(self, device_id: str, client_id: str) -> str:
        if self._settings.websocket_token or self._settings.auth_key is None:
            return self._settings.websocket_token
        return ws_auth_token(self._settings.auth_key, client_id, device_id, int(time.time()))

    @staticmethod
    def _mqtt_credentials(info: MqttBrokerInfo, device_id: str, client_id: str, peer_ip: str) -> dict[str, Any]:
        cid = mqtt_client_id(info.group, device_id, client_id)
        username = mqtt_username({"ip": peer_ip})
        creds: dict[str, Any] = {
            "endpoint": info.device_endpoint or f"{info.host}:{info.port}",
            "client_id": cid,
            "username": username,
            "password": mqtt_password(info.signature_key, cid, username),
            "publish_topic": info.publish_topic,
            "subscribe_topic": reply_topic(cid),
        }
        if info.keepalive is not None:
            creds["keepalive"] = info.keepalive
        return creds


def _identity(request: web.Request) -> tuple[str | None, str | None]:
    """(Device-Id, Client-Id) when both are valid, else None in the failing slot."""
    device_id = request.headers.get("Device-Id", "")
    client_id = request.headers.get("Client-Id", "")
    return (device_id if _MAC_RE.match(device_id) else None, client_id or None)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return await request.json() if raw else None
    except ValueError:
        _LOG.warning("xiaozhi test server: OTA body is not JSON: %r", raw[:100])
        return None


def _recorded(request: web.Request, body: Any, *, hmac_valid: bool | None = None) -> RecordedRequest:
    return RecordedRequest(request.method, request.path_qs, dict(request.headers), body, hmac_valid)
