"""Configuration: every error class gives one clear line naming the key path, and env overrides work."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from pibuddy.config import Config, load_config
from pibuddy.errors import ConfigError
from tests.conftest import REPO_ROOT


def _problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("upstream:\n  ota_url: not-a-url\n", "upstream.ota_url: not a URL (got 'not-a-url')"),
        ("upstream:\n  ota_url: ftp://x.example/ota/\n", "upstream.ota_url: not an http(s) URL"),
        ("gateway:\n  mqtt_port: 70000\n", "gateway.mqtt_port: input should be less than or equal to 65535"),
        ("gateway:\n  mqtt_port: many\n", "gateway.mqtt_port: not a whole number (got 'many')"),
        ("audio:\n  enabled: maybe\n", "audio.enabled: not true or false (got 'maybe')"),
        ("upstream:\n  hello_timout: 3\n", "upstream.hello_timout: unknown key (did you mean 'hello_timeout'?)"),
        ("stuff:\n  a: 1\n", "stuff: unknown key"),
        ("logging:\n  level: LOUD\n", "logging.level: input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("upstream: 5\n", "upstream: must be a mapping of keys (got 5)"),
        ("device:\n  device_id: AA-BB\n", "device.device_id: not a MAC address"),
        ("upstream:\n  listen_mode: shout\n", "upstream.listen_mode: string should match pattern"),
    ],
)
def test_each_error_class_names_the_key_path(tmp_path: Path, text: str, expected: str) -> None:
    problems = _problems(tmp_path, text)
    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "upstream:\n  ota_url: x\ngateway:\n  udp_port: 0\n")
    assert [p.split(":")[0] for p in problems] == ["upstream.ota_url", "gateway.udp_port"]


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "upstream:\n  ota_url: [unclosed\n")
    assert len(problems) == 1
    assert "line 3" in problems[0] or "line 2" in problems[0]
    assert "invalid YAML" in problems[0]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "top level must be a mapping" in _problems(tmp_path, "- a\n- b\n")[0]


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", {})
    assert "file not found" in caught.value.problems[0]


def test_shipped_config_yaml_is_valid_and_equals_the_defaults() -> None:
    assert load_config(REPO_ROOT / "config.yaml", {}) == Config()


def test_shipped_config_yaml_documents_every_key() -> None:
    data = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    text = (REPO_ROOT / "config.yaml").read_text().splitlines()
    for section_name, field in Config.model_fields.items():
        assert section_name in data, f"config.yaml lacks section {section_name}"
        assert field.annotation is not None
        for key in field.annotation.model_fields:
            assert key in data[section_name], f"config.yaml lacks {section_name}.{key}"
            line = next(i for i, t in enumerate(text) if t.strip().startswith(f"{key}:"))
            assert text[line - 1].strip().startswith("#"), f"{section_name}.{key} has no comment above it"


def test_env_overrides_secrets_and_plain_values(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("homeassistant:\n  enabled: true\n  token: from-file\ngateway:\n  udp_port: 9000\n")
    env = {"PIBUDDY_HOMEASSISTANT_TOKEN": "from-env-secret", "PIBUDDY_GATEWAY_UDP_PORT": "9100",
           "PIBUDDY_GATEWAY_ALLOW_TWO_PART_CLIENT_IDS": "true", "UNRELATED": "x"}
    config = load_config(path, env)
    assert config.homeassistant.token is not None
    assert config.homeassistant.token.get_secret_value() == "from-env-secret"
    assert config.gateway.udp_port == 9100
    assert config.gateway.allow_two_part_client_ids is True
    assert config.homeassistant.enabled is True  # the file's other keys stay
    assert "from-env-secret" not in repr(config)  # secrets never print


def test_env_override_is_validated_and_unknown_variables_are_reported(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "", {"PIBUDDY_GATEWAY_UDP_PORT": "lots", "PIBUDDY_GATEWAY_UPD_PORT": "1",
                                         "PIBUDDY_NOSUCH_KEY": "1"})
    assert "PIBUDDY_GATEWAY_UPD_PORT: gateway has no key 'upd_port'" in problems
    assert "PIBUDDY_NOSUCH_KEY: not a PIBUDDY_<SECTION>_<KEY> config variable" in problems
    assert any(p.startswith("gateway.udp_port: not a whole number") for p in problems)


def test_secrets_are_collected_for_log_masking() -> None:
    config = load_config(None, {"PIBUDDY_HOMEASSISTANT_TOKEN": "tok-123", "PIBUDDY_GATEWAY_SIGNATURE_KEY": "Sig-Key9"})
    assert sorted(config.secrets()) == ["Sig-Key9", "tok-123"]


def test_cli_prints_clear_message_and_exits_2(tmp_path: Path, pibuddy_env: dict[str, str], python: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("upstream:\n  ota_url: nope\n  hello_timeout: -1\n")
    result = subprocess.run([python, "-m", "pibuddy", "check", "--config", str(path)],
                            capture_output=True, text=True, env=pibuddy_env, timeout=60, check=False)
    assert result.returncode == 2
    assert "upstream.ota_url: not a URL (got 'nope')" in result.stderr
    assert "upstream.hello_timeout: input should be greater than 0" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "openclaw",
    ["openclaw:\n  enabled: true\n  transport: mqtt\n", "openclaw:\n  bridge_enabled: true\n  mqtt_host: localhost\n"],
)
def test_openclaw_broker_on_the_gateways_own_port_is_refused(tmp_path: Path, openclaw: str) -> None:
    problems = _problems(tmp_path, openclaw)  # defaults: gateway on 0.0.0.0:1883, broker 127.0.0.1:1883
    assert len(problems) == 1
    assert problems[0].startswith("openclaw.mqtt_host/openclaw.mqtt_port: ")
    assert "gateway.mqtt_port 1883" in problems[0]
    assert "set openclaw.mqtt_port" in problems[0]


def test_pibuddy_openclaw_bridge_refuses_the_gateways_port_even_when_the_bridge_is_not_enabled(
        tmp_path: Path, pibuddy_env: dict[str, str], python: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("openclaw:\n  mqtt_host: localhost\n")  # bridge_enabled: false, gateway on 1883
    assert load_config(path, {}).openclaw.mqtt_port == 1883  # fine for `pibuddy run`, which runs no bridge
    result = subprocess.run([python, "-m", "pibuddy", "openclaw-bridge", "--config", str(path)],
                            capture_output=True, text=True, env=pibuddy_env, timeout=60, check=False)
    assert result.returncode == 2
    assert "openclaw.mqtt_host/openclaw.mqtt_port: localhost:1883 is PiBuddy's own device gateway" in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        "openclaw:\n  enabled: true\n  transport: mqtt\n  mqtt_port: 1884\n",
        "openclaw:\n  enabled: true\n  transport: mqtt\n  mqtt_host: 192.0.2.20\n",
        "openclaw:\n  enabled: true\n  transport: mqtt\ngateway:\n  enabled: false\n",
        "openclaw:\n  enabled: true\n  transport: mqtt\ngateway:\n  host: 192.0.2.5\n",
        "openclaw:\n  enabled: true\n",  # ws transport: no broker at all
    ],
)
def test_openclaw_broker_elsewhere_is_accepted(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_config(path, {}).openclaw.enabled


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://192.0.2.2:8000/xiaozhi/v1/?from=mqtt_gateway", "ws://192.0.2.2:8000/xiaozhi/v1/?from=mqtt_gateway"),
        ("wss://chat.example/xiaozhi/v1/", "wss://chat.example/xiaozhi/v1/?from=mqtt_gateway"),
        ("ws://192.0.2.2:8000", "ws://192.0.2.2:8000?from=mqtt_gateway"),
    ],
)
def test_chat_server_urls_end_with_the_gateway_query(tmp_path: Path, url: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"gateway:\n  chat_servers: ['{url}']\n")
    assert load_config(path, {}).gateway.chat_servers == [expected]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://192.0.2.2:8000/xiaozhi/v1/", "gateway.chat_servers.0: not a ws:// or wss:// URL"),
        ("192.0.2.2:8000", "gateway.chat_servers.0: not a ws:// or wss:// URL"),
        ("ws:///xiaozhi/v1/", "gateway.chat_servers.0: not a ws:// or wss:// URL"),
        ("ws://h/v1/?token=x", "gateway.chat_servers.0: must end with ?from=mqtt_gateway and have no other query"),
        ("ws://h/v1/?from=mqtt_gateway&t=x", "gateway.chat_servers.0: must end with ?from=mqtt_gateway"),
    ],
)
def test_bad_chat_server_urls_are_refused(tmp_path: Path, url: str, expected: str) -> None:
    problems = _problems(tmp_path, f"gateway:\n  chat_servers: ['{url}']\n")
    assert len(problems) == 1
    assert problems[0].startswith(expected)


@pytest.mark.parametrize("device_id", ["11:22:33:44:55:66", "11_22_33_44_55_66", "11-22-33-44-55-66",
                                       " 11:22:33:44:55:66 "])
def test_device_id_takes_any_mac_spelling(device_id: str) -> None:
    """The one MAC rule (the gateway's too): six hex pairs, ':' '_' or '-', either case, stored lower case."""
    config = Config.model_validate({"device": {"device_id": device_id.replace("11", "1A")}})
    assert config.device.device_id == "1a:22:33:44:55:66"
