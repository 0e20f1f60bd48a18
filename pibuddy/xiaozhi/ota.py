"""The OTA/configuration exchange (docs/protocol.md §2), without I/O: requests out, typed settings in.

`build_check_request` and `build_activate_request` produce exactly the headers and body the ESP32
firmware sends; `parse_response` turns the server's answer into frozen dataclasses. Like the firmware,
every member of the answer is optional and parsed on its own: a malformed member (or a malformed field
inside one) is dropped and described in `OtaResponse.problems`, so the caller logs one line and uses the
rest. Only an answer that is not a JSON object, or one the server marks as failed, raises `OtaUnavailable`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from pibuddy.errors import PiBuddyError

SYSTEM_INFO_VERSION: Final = 2
"""The body's "version" key: the layout of `Board::GetSystemInfoJson` the firmware sends today."""
MAX_RESPONSE_BYTES: Final = 64 * 1024
"""Real answers are about 1 KB; anything past this is refused before parsing."""
MQTT_TLS_PORT: Final = 8883
"""The firmware's default MQTT port, and the only one it speaks TLS on (§2.3)."""
MQTT_DEFAULT_KEEPALIVE: Final = 240
ACTIVATION_ALGORITHM: Final = "hmac-sha256"
_HEX_DIGITS: Final = frozenset("0123456789abcdef")


class OtaError(PiBuddyError):
    """Base of the errors of the OTA exchange."""


class OtaFailure(StrEnum):
    """Why no usable OTA answer was obtained."""

    DNS = "dns"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    NETWORK = "network"
    HTTP_STATUS = "http_status"
    BAD_BODY = "bad_body"
    REJECTED = "rejected"


class OtaUnavailable(OtaError):
    """No usable answer from the OTA server this time; worth retrying later. `reason` says why."""

    def __init__(self, message: str, *, reason: OtaFailure, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class NoTransportOffered(OtaError):
    """The OTA answer (and what was persisted) offers no transport the configuration allows."""


class TransportPreference(StrEnum):
    """Same values as `pibuddy.config.Transport`, restated so the protocol core does not import config."""

    AUTO = "auto"
    MQTT = "mqtt"
    WEBSOCKET = "websocket"


# --- The request --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OtaDevice:
    """Who this device is and what it runs, as the OTA and activate requests report it.

    `serial_number` and `hmac_key` together make an Activation-Version 2 device (a board with a serial
    in eFuse); without them the device is version 1, like the DIY boards.
    """

    device_id: str
    """MAC address, lower-case, colon separated."""
    client_id: str
    """UUID v4 generated once per installation."""
    board_type: str
    board_name: str
    app_name: str
    app_version: str
    elf_sha256: str
    """64 lower-case hex digits identifying the running build."""
    chip_model_name: str
    language: str
    ip: str | None = None
    serial_number: str | None = None
    hmac_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.serial_number is None) != (self.hmac_key is None):
            raise ValueError("serial_number and hmac_key go together (Activation-Version 2) or not at all")
        if len(self.elf_sha256) != 64 or not set(self.elf_sha256) <= _HEX_DIGITS:
            raise ValueError("elf_sha256 must be 64 lower-case hex digits")

    @property
    def activation_version(self) -> int:
        return 1 if self.serial_number is None else 2


@dataclass(frozen=True, slots=True)
class OtaRequest:
    """One HTTP request to send as is (always a POST, like the firmware's requests with a body)."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    method: str = "POST"


def request_headers(device: OtaDevice) -> dict[str, str]:
    """The firmware's headers (§2.1), in its order; shared by check-version and activate."""
    headers = {
        "Activation-Version": str(device.activation_version),
        "Device-Id": device.device_id,
        "Client-Id": device.client_id,
    }
    if device.serial_number is not None:
        headers["Serial-Number"] = device.serial_number
    headers["User-Agent"] = f"{device.board_type}/{device.app_version}"
    headers["Accept-Language"] = device.language
    headers["Content-Type"] = "application/json"
    return headers


def system_info(device: OtaDevice) -> dict[str, Any]:
    """The check-version body: the firmware's keys in its order, minus what a Pi does not have.

    Omitted because a Pi has no honest value for them: flash_size, minimum_free_heap_size, chip_info
    (ESP-IDF chip ids), compile_time, idf_version, partition_table, ota, display and the Wi-Fi board
    fields. Servers read only application.version, board.type and the headers (§2.1).
    """
    board: dict[str, Any] = {"type": device.board_type, "name": device.board_name}
    if device.ip is not None:  # the firmware also leaves ip out while it has no address
        board["ip"] = device.ip
    board["mac"] = device.device_id
    return {
        "version": SYSTEM_INFO_VERSION,
        "language": device.language,
        "mac_address": device.device_id,
        "uuid": device.client_id,
        "chip_model_name": device.chip_model_name,
        "application": {"name": device.app_name, "version": device.app_version, "elf_sha256": device.elf_sha256},
        "board": board,
    }


def build_check_request(ota_url: str, device: OtaDevice) -> OtaRequest:
    """The check-version POST to the OTA URL, used as is (trailing slash kept)."""
    return OtaRequest(ota_url, request_headers(device), _compact_json(system_info(device)))


def activate_url(ota_url: str) -> str:
    """`<OTA URL>/activate`, with the `/` inserted only when the OTA URL lacks a trailing one (§2.4)."""
    return f"{ota_url}activate" if ota_url.endswith("/") else f"{ota_url}/activate"


def activation_hmac(key: bytes, challenge: str) -> str:
    """HMAC-SHA256 of the challenge's UTF-8 bytes, as 64 lower-case hex digits."""
    return hmac.new(key, challenge.encode(), hashlib.sha256).hexdigest()


def activation_payload(device: OtaDevice, challenge: str) -> dict[str, str]:
    """The activate body: `{}` for version 1, the four flat fields for version 2.

    UNCONFIRMED: py-xiaozhi wraps the four fields in {"Payload": {...}}; whether the official server
    accepts that is unknown. We send the firmware's flat shape, which is what the server was built for.
    """
    if device.serial_number is None or device.hmac_key is None:
        return {}
    return {
        "algorithm": ACTIVATION_ALGORITHM,
        "serial_number": device.serial_number,
        "challenge": challenge,
        "hmac": activation_hmac(device.hmac_key, challenge),
    }


def build_activate_request(ota_url: str, device: OtaDevice, challenge: str) -> OtaRequest:
    """The POST that asks whether the user has bound this device yet (200 yes, 202 not yet)."""
    body = _compact_json(activation_payload(device, challenge))
    return OtaRequest(activate_url(ota_url), request_headers(device), body)


def _compact_json(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
