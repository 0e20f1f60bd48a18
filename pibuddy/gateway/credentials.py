"""Device credentials and the gateway's tokens (docs/protocol.md §2.3, §3.3, §6.2, §8.1, §9.1).

Pure functions: no sockets, no clock (callers pass the time), so §12.3's vectors test them directly.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Final

from pibuddy.gateway.mqtt_codec import ConnackCode
from pibuddy.macaddr import parse_mac
from pibuddy.xiaozhi.errors import RemoteProtocolError

CLIENT_ID_SEPARATOR: Final = "@@@"
PUBLISH_TOPIC: Final = "device-server"
REPLY_TOPIC_PREFIX: Final = "devices/p2p/"
_WEAK_KEY_WORDS: Final = ("test", "1234", "admin", "password", "qwerty", "xiaozhi")
_MIN_KEY_LENGTH: Final = 8
_GENERATED_KEY_BYTES: Final = 24
_DEFAULT_WS_CLIENT_ID: Final = "default-client-id"


class CredentialRejected(RemoteProtocolError):
    """A CONNECT whose client id, user name or password is not acceptable; `hint` is the CONNACK code."""

    default_hint = ConnackCode.NOT_AUTHORIZED


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """Who a validated MQTT connection is."""

    client_id: str
    group: str
    mac: str
    """Colon form, lower case: the device id of §1."""
    uuid: str | None
    """The third client-id part; None for legacy 2-part ids."""
    user_data: dict[str, Any] = field(default_factory=dict)
    """The decoded user name, with `ip` set to the TCP peer's address."""
    topic_mac: str | None = None
    """The MAC part as the client id spells it (`AA_BB_…` stays so): the reference's reply topic uses it."""

    @property
    def reply_topic(self) -> str:
        """Where messages to the device are published (it never subscribes; §3.2)."""
        return REPLY_TOPIC_PREFIX + (self.topic_mac or self.mac.replace(":", "_"))


def sign_password(key: str, client_id: str, username: str) -> str:
    """Base64(HMAC-SHA256(key, client_id + "|" + username)), the MQTT password of §2.3."""
    digest = hmac.new(key.encode(), f"{client_id}|{username}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def validate_client(
    client_id: str, username: str | None, password: bytes | None, peer_ip: str, *, key: str, allow_two_part: bool
) -> DeviceIdentity:
    """Check a CONNECT's credentials as §3.3 does, stricter: constant-time compare, MAC shape always checked.

    Raises `CredentialRejected` with hint 2 (client-id shape), 4 (signature or user name) or 5 (legacy id
    refused by config).
    """
    parts = client_id.split(CLIENT_ID_SEPARATOR)
    ip = peer_ip.removeprefix("::ffff:")
    if len(parts) == 3:
        group, mac_part, uuid = parts
        mac = _client_id_mac(mac_part, client_id)
        expected = sign_password(key, client_id, username or "").encode()
        if username is None or password is None or not hmac.compare_digest(expected, password):
            raise CredentialRejected(f"bad signature for {client_id!r}", hint=ConnackCode.BAD_USERNAME_OR_PASSWORD)
        user_data = _decode_user_data(username) | {"ip": ip}
        return DeviceIdentity(client_id, group, mac, uuid, user_data, topic_mac=mac_part)
    if len(parts) == 2:
        group, mac_part = parts
        if not allow_two_part:
            raise CredentialRejected(f"2-part client id {client_id!r} refused (gateway.allow_two_part_client_ids)")
        mac = _client_id_mac(mac_part, client_id)
        return DeviceIdentity(client_id, group, mac, None, {"ip": ip}, topic_mac=mac_part)
    raise CredentialRejected(f"client id {client_id!r} is not group@@@mac@@@uuid",
                             hint=ConnackCode.IDENTIFIER_REJECTED)


