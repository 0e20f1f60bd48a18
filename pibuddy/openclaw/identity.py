"""PiBuddy's OpenClaw device identity (an Ed25519 key kept in the state dir) and its device tokens.

The device id is the lower-case hex SHA-256 of the raw 32-byte public key; the key and signatures travel
as base64url without padding. The key is created once; the gateway pairs that id, so losing the file
means pairing again. Device tokens are issued per role in `hello-ok` and rotate on reconnects, so the
latest one is stored each time.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pibuddy.statedir import StateDir

_LOGGER = logging.getLogger(__name__)
IDENTITY_FILE: Final = "openclaw_identity.json"
TOKENS_FILE: Final = "openclaw_device_tokens.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signature_payload(*, device_id: str, client_id: str, client_mode: str, role: str, scopes: Sequence[str],
                      signed_at_ms: int, token: str, nonce: str) -> str:
    """The v2 string a connect signs: `v2|device|client|mode|role|scopes|signedAt|token|nonce`.

    v2 is accepted by every gateway since January 2026 (v1 is gone, v3 exists only on newer ones), so it is
    the one PiBuddy signs. `token` is exactly what goes in `auth.token` ("" when none).
    """
    fields = ["v2", device_id, client_id, client_mode, role, ",".join(scopes), str(signed_at_ms), token, nonce]
    return "|".join(fields)


@dataclass(frozen=True)
class DeviceIdentity:
    """An Ed25519 key pair and the ids the gateway derives from it."""

    private_key: Ed25519PrivateKey

    @property
    def public_key_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def device_id(self) -> str:
        return hashlib.sha256(self.public_key_raw).hexdigest()

    @property
    def public_key(self) -> str:
        """The raw public key, base64url without padding (43 characters), as `device.publicKey`."""
        return b64url(self.public_key_raw)

    def sign(self, payload: str) -> str:
        """Ed25519 (pure) over the UTF-8 payload, base64url without padding."""
        return b64url(self.private_key.sign(payload.encode("utf-8")))

    @classmethod
    def generate(cls) -> DeviceIdentity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, state: StateDir) -> DeviceIdentity:
        """The identity in the state dir, created (mode 600) on first use; a damaged file is an error, not
        silently replaced, because a new key means a new device the gateway must pair again."""
        data = state.read_json(IDENTITY_FILE)
        if data is None:
            if state.read_text(IDENTITY_FILE) is not None:
                raise ValueError(f"{state.path / IDENTITY_FILE} is damaged; remove it to create a new identity")
            identity = cls.generate()
            pem = identity.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()).decode("ascii")
            state.write_json(IDENTITY_FILE, {"version": 1, "deviceId": identity.device_id,
                                             "privateKeyPem": pem, "createdAtMs": int(time.time() * 1000)})
            _LOGGER.info("created the OpenClaw device identity %s", identity.device_id)
            return identity
        try:
            key = serialization.load_pem_private_key(str(data["privateKeyPem"]).encode("ascii"), password=None)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{state.path / IDENTITY_FILE} holds no usable key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{state.path / IDENTITY_FILE} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(key)


class TokenStore:
    """Device tokens per role for one device id, in the state dir (mode 600)."""

    def __init__(self, state: StateDir, device_id: str) -> None:
        self._state = state
        self._device_id = device_id

    def get(self, role: str) -> str | None:
        entry = self._roles().get(role)
        token = entry.get("token") if isinstance(entry, dict) else None
        return token if isinstance(token, str) and token else None

    def roles(self) -> list[str]:
        return sorted(role for role in self._roles() if self.get(role))

    def put(self, role: str, token: str, scopes: Sequence[str]) -> None:
        if self.get(role) == token:
            return
        roles = self._roles()
        roles[role] = {"token": token, "scopes": list(scopes), "storedAtMs": int(time.time() * 1000)}
        self._state.write_json(TOKENS_FILE, {"deviceId": self._device_id, "roles": roles})

    def forget(self, role: str) -> None:
        roles = self._roles()
        if roles.pop(role, None) is not None:
            self._state.write_json(TOKENS_FILE, {"deviceId": self._device_id, "roles": roles})

    def _roles(self) -> dict[str, object]:
        data = self._state.read_json(TOKENS_FILE)
        if data is None or data.get("deviceId") != self._device_id or not isinstance(data.get("roles"), dict):
            return {}  # tokens of another (older) identity are useless
        return dict(data["roles"])
