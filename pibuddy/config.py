"""Typed configuration: one frozen pydantic model per section, loaded from YAML plus env overrides.

`load_config(path)` returns a `Config` or raises `ConfigError` with one line per problem, each naming
the key path (`upstream.ota_url: not a URL`). Any `section.key` can be overridden from the environment
as `PIBUDDY_<SECTION>_<KEY>` (for secrets such as `PIBUDDY_HOMEASSISTANT_TOKEN`).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from pibuddy.errors import ConfigError

ENV_PREFIX: Final = "PIBUDDY_"
DEFAULT_OTA_URL: Final = "https://api.tenclass.net/xiaozhi/ota/"
SYSTEM_STATE_DIR: Final = Path("/var/lib/pibuddy")
SYSTEM_CONFIG_PATH: Final = Path("/etc/pibuddy/config.yaml")

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    """Base of every section: immutable, and unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class DeviceConfig(Section):
    name: str = "PiBuddy"
    """Name the buddy reports to servers and shows in logs."""
    device_id: str | None = Field(default=None, pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
    """Device id (MAC, lower-case, colon separated); empty means the Pi's own MAC."""
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
        if os.geteuid() == 0:
            return SYSTEM_STATE_DIR
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "pibuddy"


Fraction = Annotated[float, Field(ge=0, le=1)]


class WakeWordBackend(StrEnum):
    MICRO = "micro"
    POCKETSPHINX = "pocketsphinx"
    VOSK = "vosk"


class MicroWakeWordConfig(Section):
    words: dict[str, Fraction] = Field(default_factory=lambda: {"okay_nabu": 0.85})
    """Model name -> probability cutoff (0-1). Bundled: okay_nabu 0.85, hey_jarvis 0.97, alexa 0.9, hey_mycroft 0.95."""
    models_dir: Path | None = None
    """Extra directory of microWakeWord models (<name>.json + .tflite); empty: only the bundled four."""


class PocketsphinxWakeConfig(Section):
    phrases: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=lambda: {"hello there": 1e-30})
    """English keyphrase -> kws_threshold (1e-50 … 1e-5; smaller fires more easily); words from the en-us dictionary."""


class VoskWakeConfig(Section):
    model_path: Path | None = None
    """Directory of an unpacked vosk model (e.g. vosk-model-small-cn); required with backend vosk."""
    phrases: dict[str, Fraction] = Field(default_factory=lambda: {"你好小智": 0.6})
    """Phrase -> minimum mean word confidence (0-1)."""


class WakeWordConfig(Section):
    backend: WakeWordBackend = WakeWordBackend.MICRO
    """micro (pymicro-wakeword, bundled models), pocketsphinx (custom English phrase) or vosk (any language)."""
    refractory_seconds: Seconds = 2.0
    """Seconds after a detection during which the same engine cannot fire again."""
    speaking_raise: Fraction = 0.5
    """While PiBuddy speaks, raise each threshold by this fraction of its headroom (1 - threshold)."""
    echo_raise: Fraction = 0.9
    """Raise by this fraction instead while the sentence being spoken contains the wake word."""
    micro: MicroWakeWordConfig = MicroWakeWordConfig()
    """Options of the micro backend."""
    pocketsphinx: PocketsphinxWakeConfig = PocketsphinxWakeConfig()
    """Options of the pocketsphinx backend."""
    vosk: VoskWakeConfig = VoskWakeConfig()
    """Options of the vosk backend."""


class VadBackend(StrEnum):
    SILERO = "silero"
    MICRO = "micro"
    WEBRTC = "webrtc"


class SileroVadConfig(Section):
    model_path: Path | None = None
    """silero_vad.onnx to use; empty: the one inside the silero-vad package (installed with --no-deps)."""