def _client_id_mac(mac_part: str, client_id: str) -> str:
    mac = parse_mac(mac_part)
    if mac is None:
        raise CredentialRejected(f"client id {client_id!r}: {mac_part!r} is not a MAC address (aa_bb_cc_dd_ee_ff)",
                                 hint=ConnackCode.IDENTIFIER_REJECTED)
    return mac


def _decode_user_data(username: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.b64decode(username, validate=True))
    except (binascii.Error, ValueError):
        data = None
    if not isinstance(data, dict):
        raise CredentialRejected("user name is not Base64 of a JSON object",
                                 hint=ConnackCode.BAD_USERNAME_OR_PASSWORD)
    return data


def normalize_mac(mac: str) -> str:
    """`netinfo.parse_mac` (one MAC rule everywhere), raising ValueError with a message for people."""
    normalized = parse_mac(mac)
    if normalized is None:
        raise ValueError(f"{mac!r} is not a MAC address (six hex pairs such as aa:bb:cc:dd:ee:ff)")
    return normalized


def issue_mqtt_credentials(
    key: str, *, mac: str, client_uuid: str | None, board_type: str, endpoint: str, ip: str
) -> dict[str, str]:
    """The OTA answer's `mqtt` object for a device (§2.2, §2.3), signed with `key`.

    The group is `GID_<board type>` as xiaozhi-server makes it; the third part is the device's real
    Client-Id when it sent one (the reference gateway's own generator does the same), else the MAC.
    """
    mac_topic = normalize_mac(mac).replace(":", "_")
    group = "GID_" + re.sub(r"[: ]", "_", board_type or "default")
    client_id = CLIENT_ID_SEPARATOR.join((group, mac_topic, client_uuid or mac_topic))
    username = base64.b64encode(json.dumps({"ip": ip}, separators=(",", ":")).encode()).decode()
    return {
        "endpoint": endpoint,
        "client_id": client_id,
        "username": username,
        "password": sign_password(key, client_id, username),
        "publish_topic": PUBLISH_TOPIC,
        "subscribe_topic": REPLY_TOPIC_PREFIX + mac_topic,
    }


def daily_api_token(key: str, day: dt.date) -> str:
    """lowercase hex SHA-256 of "YYYY-MM-DD" + key (§9.1)."""
    return hashlib.sha256(f"{day.isoformat()}{key}".encode()).hexdigest()


def api_token_valid(key: str, token: str, today: dt.date) -> bool:
    """True for the token of yesterday, today or tomorrow (clock and timezone skew between the gateway's
    local date and manager-api's UTC date); compared in constant time."""
    candidates = (daily_api_token(key, today + dt.timedelta(days=delta)) for delta in (-1, 0, 1))
    results = [hmac.compare_digest(candidate.encode(), token.encode()) for candidate in candidates]
    return any(results)


def server_auth_token(secret: str, client_id: str | None, device_id: str, timestamp: int) -> str:
    """The Bearer token towards a chat server (§6.2, §8.1): base64url-nopad(HMAC) + "." + unix seconds."""
    message = f"{client_id or _DEFAULT_WS_CLIENT_ID}|{device_id}|{timestamp}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() + f".{timestamp}"


def key_weakness(key: str) -> str | None:
    """Why the reference would refuse this signature key for the API (§9.1), or None if it is fine."""
    if len(key) < _MIN_KEY_LENGTH:
        return f"shorter than {_MIN_KEY_LENGTH} characters"
    if not any(c.isupper() for c in key) or not any(c.islower() for c in key):
        return "needs both upper- and lower-case letters"
    lowered = key.lower()
    banned = next((word for word in _WEAK_KEY_WORDS if word in lowered), None)
    return f"contains {banned!r}" if banned else None


def generate_signature_key() -> str:
    """A fresh random key that passes `key_weakness`."""
    alphabet = string.ascii_letters + string.digits
    while True:
        key = "".join(secrets.choice(alphabet) for _ in range(_GENERATED_KEY_BYTES))
        if key_weakness(key) is None:
            return key
