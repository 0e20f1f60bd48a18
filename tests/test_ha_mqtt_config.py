"""The homeassistant.mqtt section (off unless a broker is set, strict broker URLs, the password from the
environment) and `pibuddy check`'s MQTT broker row against a real mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest

from pibuddy.config import Config, HomeAssistantMqttConfig, load_config
from pibuddy.errors import ConfigError
from pibuddy.probe import ProbeResult
from pibuddy.wiring.check import format_table, run_probes
from pibuddy.wiring.services import household_page_url
from tests.peers.mosquitto import SKIP_REASON, MosquittoBroker, TlsListener, mosquitto_binary
from tests.peers.ports import free_port
from tests.peers.tls_certs import make_server_certificate


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path, environ or {})


def test_off_by_default_and_on_with_a_broker_whose_port_follows_the_scheme(tmp_path: Path) -> None:
    assert not Config().homeassistant.mqtt.enabled
    plain = _load(tmp_path, "homeassistant:\n  mqtt:\n    broker: mqtt://192.0.2.10\n").homeassistant.mqtt
    assert (plain.enabled, plain.host, plain.port, plain.tls) == (True, "192.0.2.10", 1883, False)
    assert plain.discovery_prefix == "homeassistant"
    tls = HomeAssistantMqttConfig(broker="mqtts://broker.example:8884")
    assert (tls.host, tls.port, tls.tls) == ("broker.example", 8884, True)
    assert HomeAssistantMqttConfig(broker="mqtts://broker.example").port == 8883


@pytest.mark.parametrize(("text", "expected"), [
    ("broker: http://192.0.2.10", "homeassistant.mqtt.broker: not an mqtt:// or mqtt"),
    ("broker: mqtt://", "homeassistant.mqtt.broker: not an mqtt:// or mqtt"),
    ("broker: mqtt://192.0.2.10:99999", "homeassistant.mqtt.broker: the port is not a number from 1 to 65535"),
    ("broker: mqtt://me:secret@192.0.2.10", "homeassistant.mqtt.broker: only mqtt(s)://host:port"),
    ("discovery_prefix: home/#", "homeassistant.mqtt.discovery_prefix: string should match pattern"),
    ("base_topic: /pibuddy", "homeassistant.mqtt.base_topic: string should match pattern"),
    ("brokr: mqtt://192.0.2.10", "homeassistant.mqtt.brokr: unknown key (did you mean 'broker'?)"),
    ("broker: mqtts://192.0.2.10\n    ca_file: /nowhere/ca.pem",
     "homeassistant.mqtt.ca_file: cannot load /nowhere/ca.pem as a PEM CA certificate: [Errno 2]"),
    ("broker: mqtts://192.0.2.10\n    ca_file: /etc/hostname",
     "homeassistant.mqtt.ca_file: cannot load /etc/hostname as a PEM CA certificate: [X509: NO_CERTIFICATE"),
    ("broker: mqtt://192.0.2.10\n    ca_file: /etc/ssl/certs/ca-certificates.crt",
     "homeassistant.mqtt: ca_file is for a TLS broker: write the broker as mqtts://"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, f"homeassistant:\n  mqtt:\n    {text}\n")
    assert any(problem.startswith(expected) for problem in caught.value.problems), caught.value.problems


def test_the_password_comes_from_the_environment_into_the_nested_section(tmp_path: Path) -> None:
    config = _load(tmp_path, "homeassistant:\n  mqtt:\n    broker: mqtt://192.0.2.10\n",
                   {"PIBUDDY_HOMEASSISTANT_MQTT_PASSWORD": "s3cret", "PIBUDDY_HOMEASSISTANT_MQTT_USERNAME": "buddy",
                    "PIBUDDY_HOMEASSISTANT_TOKEN": "tok"})
    mqtt = config.homeassistant.mqtt
    assert mqtt.password is not None
    assert mqtt.password.get_secret_value() == "s3cret"
    assert (mqtt.username, mqtt.broker) == ("buddy", "mqtt://192.0.2.10"), "the file's keys are kept"
    assert "s3cret" in config.secrets(), "the log filter masks it"
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "", {"PIBUDDY_HOMEASSISTANT_MQTT_PASSWORT": "x"})
    assert caught.value.problems == ["PIBUDDY_HOMEASSISTANT_MQTT_PASSWORT: homeassistant has no key "
                                     "'mqtt_passwort'"]


needs_mosquitto = pytest.mark.skipif(mosquitto_binary() is None, reason=SKIP_REASON)


def _config(broker: str, **mqtt: str) -> Config:
    return Config.model_validate({"homeassistant": {"mqtt": {"broker": broker, **mqtt}}, "audio": {"enabled": False},
                                  "upstream": {"enabled": False}, "gateway": {"enabled": False}})


@needs_mosquitto
async def test_check_reports_the_broker_row_ok_refused_login_and_unreachable(tmp_path: Path) -> None:
    async with MosquittoBroker(tmp_path, users={"buddy": "right"}) as broker:
        url = f"mqtt://127.0.0.1:{broker.port}"
        rows = dict(await run_probes(_config(url, username="buddy", password="right")))
        assert rows["homeassistant mqtt"].ok, rows
        assert rows["homeassistant mqtt"].detail == f"{url} accepts PiBuddy (user buddy)"
        refused = dict(await run_probes(_config(url, username="buddy", password="wrong")))["homeassistant mqtt"]
        assert not refused.ok
        assert refused.detail.startswith(f"{url} refused the login (user buddy)")
        assert "check homeassistant.mqtt.username and password" in refused.detail
        assert "wrong" not in refused.detail
    closed = f"mqtt://127.0.0.1:{free_port()}"
    rows = await run_probes(_config(closed))
    assert not dict(rows)["homeassistant mqtt"].ok
    assert f"cannot reach the MQTT broker at {closed}" in format_table(rows)


@needs_mosquitto
async def test_check_over_mqtts_verifies_the_brokers_certificate_against_ca_file_or_the_system_cas(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    certificate = make_server_certificate(tmp_path, "127.0.0.1")
    tls = TlsListener("127.0.0.1", free_port(), certificate.cert, certificate.key)
    async with MosquittoBroker(tmp_path, tls=tls):
        url = f"mqtts://127.0.0.1:{tls.port}"
        untrusted = dict(await run_probes(_config(url)))["homeassistant mqtt"]
        assert not untrusted.ok
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.detail
        own_ca = dict(await run_probes(_config(url, ca_file=str(certificate.ca))))["homeassistant mqtt"]
        assert own_ca == ProbeResult(True, f"{url} accepts PiBuddy (anonymous)"), "the broker's own CA, by ca_file"
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate.ca))  # trust the test CA, as a system CA would be
        trusted = dict(await run_probes(_config(url)))["homeassistant mqtt"]
        assert trusted == ProbeResult(True, f"{url} accepts PiBuddy (anonymous)")


@pytest.mark.parametrize(("web", "expected"), [
    ({"enabled": True, "host": "192.0.2.7", "port": 8088, "token": "t"}, "http://192.0.2.7:8088/"),
    ({"enabled": True, "host": "2001:db8::7", "port": 9000, "token": "t"}, "http://[2001:db8::7]:9000/"),
    ({"enabled": True, "host": "127.0.0.1"}, None),  # Home Assistant's link would point at the viewer's machine
    ({"enabled": False, "host": "192.0.2.7", "token": "t"}, None),
])
def test_the_device_links_to_the_household_page_where_others_can_reach_it(web: dict[str, object],
                                                                         expected: str | None) -> None:
    assert household_page_url(Config.model_validate({"web": web})) == expected
