"""The home drivers' sections: Home Assistant, Xiaomi MIoT, BLE and GPIO."""

from __future__ import annotations

import re
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, HttpUrl, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from pibuddy.config.base import (
    Seconds,
    Section,
)

_MQTT_DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}
_TOPIC_SEGMENTS = r"^[^+#/\s]+(/[^+#/\s]+)*$"


def _broker_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in _MQTT_DEFAULT_PORTS or not parts.hostname:
        raise PydanticCustomError("broker_url", "not an mqtt:// or mqtts:// URL with a host (mqtt://192.0.2.10:1883)")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise PydanticCustomError("broker_url", "the port is not a number from 1 to 65535") from None
    if parts.username or parts.password or parts.path.strip("/") or parts.query:
        raise PydanticCustomError("broker_url", "only mqtt(s)://host:port; put the user name and password in "
                                  "username and password")
    return url


BrokerUrl = Annotated[str, AfterValidator(_broker_url)]


class HomeAssistantMqttConfig(Section):
    """PiBuddy as a device in Home Assistant, through Home Assistant's MQTT integration and MQTT discovery."""

    broker: BrokerUrl | None = None
    """The MQTT broker Home Assistant uses, mqtt://host:1883 or mqtts://host:8883 (TLS); empty: off."""
    username: str | None = None
    """Broker user name; empty: anonymous."""
    password: SecretStr | None = None
    """Broker password. Secret; or PIBUDDY_HOMEASSISTANT_MQTT_PASSWORD."""
    discovery_prefix: str = Field(default="homeassistant", pattern=_TOPIC_SEGMENTS)
    """Home Assistant's MQTT discovery prefix (its birth message is heard on <prefix>/status and on
    homeassistant/status)."""
    base_topic: str | None = Field(default=None, pattern=_TOPIC_SEGMENTS)
    """Where PiBuddy's states and commands live; empty: pibuddy/<device id without colons>."""
    ca_file: Path | None = None
    """For mqtts://: a PEM file with the CA that signed the broker's certificate (a self-signed Mosquitto);
    empty: the system's CAs."""

    @field_validator("ca_file")
    @classmethod
    def _ca_file_loads(cls, path: Path | None) -> Path | None:
        if path is not None:
            try:
                ssl.create_default_context(cafile=path)
            except (OSError, ssl.SSLError) as exc:  # FileNotFoundError, PermissionError, not PEM
                raise PydanticCustomError("ca_file", "cannot load {path} as a PEM CA certificate: {reason}",
                                          {"path": str(path), "reason": str(exc)}) from None
        return path

    @model_validator(mode="after")
    def _ca_file_needs_tls(self) -> HomeAssistantMqttConfig:
        if self.ca_file is not None and not self.tls:
            raise PydanticCustomError("ca_file", "ca_file is for a TLS broker: write the broker as mqtts://")
        return self

    @property
    def enabled(self) -> bool:
        return self.broker is not None

    @property
    def tls(self) -> bool:
        return self.broker is not None and urlsplit(self.broker).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.broker or "").hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.broker or "mqtt://")
        return parts.port or _MQTT_DEFAULT_PORTS[parts.scheme]


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
    mqtt: HomeAssistantMqttConfig = HomeAssistantMqttConfig()
    """PiBuddy's own entities in Home Assistant over MQTT discovery (independent of `enabled`)."""


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
    PAIR = "pair"
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
    """What a long press does: toggle_mute, abort, pair (the gateway accepts new devices for a while), or
    none (a long press is just a long push-to-talk)."""


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
