"""Gateway frames for unit tests, in the shapes recorded from real gateways, and an in-memory gateway.

No protocol-3 gateway installs here as published (docs/openclaw.md §0), so the protocol-3 frames are the
shapes recorded from 2026.5.7 and read in the January 2026 source (docs/openclaw.md §3.4, §3.5: 512 KiB
maxPayload, `server.host`, `canvasHostUrl`, no `auth.method`, errors without `details.code`). The 2026.9.6
errors are copied from the wire.

`RecordedGateway` is a `FrameTransport` that plays a gateway from these frames and checks each connect's
Ed25519 signature itself (v2 string built here, independently of PiBuddy); its only PiBuddy import is the
`ConnectionLost` the transport contract requires.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CHALLENGE_TS: Final = 1_795_321_861_438

CHALLENGE_V3: Final = {"type": "event", "event": "connect.challenge",
                       "payload": {"nonce": "6cda89ed-dc8b-4aa2-b734-a9d62e148553", "ts": CHALLENGE_TS}}

# 2026.5.7 (protocol 3): server {version, connId}, canvasHostUrl, auth without method, 25 MiB policy.
HELLO_OK_2026_5_7: Final = {
    "type": "hello-ok", "protocol": 3,
    "server": {"version": "2026.5.7", "connId": "0b9f1c52-5a8e-4a51-9b0b-2f6c1f3f7e11"},
    "features": {"methods": ["node.invoke.result", "node.event", "skills.bins"],
                 "events": ["tick", "node.invoke.request", "voicewake.changed", "shutdown"]},
    "snapshot": {"presence": [], "health": {}, "stateVersion": {"presence": 1, "health": 1}, "uptimeMs": 1200,
                 "sessionDefaults": {"defaultAgentId": "main", "mainKey": "main", "mainSessionKey": "agent:main:main"}},
    "canvasHostUrl": "http://127.0.0.1:18789/__openclaw__/cap/Zk3vQ1",
    "auth": {"role": "node", "scopes": [], "deviceToken": "sZ_l27sQp4OnkLj55O1DTWF6pWKEAdp3a8RNxWtECrA",
             "issuedAtMs": 1795321861673},
    "policy": {"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": 30000},
}

# January 2026 (protocol 3): server.host, a 512 KiB frame cap, a 32-hex device token.
HELLO_OK_2026_1: Final = {
    "type": "hello-ok", "protocol": 3,
    "server": {"version": "2026.1.30", "host": "gateway-host", "connId": "c1"},
    "features": {"methods": [], "events": []},
    "snapshot": {"presence": [], "health": {}, "stateVersion": {"presence": 0, "health": 0}, "uptimeMs": 10},
    "auth": {"deviceToken": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "role": "node", "scopes": []},
    "policy": {"maxPayload": 524288, "maxBufferedBytes": 1572864, "tickIntervalMs": 30000},
}

INVOKE_NOTIFY: Final = {"type": "event", "event": "node.invoke.request", "payload": {
    "id": "50f900a9-6fb4-492b-aa77-26d64d4f9645", "nodeId": "<node id>", "command": "system.notify",
    "paramsJSON": "{\"title\":\"Hi\",\"body\":\"hello there\"}", "timeoutMs": 4983,
    "idempotencyKey": "06bceb85-291e-456c-a8c7-3f48615f249b"}}

# Connect errors as 2026.9.6 sends them, and as protocol-3 gateways did (no details.code).
ERROR_PAIRING_2026_9_6: Final = {
    "code": "NOT_PAIRED", "message": "pairing required: device is not approved yet",
    "details": {"code": "PAIRING_REQUIRED", "reason": "not-paired", "requestId": "1f9974b2-4a51-4899-92d3-63176baace7d",
                "remediationHint": "Approve this device from the pending pairing requests.",
                "deviceId": "<device id>", "requestedRole": "node"}}
ERROR_TOKEN_2026_9_6: Final = {
    "code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch (provide gateway auth token)",
    "details": {"code": "AUTH_TOKEN_MISMATCH", "authReason": "token_mismatch", "canRetryWithDeviceToken": True,
                "recommendedNextStep": "retry_with_device_token"}}
ERROR_SIGNATURE_2026_9_6: Final = {"code": "INVALID_REQUEST", "message": "device signature invalid",
                                   "details": {"code": "DEVICE_AUTH_SIGNATURE_INVALID", "reason": "device-signature"}}
ERROR_STALE_2026_9_6: Final = {"code": "INVALID_REQUEST", "message": "device signature expired",
                               "details": {"code": "DEVICE_AUTH_SIGNATURE_EXPIRED",
                                           "reason": "device-signature-stale"}}
ERROR_PAIRING_P3: Final = {"code": "NOT_PAIRED", "message": "pairing required",
                           "details": {"requestId": "7d0c5e8a-5b7e-4c43-9a43-2c4b8f0e9d21"}}
ERROR_TOKEN_P3: Final = {"code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch"}
ERROR_STALE_P3: Final = {"code": "INVALID_REQUEST", "message": "device signature expired"}
ERROR_PROTOCOL_P3: Final = {"code": "INVALID_REQUEST", "message": "protocol mismatch",
                            "details": {"expectedProtocol": 3}}

CHAT_FINAL: Final = {"type": "event", "event": "chat", "seq": 14, "payload": {
    "runId": "e4480593-d847-4399-8c47-15da4c17fe46", "sessionKey": "agent:main:main", "seq": 6, "state": "final",
    "message": {"role": "assistant",
                "content": [{"type": "text", "text": "It is "}, {"type": "text", "text": "noon."}]}}}
CHAT_ERROR: Final = {"type": "event", "event": "chat", "seq": 12, "payload": {
    "runId": "e4480593-d847-4399-8c47-15da4c17fe46", "sessionKey": "agent:main:main", "agentId": "main", "seq": 5,
    "state": "error", "errorMessage": "No route-compatible authentication source is configured for openai."}}


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_connect(params: dict[str, Any], nonce: str) -> None:
    """Raise unless `params.device` is a valid v2 signature over this connect (the gateway's check)."""
    device = params["device"]
    raw_key = _unb64url(device["publicKey"])
    if hashlib.sha256(raw_key).hexdigest() != device["id"]:
        raise ValueError("device id is not the SHA-256 of the public key")
    if device["nonce"] != nonce:
        raise ValueError("nonce mismatch")
    token = (params.get("auth") or {}).get("token") or ""
    signed = "|".join(["v2", device["id"], params["client"]["id"], params["client"]["mode"], params["role"],
                       ",".join(params["scopes"]), str(device["signedAt"]), token, nonce])
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(_unb64url(device["signature"]), signed.encode())
    except InvalidSignature:
        raise ValueError("device signature invalid") from None


class RecordedGateway:
    """An in-memory gateway link: sends the challenge, answers connect with `hello` (or `error`, or the
    token error when the connect presents `refuse_token`), acknowledges node requests, then plays whatever
    the test `push()`es. `sent` holds every frame the client sent, decoded."""

    def __init__(self, hello: dict[str, Any] | None = None, *, error: dict[str, Any] | None = None,
                 refuse_token: str | None = None) -> None:
        self.hello = copy.deepcopy(hello if hello is not None else HELLO_OK_2026_5_7)
        self.error = error
        self.refuse_token = refuse_token
        self.sent: list[dict[str, Any]] = []
        self.connects: list[dict[str, Any]] = []
        self.description = "recorded gateway"
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._inbox.put_nowait(json.dumps(CHALLENGE_V3))
        self.closed = False
        self._sent_more = asyncio.Event()

    def push(self, frame: dict[str, Any] | str) -> None:
        self._inbox.put_nowait(frame if isinstance(frame, str) else json.dumps(frame))

    def drop(self) -> None:
        self._inbox.put_nowait(None)

    async def receive(self) -> str:
        from pibuddy.errors import ConnectionLost  # noqa: PLC0415 - the transport contract's error type

        item = await self._inbox.get()
        if item is None:
            raise ConnectionLost("recorded gateway closed")
        return item

    async def send(self, text: str) -> None:
        frame = json.loads(text)
        self.sent.append(frame)
        self._sent_more.set()
        if frame.get("method") == "connect":
            self.connects.append(frame["params"])
            verify_connect(frame["params"], CHALLENGE_V3["payload"]["nonce"])
            token = (frame["params"].get("auth") or {}).get("token")
            if self.refuse_token is not None and token == self.refuse_token:
                self.push({"type": "res", "id": frame["id"], "ok": False, "error": ERROR_TOKEN_2026_9_6})
            elif self.error is not None:
                self.push({"type": "res", "id": frame["id"], "ok": False, "error": self.error})
            else:
                self.push({"type": "res", "id": frame["id"], "ok": True, "payload": self.hello})
        elif frame.get("method") in ("node.invoke.result", "node.event"):
            self.push({"type": "res", "id": frame["id"], "ok": True, "payload": {"ok": True}})

    async def close(self) -> None:
        self.closed = True

    async def wait_sent(self, method: str, count: int = 1, within: float = 2.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(within):
            while len(found := [f for f in self.sent if f.get("method") == method]) < count:
                self._sent_more.clear()
                await self._sent_more.wait()
        return found