class VadConfig(Section):
    backend: VadBackend = VadBackend.SILERO
    """silero (onnxruntime), micro (pymicro-vad, no onnxruntime) or webrtc (cheap, fooled by steady noise)."""
    threshold: Fraction = 0.5
    """Speech probability above which a frame counts as speech."""
    pregate: bool = True
    """Run webrtcvad first and skip the model on frames it calls silence (saves CPU in quiet rooms)."""
    webrtc_mode: Annotated[int, Field(ge=0, le=3)] = 2
    """webrtcvad aggressiveness, 0 (lenient) to 3 (strict), for the pre-gate and the webrtc backend."""
    speech_seconds: Seconds = 0.3
    """Seconds of speech before an utterance counts as started."""
    silence_seconds: Seconds = 0.7
    """Seconds of silence after speech that end the utterance."""
    timeout_seconds: Seconds = 15.0
    """Longest utterance in seconds; streaming stops after this even if the user keeps talking."""
    silero: SileroVadConfig = SileroVadConfig()
    """Options of the silero backend."""


class OpusConfig(Section):
    complexity: Annotated[int, Field(ge=0, le=10)] = 0
    """Uplink encoder complexity 0-10 (the firmware uses 0; 5 costs about twice as much CPU)."""
    dtx: bool = True
    """Discontinuous transmission: tiny packets during silence, as the firmware does."""
    uplink_queue_frames: Annotated[int, Field(ge=1)] = 40
    """Most encoded 60 ms frames waiting to be sent; the oldest are dropped beyond this (2.4 s)."""


class PlaybackConfig(Section):
    jitter_target_ms: Annotated[int, Field(ge=20, le=1000)] = 120
    """Milliseconds of downlink audio buffered before playback starts; grows after underruns."""
    jitter_max_ms: Annotated[int, Field(ge=20, le=2000)] = 400
    """Ceiling in milliseconds for the adaptive jitter target."""
    queue_packets: Annotated[int, Field(ge=1)] = 40
    """Most downlink packets waiting to be played; newly arriving ones are dropped beyond this."""
    volume: Annotated[int, Field(ge=0, le=100)] = 70
    """Speaker volume 0-100 at start (software gain); the set_volume tool changes it."""
    samplerate: Annotated[int, Field(ge=8000, le=192000)] | None = None
    """Force the speaker's sample rate in Hz; empty: the stream's own rate if the device takes it, else its default."""
    idle_close_seconds: Annotated[float, Field(ge=0)] = 2.0
    """Seconds of silence after which the speaker stream is closed (reopened on the next sound)."""


class PromptsConfig(Section):
    chime: bool = True
    """Play a short chime on wake and a low tone on errors."""
    espeak_voice: str = "en"
    """espeak-ng voice for spoken prompts such as the activation code (e.g. en, zh)."""


class AudioConfig(Section):
    enabled: bool = True
    """Use the microphone and speaker. Off for a headless hub (gateway and tools only)."""
    input_device: str | None = None
    """Microphone: a (partial) device name from `pibuddy audio-devices`; empty means the default."""
    output_device: str | None = None
    """Speaker: a (partial) device name; empty means the default."""
    echo_cancel: bool = True
    """Capture from the PulseAudio/PipeWire echo-cancel source when one exists (and no input_device is set)."""
    preroll_seconds: Annotated[float, Field(ge=0, le=10)] = 2.0
    """Seconds of audio kept from before the wake word and sent with it, as the firmware does."""
    wakeword: WakeWordConfig = WakeWordConfig()
    """Wake word detection."""
    vad: VadConfig = VadConfig()
    """Voice activity detection and end of utterance."""
    opus: OpusConfig = OpusConfig()
    """Uplink Opus encoding (16 kHz mono 60 ms, fixed by the protocol)."""
    playback: PlaybackConfig = PlaybackConfig()
    """Speaker and jitter buffer."""
    prompts: PromptsConfig = PromptsConfig()
    """Local sounds and spoken prompts."""


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
    chat_servers: list[str] = Field(default_factory=list)
    """Upstream xiaozhi server WebSocket URLs ending with ?from=mqtt_gateway."""
    server_secret: SecretStr | None = None
    """SERVER_SECRET for the Authorization token towards chat servers. Secret."""
    max_connections: Annotated[int, Field(ge=1)] = 200
    """Most devices connected at once."""
    allow_two_part_client_ids: bool = False
    """Accept legacy `group@@@mac` client ids without a password check."""
    max_tools_count: Annotated[int, Field(ge=1)] = 128
    """Most tools of one device (plus host tools) offered to the chat server."""
    host_tools: bool = False
    """Add PiBuddy's own tools (as pibuddy.<name>) to every device's tool list and serve their calls on the Pi."""
    upstream_cooldown: Seconds = 30.0
    """Seconds a chat server that failed to connect or to answer hello is skipped."""


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
        host = info.data.get("mcp_http_host", "127.0.0.1")
        if info.data.get("mcp_http_enabled") and token is None and not is_loopback(host):
            raise PydanticCustomError("token_required", "required when mcp_http_host is not a loopback address")
        return token


