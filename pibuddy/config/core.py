"""The device, upstream, gateway, tools, brain and logging sections."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, HttpUrl, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from pibuddy.config.base import (
    DEFAULT_OTA_URL,
    SYSTEM_STATE_DIR,
    Port,
    Seconds,
    Section,
    require_token_off_loopback,
)
from pibuddy.macaddr import parse_mac


def _device_id(text: str) -> str:
    mac = parse_mac(text)
    if mac is None:
        raise PydanticCustomError("device_id", "not a MAC address (six hex pairs such as aa:bb:cc:dd:ee:ff)")
    return mac


DeviceId = Annotated[str, AfterValidator(_device_id)]


class DeviceConfig(Section):
    name: str = "PiBuddy"
    """Name the buddy reports to servers and shows in logs."""
    device_id: DeviceId | None = None
    """Device id (a MAC, `aa:bb:cc:dd:ee:ff`, any case, `:`, `_` or `-`); empty means the Pi's own MAC."""
    state_dir: Path | None = None
    """Where generated identity and secrets live (mode 600). Empty: systemd's StateDirectory= for the
    service, /var/lib/pibuddy as root, else ~/.local/state/pibuddy."""
    language: str = "zh-CN"
    """Language code sent to the server (Accept-Language), e.g. zh-CN or en-US."""

    @property
    def resolved_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir.expanduser()
        if systemd_state := os.environ.get("STATE_DIRECTORY"):  # set by the unit's StateDirectory=
            return Path(systemd_state.split(":")[0])
        if os.geteuid() == 0 or _owned_by_me(SYSTEM_STATE_DIR):  # root, or the service user (its CLI commands)
            return SYSTEM_STATE_DIR
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "pibuddy"


def _owned_by_me(path: Path) -> bool:
    try:
        return path.stat().st_uid == os.geteuid()
    except OSError:
        return False


class Transport(StrEnum):
    AUTO = "auto"
    MQTT = "mqtt"
    WEBSOCKET = "websocket"


class UpstreamConfig(Section):
    enabled: bool = True
    """Talk to a xiaozhi server as a device."""
    ota_url: HttpUrl = HttpUrl(DEFAULT_OTA_URL)
    """OTA/configuration URL of the xiaozhi server (the trailing slash is kept)."""
    transport: Transport = Transport.AUTO
    """auto = MQTT+UDP when the OTA answer offers it, else WebSocket; or force mqtt / websocket."""
    websocket_protocol_version: Annotated[int, Field(ge=1, le=3)] = 1
    """Binary framing on WebSocket: 1 (raw Opus, what xiaozhi-server understands), 2 or 3."""
    board_type: str = "pibuddy"
    """Board type reported to the server (User-Agent and OTA body)."""
    activation_version: Annotated[int, Field(ge=1, le=2)] = 1
    """1: activate like a DIY board without a serial (body {}); 2: send PiBuddy's generated serial and an
    HMAC of the server's challenge, like a board with a serial burnt in eFuse."""
    hello_timeout: Seconds = 10.0
    """Seconds to wait for the server's hello, as the firmware does."""
    channel_timeout: Seconds = 120.0
    """Seconds without any message from the server after which the audio channel counts as closed."""
    listen_mode: str = Field(default="auto", pattern="^(auto|manual|realtime)$")
    """Conversation mode: auto (VAD ends turns), manual (push-to-talk) or realtime (barge-in with AEC)."""


_GATEWAY_QUERY: Final = "?from=mqtt_gateway"


