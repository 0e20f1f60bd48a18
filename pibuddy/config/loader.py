"""The whole configuration: the `Config` model, and loading it from YAML plus environment overrides.

`load_config(path)` returns a `Config` or raises `ConfigError` with one line per problem, each naming
the key path (`upstream.ota_url: not a URL`). Any `section.key` can be overridden from the environment
as `PIBUDDY_<SECTION>_<KEY>` (for secrets such as `PIBUDDY_HOMEASSISTANT_TOKEN`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from pibuddy.config.audio import AudioConfig
from pibuddy.config.base import (
    ENV_PREFIX,
    SYSTEM_CONFIG_PATH,
    Section,
    is_loopback,
)
from pibuddy.config.control import ControlConfig, WebConfig
from pibuddy.config.core import BrainConfig, DeviceConfig, GatewayConfig, LoggingConfig, ToolsConfig, UpstreamConfig
from pibuddy.config.drivers import BleConfig, GpioConfig, HomeAssistantConfig, MiotConfig
from pibuddy.config.openclaw import OpenClawConfig, OpenClawTransport
from pibuddy.errors import ConfigError


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
    control: ControlConfig = ControlConfig()
    web: WebConfig = WebConfig()
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


def default_config_path() -> Path:
    """/etc/pibuddy/config.yaml when installed as a service, else ./config.yaml."""
    return SYSTEM_CONFIG_PATH if SYSTEM_CONFIG_PATH.exists() else Path("config.yaml")


def load_config(path: Path | None, environ: Mapping[str, str] | None = None, *,
                running_bridge: bool = False) -> Config:
    """Read, merge env overrides into, and validate the configuration at `path`.

    `path=None` means no file: defaults plus environment. `running_bridge`: the caller runs the OpenClaw MQTT
    bridge whatever `openclaw.bridge_enabled` says (`pibuddy openclaw-bridge`).
    """
    data = _read_yaml(path) if path is not None else {}
    problems = _apply_env_overrides(data, os.environ if environ is None else environ)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(error) for error in exc.errors()]
    else:
        problems += _conflicts(config, running_bridge=running_bridge)
    if problems:
        raise ConfigError(problems)
    return config


# Bind addresses that listen on every interface, loopback included.
_WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::"})


def _conflicts(config: Config, *, running_bridge: bool) -> list[str]:
    """Problems between sections: OpenClaw's MQTT broker must not be PiBuddy's own device gateway."""
    openclaw, gateway = config.openclaw, config.gateway
    bridge = openclaw.bridge_enabled or running_bridge
    uses_mqtt = (openclaw.enabled and openclaw.transport == OpenClawTransport.MQTT) or bridge
    if not (gateway.enabled and uses_mqtt and openclaw.mqtt_port == gateway.mqtt_port):
        return []
    if not _reaches_gateway(openclaw.mqtt_host, gateway):
        return []
    return [f"openclaw.mqtt_host/openclaw.mqtt_port: {openclaw.mqtt_host}:{openclaw.mqtt_port} is PiBuddy's own "
            f"device gateway (gateway.enabled, gateway.mqtt_port {gateway.mqtt_port}), which refuses OpenClaw; "
            "run the broker on another port and set openclaw.mqtt_port to it, move gateway.mqtt_port, "
            "or set gateway.enabled: false"]


def _reaches_gateway(host: str, gateway: GatewayConfig) -> bool:
    """Whether connecting to `host` lands on the gateway's MQTT listener (same port assumed)."""
    if host in (gateway.host, gateway.public_ip):
        return True
    listens_on_loopback = gateway.host in _WILDCARD_HOSTS or is_loopback(gateway.host)
    return listens_on_loopback and (is_loopback(host) or host in _WILDCARD_HOSTS)


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
        if not name.startswith(ENV_PREFIX) or name in _NON_CONFIG_ENV or name.startswith(_NON_CONFIG_ENV_PREFIXES):
            continue
        section_name, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section_name not in sections or not key:
            problems.append(f"{name}: not a PIBUDDY_<SECTION>_<KEY> config variable")
            continue
        section_model = sections[section_name].annotation
        assert isinstance(section_model, type)
        assert issubclass(section_model, BaseModel)
        path = _key_path(section_model, key)
        if path is None:
            problems.append(f"{name}: {section_name} has no key {key!r}")
            continue
        section: Any = data
        for part in (section_name, *path[:-1]):
            section = section.setdefault(part, {}) if isinstance(section, dict) else None
        if isinstance(section, dict):  # else the file's own error for this section is reported by validation
            section[path[-1]] = value
    return problems


def _key_path(model: type[BaseModel], key: str) -> list[str] | None:
    """`key` as a path into `model`: a field, or a nested section's field (`mqtt_password` -> mqtt.password)."""
    if key in model.model_fields:
        return [key]
    for name, field in model.model_fields.items():
        nested = field.annotation
        if key.startswith(name + "_") and isinstance(nested, type) and issubclass(nested, BaseModel):
            rest = _key_path(nested, key[len(name) + 1 :])
            if rest is not None:
                return [name, *rest]
    return None


# Variables that steer PiBuddy, setup.sh or the tests rather than override config keys; a user who set one
# for setup.sh must still be able to run every command in the same shell.
_NON_CONFIG_ENV: Final = frozenset({
    "PIBUDDY_CONFIG", "PIBUDDY_NATIVE",  # pibuddy
    "PIBUDDY_PYTHON", "PIBUDDY_ROOT", "PIBUDDY_MODELS_DIR", "PIBUDDY_VOSK_MIRROR", "PIBUDDY_PIPER_MIRROR",  # setup.sh
    "PIBUDDY_REQUIRE_NATIVE", "PIBUDDY_TEST_CACHE",  # scripts/test.sh
    "PIBUDDY_DEBIAN_MIRROR", "PIBUDDY_DEBIAN_SECURITY_MIRROR", "PIBUDDY_ARM64_ROOTFS_MAX_AGE_DAYS",  # arm64-check.sh
})
_NON_CONFIG_ENV_PREFIXES: Final = ("PIBUDDY_TEST_",)  # test-only knobs, e.g. PIBUDDY_TEST_VOSK_MODEL

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