class HomeAssistantConfig(Section):
    enabled: bool = False
    """Control Home Assistant entities as tools."""
    url: HttpUrl = HttpUrl("http://homeassistant.local:8123")
    """Base URL of Home Assistant."""
    token: SecretStr | None = None
    """Long-lived access token (Profile → Security). Secret; or PIBUDDY_HOMEASSISTANT_TOKEN."""
    timeout: Seconds = 10.0
    """Seconds to wait for Home Assistant to answer one request."""
    assist_language: str | None = None
    """Language of sentences passed to Home Assistant's Assist (en, zh-cn, ...); empty: HA's own."""


class MiotDeviceConfig(Section):
    name: str = Field(min_length=1)
    """Spoken name, e.g. Desk lamp or 台灯; replaces the Mi Home name of the device with the same did."""
    aliases: tuple[str, ...] = ()
    """Other names people use for it, in any language."""
    room: str | None = None
    """Room it is in (Living room, 客厅); empty: the Mi Home room, if any."""
    ip: str | None = None
    """LAN address; empty: the one setup found. Discovery replaces it when a device with this did moves."""
    token: SecretStr | None = None
    """miIO token, 32 hex digits (enables LAN control). Secret; setup keeps fetched tokens in the state dir."""
    did: str | None = None
    """Mi Home device id (needed for cloud control and to match setup's list)."""
    model: str | None = None
    """Device model, e.g. yeelink.light.color1."""
    urn: str | None = None
    """MIoT spec URN of the model; empty: looked up by model."""

    @field_validator("token")
    @classmethod
    def _token_is_hex(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not re.fullmatch(r"[0-9a-fA-F]{32}", token.get_secret_value()):
            raise PydanticCustomError("token_format", "a miIO token is 32 hex digits")
        return token


class MiotConfig(Section):
    enabled: bool = False
    """Control Xiaomi MIoT devices as tools."""
    cloud_username: str | None = None
    """Mi account user name, for fetching device tokens and cloud control."""
    cloud_password: SecretStr | None = None
    """Mi account password. Secret; or PIBUDDY_MIOT_CLOUD_PASSWORD."""
    cloud_region: str = Field(default="cn", pattern=r"^(cn|de|us|ru|sg|i2)$")
    """Mi cloud region: cn, de, us, ru, sg, i2."""
    devices: tuple[MiotDeviceConfig, ...] = ()
    """Devices to add to (or override in) the list `pibuddy miot setup` fetched from the Mi cloud."""
    discovery: bool = True
    """Find devices' current LAN addresses with the miIO hello broadcast."""
    discovery_addresses: tuple[str, ...] = ("255.255.255.255",)
    """Where the hello goes: broadcast addresses, or single device addresses."""
    discovery_interval: Seconds = 600.0
    """Seconds between discovery rounds while PiBuddy runs."""
    lan_timeout: Seconds = 1.5
    """Seconds to wait for a device's answer on the LAN, per try (3 tries)."""
    cloud_timeout: Seconds = 10.0
    """Seconds to wait for the Mi cloud to answer one request."""
    spec_fetch: bool = True
    """Fetch missing device specs from miot-spec.org (cached in the state dir, no expiry)."""
    device_tools: bool = True
    """Offer one extra tool per device whose spec is cached, with its controls as arguments."""


BluetoothAddress = Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")]
# A 16-bit ("2a19"), 32-bit or full 128-bit GATT UUID.
GattUuid = Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{4}|[0-9A-Fa-f]{8}|[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}"
                                        r"-[0-9A-Fa-f]{12})$")]