def _chat_server_url(url: str) -> str:
    """A chat server URL that ends with `?from=mqtt_gateway`, which is appended when there is no query.

    xiaozhi-server only parses the gateway's framed audio when the request path ends with exactly that
    (anything else is taken as raw Opus and the audio silently breaks), so another query is refused.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise PydanticCustomError("chat_server_url", "not a ws:// or wss:// URL")
    if url.endswith(_GATEWAY_QUERY):
        return url
    if parts.query or parts.fragment or url.endswith("?"):
        raise PydanticCustomError("chat_server_url", f"must end with {_GATEWAY_QUERY} and have no other query "
                                  "(xiaozhi-server recognises the gateway only by that ending)")
    return url + _GATEWAY_QUERY


ChatServerUrl = Annotated[str, AfterValidator(_chat_server_url)]


class AdmissionMode(StrEnum):
    PAIRING = "pairing"
    OPEN = "open"


class GatewayConfig(Section):
    enabled: bool = True
    """Serve nearby ESP32 xiaozhi devices as their MQTT+UDP gateway (with local OTA and the management API)."""
    host: str = "0.0.0.0"
    """Address the MQTT and UDP servers bind to."""
    mqtt_port: Port = 1883
    """TCP port of the MQTT endpoint for devices."""
    udp_port: Port = 8884
    """UDP port for device audio."""
    public_ip: str | None = None
    """Address devices are told to send UDP to; empty means this host's LAN address."""
    api_port: Port = 8007
    """Port of the management API."""
    ota_port: Port = 8003
    """Port of the local OTA for devices (POST /xiaozhi/ota/), advertised over mDNS."""
    mdns: bool = True
    """Advertise the local OTA URL on the LAN over mDNS (_xiaozhi-ota._tcp)."""
    signature_key: SecretStr | None = None
    """MQTT_SIGNATURE_KEY: HMAC key for device passwords and the API's daily token. Secret. Empty: one is
    generated on first run and kept in the state dir (gateway_signature_key, mode 600)."""
    chat_servers: list[ChatServerUrl] = Field(default_factory=list)
    """Upstream xiaozhi server WebSocket URLs (ws:// or wss://) ending with ?from=mqtt_gateway, which is
    appended to a URL without a query; a URL with another query is refused."""
    server_secret: SecretStr | None = None
    """SERVER_SECRET for the Authorization token towards chat servers. Secret."""
    max_connections: Annotated[int, Field(ge=1)] = 200
    """Most devices connected at once."""
    max_connections_per_address: Annotated[int, Field(ge=1)] = 32
    """Most devices connected at once from one source IP address (more get CONNACK 3). Each ESP32 has its own
    address on the LAN; 32 leaves room for devices behind one NAT (a Wi-Fi extender in router mode, Docker's
    userland proxy) while one host cannot take the whole of `max_connections`."""
    allow_two_part_client_ids: bool = False
    """Accept legacy `group@@@mac` client ids without a password check."""
    max_tools_count: Annotated[int, Field(ge=1)] = 128
    """Most tools of one device (plus host tools) offered to the chat server."""
    host_tools: bool = False
    """Add PiBuddy's own tools (as pibuddy.<name>) to every device's tool list and serve their calls on the Pi."""
    upstream_cooldown: Seconds = 30.0
    """Seconds a chat server that failed to connect or to answer hello is skipped."""
    admission: AdmissionMode = AdmissionMode.PAIRING
    """pairing: a device seen for the first time is served (and remembered) only while pairing is open;
    open: every device is served, as before PiBuddy had pairing."""
    pairing_minutes: Annotated[float, Field(ge=0)] = 10.0
    """Minutes pairing stays open after start and after `pibuddy gateway pair`."""
    registry_url: SecretStr | None = None
    """redis://[:password@]host:port/db of a Redis shared by several gateways (docs/scaling.md): each writes
    the devices it holds, and any one's management API finds a device on the others. Needs the `registry`
    extra (pip install -e '.[registry]'). Secret (it may hold a password). Empty: this gateway alone."""


class ToolsConfig(Section):
    builtin: bool = True
    """Offer the firmware-like built-in tools (device status, speaker volume)."""
    mcp_endpoint_url: SecretStr | None = None
    """wss://… MCP endpoint URL (with its token) to offer PiBuddy's tools to. Secret."""
    mcp_http_enabled: bool = False
    """Serve the tools as a standard MCP server over streamable HTTP (path /mcp)."""
    mcp_http_host: str = "127.0.0.1"
    """Address the MCP HTTP server binds to; anything but loopback needs mcp_http_token."""
    mcp_http_port: Port = 8765
    """TCP port of the MCP HTTP server."""
    mcp_http_token: SecretStr | None = Field(default=None, validate_default=True)
    """Bearer token MCP HTTP clients must send; required unless bound to loopback. Secret."""

    @field_validator("mcp_http_token")
    @classmethod
    def _token_off_loopback(cls, token: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return require_token_off_loopback(token, info, enabled="mcp_http_enabled", host="mcp_http_host")


class BrainMode(StrEnum):
    AUTO = "auto"
    UPSTREAM = "upstream"
    LOCAL = "local"


class AsrBackend(StrEnum):
    POCKETSPHINX = "pocketsphinx"
    VOSK = "vosk"


class BrainConfig(Section):
    mode: BrainMode = BrainMode.AUTO
    """Who answers a wake: auto (the xiaozhi server while reachable, else the local brain), upstream, local."""
    language: str = "en"
    """Language of the local brain's speech, intents and replies: en, zh-CN (home-assistant-intents codes)."""
    asr: AsrBackend = AsrBackend.POCKETSPHINX
    """Local speech recogniser: pocketsphinx (English, model in its wheel) or vosk (needs vosk_model_path)."""
    vosk_model_path: Path | None = None
    """Directory of an unpacked vosk model for asr: vosk, e.g. vosk-model-small-cn-0.22."""
    piper_voice_path: Path | None = None
    """A piper voice model (.onnx, its .onnx.json beside it) for replies; empty: espeak-ng speaks."""
    espeak_voice: str | None = None
    """espeak-ng voice for replies; empty: one for the language (en, cmn for Chinese)."""
    upstream_deadline: Seconds = 8.0
    """Seconds the xiaozhi server may take to come up (OTA, MQTT) before the local brain answers wakes."""
    offline_notice: bool = True
    """Say once, when the local brain first takes over, that PiBuddy is offline but still controls the house."""


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LoggingConfig(Section):
    level: LogLevel = LogLevel.INFO
    """DEBUG, INFO, WARNING or ERROR."""
