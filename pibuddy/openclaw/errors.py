"""Typed OpenClaw errors: what the gateway refused, and the one sentence that tells the user what to do.

A refused `connect` becomes a `GatewayRejected` leaf chosen from `details.code` (the gateway's
machine-readable reason), so callers branch on the class, never on message text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pibuddy.errors import PiBuddyError


class OpenClawError(PiBuddyError):
    """Root of the OpenClaw errors."""


class FrameError(OpenClawError):
    """A frame from the peer is not valid protocol (garbage JSON, wrong shape, too large)."""


@dataclass(frozen=True, slots=True)
class ErrorShape:
    """The gateway's `error` object: `code`, `message` and the optional extras."""

    code: str
    message: str
    details: dict[str, Any]
    retryable: bool = False

    @property
    def detail_code(self) -> str:
        value = self.details.get("code")
        return value if isinstance(value, str) else ""

    @classmethod
    def from_json(cls, data: object) -> ErrorShape:
        if not isinstance(data, dict):
            return cls("UNKNOWN", "the gateway sent no error details", {})
        details = data.get("details")
        return cls(str(data.get("code") or "UNKNOWN"), str(data.get("message") or "no message"),
                   details if isinstance(details, dict) else {}, data.get("retryable") is True)


class RequestFailed(OpenClawError):
    """A request got `ok:false`."""

    def __init__(self, method: str, error: ErrorShape) -> None:
        super().__init__(f"{method} failed: {error.code}: {error.message}")
        self.method = method
        self.error = error


class GatewayRejected(OpenClawError):
    """The gateway refused the handshake. `advice` is the sentence for the log and `pibuddy openclaw status`."""

    _advice: str = "see the gateway log (openclaw logs --follow)"

    def __init__(self, error: ErrorShape) -> None:
        self.error = error
        super().__init__(f"the OpenClaw gateway refused the connection: {error.message} ({self.advice})")

    @property
    def advice(self) -> str:
        return self._advice


class PairingRequired(GatewayRejected):
    """The device (or a new role, or changed metadata) waits for `openclaw devices approve <requestId>`."""

    @property
    def request_id(self) -> str:
        value = self.error.details.get("requestId")
        return value if isinstance(value, str) else ""

    @property
    def reason(self) -> str:
        value = self.error.details.get("reason")
        return value if isinstance(value, str) else "not-paired"

    @property
    def advice(self) -> str:
        return f"approve it on the gateway host: openclaw devices approve {self.request_id or '<requestId>'}"


class AuthRejected(GatewayRejected):
    _advice = "the gateway token is wrong: set openclaw.token to the gateway's token (gateway.auth.token)"


class SignatureRejected(GatewayRejected):
    _advice = "the gateway did not accept PiBuddy's device signature (identity file damaged or protocol changed)"


class SignatureExpired(GatewayRejected):
    _advice = "the signature's time is too far from the gateway's clock: check that both clocks are synchronised"


class ProtocolMismatch(GatewayRejected):
    _advice = "this gateway speaks a protocol PiBuddy does not (PiBuddy supports 3 and 4): update one of them"


class IdentityRequired(GatewayRejected):
    _advice = "the gateway wants a device identity; PiBuddy sent none (a bug)"


_BY_DETAIL_CODE: Final[dict[str, type[GatewayRejected]]] = {
    "PAIRING_REQUIRED": PairingRequired,
    "AUTH_TOKEN_MISMATCH": AuthRejected,
    "AUTH_UNAUTHORIZED": AuthRejected,
    "DEVICE_AUTH_SIGNATURE_INVALID": SignatureRejected,
    "DEVICE_AUTH_NONCE_MISMATCH": SignatureRejected,
    "DEVICE_AUTH_NONCE_REQUIRED": SignatureRejected,
    "DEVICE_AUTH_DEVICE_ID_MISMATCH": SignatureRejected,
    "DEVICE_AUTH_PUBLIC_KEY_INVALID": SignatureRejected,
    "DEVICE_AUTH_SIGNATURE_EXPIRED": SignatureExpired,
    "PROTOCOL_MISMATCH": ProtocolMismatch,
    "DEVICE_IDENTITY_REQUIRED": IdentityRequired,
}


def rejection(error: ErrorShape) -> GatewayRejected:
    """The typed rejection for a failed `connect`.

    Protocol-3 gateways send no `details.code`; their codes and messages are matched instead.
    """
    kind = _BY_DETAIL_CODE.get(error.detail_code)
    if kind is None:
        message = error.message.lower()
        if error.code == "NOT_PAIRED" and "pairing required" in message:
            kind = PairingRequired
        elif "unauthorized" in message:
            kind = AuthRejected
        elif "signature expired" in message:
            kind = SignatureExpired
        elif "signature" in message or "device identity mismatch" in message:
            kind = SignatureRejected
        elif "protocol mismatch" in message:
            kind = ProtocolMismatch
        else:
            kind = GatewayRejected
    return kind(error)