# Hex bytes with optional `{value:0Nx}` placeholders (N = 2, 4, 6 or 8 hex digits, big-endian).
GattTemplate = Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}|\{value:0[2468]x\})+$")]


class BleSensorConfig(Section):
    address: BluetoothAddress
    """Bluetooth address of the sensor, e.g. A4:C1:38:8D:18:B2 (see `pibuddy ble scan`)."""
    name: str
    """What people call it, e.g. "bedroom sensor"."""
    area: str | None = None
    """Room it is in, so "the temperature in the bedroom" finds it."""
    aliases: tuple[str, ...] = ()
    """Other names it answers to."""
    bindkey: SecretStr | None = None
    """Encryption key in hex: 32 digits (BTHome, MiBeacon v4/v5) or 24 (MiBeacon v2/v3). Secret."""

    @field_validator("bindkey")
    @classmethod
    def _bindkey_is_hex(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        key = value.get_secret_value()
        if len(key) not in (24, 32) or any(c not in "0123456789abcdefABCDEF" for c in key):
            raise ValueError("a bindkey is 24 or 32 hex digits")  # never echo the key itself
        return value


class GattWriteConfig(Section):
    characteristic: GattUuid
    """UUID of the characteristic to write."""
    data: GattTemplate
    """Bytes to write in hex; `{value:02x}` (or 04x, 06x, 08x) inserts the tool's value, big-endian."""
    minimum: int = 0
    """Smallest value the action accepts (when `data` has a placeholder)."""
    maximum: int = 255
    """Largest value the action accepts."""
    response: bool = True
    """Write with response (acknowledged); false for write-without-response characteristics."""


class GattValueFormat(StrEnum):
    UINT8 = "uint8"
    INT8 = "int8"
    UINT16LE = "uint16le"
    INT16LE = "int16le"
    UINT32LE = "uint32le"
    INT32LE = "int32le"
    UTF8 = "utf8"
    HEX = "hex"


class GattReadConfig(Section):
    characteristic: GattUuid
    """UUID of the characteristic to read."""
    format: GattValueFormat = GattValueFormat.UINT8
    """How to decode it: uint8, int8, uint16le, int16le, uint32le, int32le, utf8 or hex."""
    scale: float = 1.0
    """Multiply a number by this (e.g. 0.01 for hundredths)."""
    unit: str = ""
    """Unit spoken after the number, e.g. "%"."""


class GattDeviceConfig(Section):
    address: BluetoothAddress
    """Bluetooth address of the device."""
    name: str
    """What people call it, e.g. "desk lamp"."""
    area: str | None = None
    """Room it is in."""
    aliases: tuple[str, ...] = ()
    """Other names it answers to."""
    actions: dict[str, GattWriteConfig] = Field(default_factory=dict)
    """Action name (on, off, brightness ...) -> the write that performs it."""
    readings: dict[str, GattReadConfig] = Field(default_factory=dict)
    """Reading name (battery, state ...) -> the characteristic that holds it."""


class BleScanningMode(StrEnum):
    ACTIVE = "active"
    PASSIVE = "passive"


class BleConfig(Section):
    enabled: bool = False
    """Read BLE sensors (BTHome, MiBeacon) and control configured BLE devices."""
    adapter: str | None = None
    """Bluetooth adapter, e.g. hci0; empty: the first powered one."""
    scanning_mode: BleScanningMode = BleScanningMode.ACTIVE
    """active, or passive (sends nothing; BlueZ needs bluetoothd --experimental)."""
    stale_seconds: Seconds = 600.0
    """Seconds after which a silent sensor's values count as out of date."""
    silence_restart_seconds: Seconds = 300.0
    """Restart the scanner when no advertisement at all arrived for this many seconds."""
    scan_seconds: Seconds = 6.0
    """Longest on-demand scan in seconds, when a tool needs a sensor and no scanner is running."""
    connect_timeout: Seconds = 20.0
    """Seconds to find and connect to a GATT device before giving up."""
    idle_disconnect_seconds: Seconds = 30.0
    """Seconds a GATT connection stays open after its last use."""
    sensors: tuple[BleSensorConfig, ...] = ()
    """Named sensors (BTHome v2, Xiaomi MiBeacon)."""
    devices: tuple[GattDeviceConfig, ...] = ()
    """Named GATT devices (bulbs, plugs, relay boards) and how to drive them."""


class ButtonHoldAction(StrEnum):
    ABORT = "abort"
    TOGGLE_MUTE = "toggle_mute"
    NONE = "none"


class ButtonConfig(Section):
    pin: Annotated[int, Field(ge=0, le=27)] | None = None
    """BCM pin of the push-to-talk button; empty: no button."""
    pull_up: bool = True
    """The button connects the pin to ground (internal pull-up); false: to 3.3 V."""
    bounce_seconds: Annotated[float, Field(ge=0, le=1)] = 0.02
    """Debounce time in seconds; 0 turns debouncing off."""
    hold_seconds: Seconds = 2.0
    """Seconds held that make a long press."""
    hold_action: ButtonHoldAction = ButtonHoldAction.TOGGLE_MUTE
    """What a long press does: toggle_mute, abort, or none (a long press is just a long push-to-talk)."""


class LightEffect(StrEnum):
    OFF = "off"
    SOLID = "solid"
    BLINK = "blink"
    PULSE = "pulse"


class LightPattern(Section):
    effect: LightEffect = LightEffect.SOLID
    """off, solid, blink or pulse."""
    color: str = Field(default="#ffffff", pattern=r"^#[0-9A-Fa-f]{6}$")
    """Colour as #rrggbb (RGB LED and ring; a single LED ignores it)."""
    on_seconds: Seconds = 0.5
    """blink: seconds on."""
    off_seconds: Seconds = 0.5
    """blink: seconds off."""
    period_seconds: Seconds = 2.0
    """pulse: seconds for one fade in and out."""


class LightPatterns(Section):
    idle: LightPattern = LightPattern(effect=LightEffect.OFF)
    """Waiting for the wake word."""
    listening: LightPattern = LightPattern(color="#0040ff")
    """Listening to the user."""
    thinking: LightPattern = LightPattern(effect=LightEffect.BLINK, color="#00c0ff", on_seconds=0.15, off_seconds=0.15)
    """Waiting for the answer."""
    speaking: LightPattern = LightPattern(effect=LightEffect.PULSE, color="#00ff40", period_seconds=1.0)
    """Speaking the answer."""
    muted: LightPattern = LightPattern(effect=LightEffect.BLINK, color="#ff0000", on_seconds=0.1, off_seconds=2.0)
    """Microphone muted."""
    error: LightPattern = LightPattern(effect=LightEffect.BLINK, color="#ff0000", on_seconds=0.1, off_seconds=0.1)
    """Something failed."""
    offline: LightPattern = LightPattern(effect=LightEffect.BLINK, color="#ff8000", on_seconds=1.0, off_seconds=1.0)
    """Starting, connecting or the server is unreachable."""
    activating: LightPattern = LightPattern(effect=LightEffect.PULSE, color="#8000ff")
    """Waiting for the user to enter the activation code."""


class LightsKind(StrEnum):
    NONE = "none"
    LED = "led"
    RGB = "rgb"
    APA102 = "apa102"


class LightsConfig(Section):
    kind: LightsKind = LightsKind.NONE
    """none, led (one LED), rgb (an RGB LED) or apa102 (an APA102/DotStar ring on SPI)."""
    pins: tuple[Annotated[int, Field(ge=0, le=27)], ...] = ()
    """BCM pins: led [pin]; rgb [red, green, blue]; unused for apa102."""
    active_high: bool = True
    """The LED lights when the pin is high; false for common-anode RGB LEDs."""
    pwm: bool = True
    """Use PWM (needed for pulse and colours other than on/off)."""
    pixels: Annotated[int, Field(ge=1, le=256)] = 12
    """apa102: number of LEDs on the ring."""
    spi_port: Annotated[int, Field(ge=0, le=1)] = 0
    """apa102: SPI port (0: clock GPIO11, data GPIO10)."""
    spi_device: Annotated[int, Field(ge=0, le=2)] = 0
    """apa102: SPI chip select (0 or 1; APA102 ignores it, but the port needs one)."""
    brightness: Annotated[float, Field(gt=0, le=1)] = 0.5
    """Overall brightness 0-1."""
    patterns: LightPatterns = LightPatterns()
    """One pattern per state."""


class RelayConfig(Section):
    name: str
    """What people call it, e.g. "fan"."""
    pin: Annotated[int, Field(ge=0, le=27)]
    """BCM pin driving the relay."""
    active_high: bool = True
    """The relay switches on when the pin is high; false for active-low relay boards."""
    initial: bool = False
    """State when PiBuddy starts (on or off)."""
    area: str | None = None
    """Room it is in."""
    aliases: tuple[str, ...] = ()
    """Other names it answers to."""


class GpioConfig(Section):
    enabled: bool = False
    """Use the Pi's GPIO for a push-to-talk button and status lights."""
    pin_factory: str | None = Field(default=None, pattern="^(lgpio|rpigpio|pigpio|native|mock)$")
    """gpiozero pin library: lgpio, rpigpio, pigpio, native or mock (no hardware); empty: gpiozero's choice."""
    button: ButtonConfig = ButtonConfig()
    """Push-to-talk button."""
    lights: LightsConfig = LightsConfig()
    """Status lights that follow what PiBuddy does."""
    relays: tuple[RelayConfig, ...] = ()
    """Outputs (relays) offered as the gpio_switch tool."""


class OpenClawTransport(StrEnum):
    WS = "ws"
    MQTT = "mqtt"


class OpenClawConfig(Section):
    enabled: bool = False
    """Run PiBuddy as an OpenClaw node (commands: system.notify, device.info, pibuddy.tools.*)."""
    gateway_url: str = Field(default="ws://127.0.0.1:18789", pattern=r"^wss?://")
    """WebSocket URL of the OpenClaw gateway (ws:// or wss://), for the node and for the bridge."""
    token: SecretStr | None = None
    """The gateway's shared token (gateway.auth.token). Secret; or PIBUDDY_OPENCLAW_TOKEN."""
    transport: OpenClawTransport = OpenClawTransport.WS
    """ws: connect to gateway_url directly; mqtt: through an MQTT broker and a bridge (openclaw-bridge)."""
    display_name: str | None = None
    """Name shown in the gateway's node list; empty: device.name."""
    connect_timeout: Seconds = 10.0
    """Seconds to wait for the gateway's challenge and for hello-ok."""
    pairing_retry_seconds: Seconds = 10.0
    """Seconds between quiet reconnects while the gateway waits for approval."""
    mqtt_host: str = "127.0.0.1"
    """MQTT broker for the mqtt transport and the bridge."""
    mqtt_port: Port = 1883
    """TCP port of that broker."""
    mqtt_username: str | None = None
    """Broker user name; empty: anonymous."""
    mqtt_password: SecretStr | None = None
    """Broker password. Secret; or PIBUDDY_OPENCLAW_MQTT_PASSWORD."""
    mqtt_topic_prefix: str = Field(default="moltbot/gw", pattern=r"^[^+#]+[^/+#]$")
    """Topics are <prefix>/<client id>/<node|operator>/<req|res|evt|announce|close|closed>."""
    mqtt_client_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """This node's client id in those topics; empty: the first 16 hex digits of its device id."""
    bridge_enabled: bool = False
    """Run the MQTT-to-gateway bridge as a service (also `pibuddy openclaw-bridge`)."""
    bridge_forwarded_for: str | None = None
    """Origin address the bridge reports for MQTT clients (X-Forwarded-For), never loopback, so the gateway
    treats them as remote and never pairs them silently; empty: this host's LAN address. The gateway must
    list the bridge's address in gateway.trustedProxies (e.g. ["127.0.0.1"])."""
    bridge_max_frame_bytes: Annotated[int, Field(ge=1024)] = 1048576
    """Largest frame in bytes the bridge relays either way; the gateway's maxPayload lowers it."""
    bridge_max_sessions: Annotated[int, Field(ge=1)] = 32
    """Most gateway WebSockets the bridge holds open (one per MQTT client and role)."""
    operator_enabled: bool = False
    """OpenClaw as the brain: send final transcripts to an agent (chat.send) and speak the reply. The
    operator role needs its own approval on the gateway."""
    operator_session_key: str | None = None
    """Chat session the transcripts go to; empty: the gateway's main session (agent:main:main)."""
    operator_reply_timeout: Seconds = 90.0
    """Seconds to wait for the agent's reply before saying it did not answer."""


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


class Config(Section):
    device: DeviceConfig = DeviceConfig()
    audio: AudioConfig = AudioConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    gateway: GatewayConfig = GatewayConfig()
    tools: ToolsConfig = ToolsConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
    miot: MiotConfig = MiotConfig()
    ble: BleConfig = BleConfig()
    gpio: GpioConfig = GpioConfig()
    openclaw: OpenClawConfig = OpenClawConfig()
    brain: BrainConfig = BrainConfig()
    logging: LoggingConfig = LoggingConfig()

    def secrets(self) -> list[str]:
        """Every secret value in this config, so the log filter can mask them."""
        found: list[str] = []
        for section_name in type(self).model_fields:
            found += _secret_values(getattr(self, section_name))
        return found


def _secret_values(model: BaseModel) -> list[str]:
    """The secrets of one section, including those in nested entries (miot.devices[].token)."""
    found: list[str] = []
    for value in model.__dict__.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, SecretStr) and item.get_secret_value():
                found.append(item.get_secret_value())
            elif isinstance(item, BaseModel):
                found += _secret_values(item)
    return found


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_config_path() -> Path:
    """/etc/pibuddy/config.yaml when installed as a service, else ./config.yaml."""
    return SYSTEM_CONFIG_PATH if SYSTEM_CONFIG_PATH.exists() else Path("config.yaml")


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, merge env overrides into, and validate the configuration at `path`.

    `path=None` means no file: defaults plus environment.
    """
    data = _read_yaml(path) if path is not None else {}
    problems = _apply_env_overrides(data, os.environ if environ is None else environ)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(error) for error in exc.errors()]
    if problems:
        raise ConfigError(problems)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found (copy config.yaml from the PiBuddy repository)"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path}: {where}invalid YAML ({reason})"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections, not {type(data).__name__}"])
    return data


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Fold `PIBUDDY_<SECTION>_<KEY>` variables into `data`; return problems with unknown names."""
    problems = []
    sections = Config.model_fields
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NON_CONFIG_ENV:
            continue
        section_name, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section_name not in sections or not key:
            problems.append(f"{name}: not a PIBUDDY_<SECTION>_<KEY> config variable")
            continue
        section_model = sections[section_name].annotation
        assert section_model is not None
        if key not in section_model.model_fields:
            problems.append(f"{name}: {section_name} has no key {key!r}")
            continue
        section = data.setdefault(section_name, {})
        if not isinstance(section, dict):
            continue  # the file's own error for this section is reported by validation
        section[key] = value
    return problems


# Variables that steer PiBuddy itself rather than override config keys.
_NON_CONFIG_ENV: Final = frozenset({"PIBUDDY_CONFIG", "PIBUDDY_NATIVE"})

_FRIENDLY_MESSAGES: Final = {
    "url_parsing": "not a URL",
    "url_scheme": "not an http(s) URL",
    "missing": "required",
    "int_parsing": "not a whole number",
    "int_from_float": "not a whole number",
    "float_parsing": "not a number",
    "bool_parsing": "not true or false",
    "string_type": "not a text value",
    "dict_type": "must be a mapping of keys",
    "model_type": "must be a mapping of keys",
    "list_type": "must be a list",
}


def _describe(error: Mapping[str, Any]) -> str:
    path = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key{_did_you_mean(error['loc'])}"
    message = _FRIENDLY_MESSAGES.get(kind, error["msg"])
    if kind in {"enum", "string_pattern_mismatch", "greater_than_equal", "less_than_equal", "greater_than"}:
        message = error["msg"][0].lower() + error["msg"][1:]
    return f"{path}: {message} (got {error['input']!r})" if kind != "missing" else f"{path}: {message}"


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return ""
        model = field.annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(model.model_fields)})"
