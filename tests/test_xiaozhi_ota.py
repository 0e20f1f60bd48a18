"""The pure OTA exchange: request headers and body, activation, response parsing, transport choice."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pibuddy.config import Transport
from pibuddy.xiaozhi.ota import (
    NoTransportOffered,
    OtaDevice,
    OtaFailure,
    OtaUnavailable,
    activate_url,
    activation_hmac,
    build_activate_request,
    build_check_request,
)
from pibuddy.xiaozhi.ota_response import (
    MqttSettings,
    OtaResponse,
    WebsocketSettings,
    choose_transport,
    parse_response,
    split_endpoint,
)

ELF = "ab" * 32
# HMAC vector cross-checked with:
#   printf '%s' b6b2d9a4-52b6-4a4f-9a0c-7d2f7c1e8f30 | openssl dgst -sha256 -mac HMAC \
#     -macopt hexkey:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
HMAC_KEY = bytes(range(32))
CHALLENGE = "b6b2d9a4-52b6-4a4f-9a0c-7d2f7c1e8f30"
EXPECTED_HMAC = "b2a9912c46f3773b3099c9f787a428f43676c579ed11167707f4395050fd1b6f"
SERIAL = "SN-0123456789abcdef0123456789a"

# manager-api's observed answer (docs/protocol.md §2.2), verbatim but for the shortened password.
MANAGER_API_ANSWER = (
    '{"server_time":{"timestamp":1757567894012,"timeZone":"Asia/Shanghai","timezone_offset":480},'
    '"activation":{"code":"460609","message":"http://xiaozhi.server.com\\n460609","challenge":"11:22:33:44:55:66"},'
    '"firmware":{"version":"1.0.1","url":"http://x/NOT_ACTIVATED_FIRMWARE_THIS_IS_A_INVALID_URL"},'
    '"websocket":{"url":"ws://198.51.100.23:8000/xiaozhi/v1/","token":""},'
    '"mqtt":{"endpoint":"198.51.100.7:1883","client_id":"GID_default@@@11_22_33_44_55_66@@@11_22_33_44_55_66",'
    '"username":"eyJpcCI6IjA6MDowOjA6MDowOjA6MSJ9","password":"Y8XP9xPE8=","publish_topic":"device-server",'
    '"subscribe_topic":"devices/p2p/11_22_33_44_55_66"}}'
)


def device(**overrides: object) -> OtaDevice:
    fields: dict[str, object] = {
        "device_id": "dc:a6:32:01:02:03",
        "client_id": "36c98363-3656-43cb-a00f-8bced2391a90",
        "board_type": "pibuddy",
        "board_name": "Raspberry Pi 5 Model B Rev 1.0",
        "app_name": "pibuddy",
        "app_version": "0.1.0",
        "elf_sha256": ELF,
        "chip_model_name": "bcm2712",
        "language": "en-US",
        "ip": "198.51.100.20",
    }
    fields.update(overrides)
    return OtaDevice(**fields)  # type: ignore[arg-type]


def parse(data: dict[str, object]) -> OtaResponse:
    return parse_response(json.dumps(data).encode())


# --- Request -----------------------------------------------------------------------------------


def test_v1_headers_are_the_firmwares_in_its_order() -> None:
    request = build_check_request("http://ota.example/xiaozhi/ota/", device())
    assert request.method == "POST"
    assert request.url == "http://ota.example/xiaozhi/ota/"
    assert list(request.headers.items()) == [
        ("Activation-Version", "1"),
        ("Device-Id", "dc:a6:32:01:02:03"),
        ("Client-Id", "36c98363-3656-43cb-a00f-8bced2391a90"),
        ("User-Agent", "pibuddy/0.1.0"),
        ("Accept-Language", "en-US"),
        ("Content-Type", "application/json"),
    ]


def test_v2_headers_add_the_serial_after_the_client_id() -> None:
    headers = build_check_request("http://ota.example/ota/", device(serial_number=SERIAL, hmac_key=HMAC_KEY)).headers
    assert list(headers)[:4] == ["Activation-Version", "Device-Id", "Client-Id", "Serial-Number"]
    assert headers["Activation-Version"] == "2"
    assert headers["Serial-Number"] == SERIAL


def test_body_has_the_firmwares_keys_in_order_with_pi_values() -> None:
    body = build_check_request("http://ota.example/ota/", device()).body
    assert b", " not in body  # compact, like the firmware
    assert b": " not in body
    data = json.loads(body)
    assert list(data) == ["version", "language", "mac_address", "uuid", "chip_model_name", "application", "board"]
    assert data["version"] == 2
    assert data["mac_address"] == "dc:a6:32:01:02:03"
    assert data["uuid"] == "36c98363-3656-43cb-a00f-8bced2391a90"
    assert data["application"] == {"name": "pibuddy", "version": "0.1.0", "elf_sha256": ELF}
    assert list(data["board"].items()) == [
        ("type", "pibuddy"),
        ("name", "Raspberry Pi 5 Model B Rev 1.0"),
        ("ip", "198.51.100.20"),
        ("mac", "dc:a6:32:01:02:03"),
    ]


def test_board_ip_is_left_out_when_unknown() -> None:
    data = json.loads(build_check_request("http://ota.example/ota/", device(ip=None)).body)
    assert "ip" not in data["board"]


@pytest.mark.parametrize(
    "overrides",
    [{"serial_number": SERIAL}, {"hmac_key": HMAC_KEY}, {"elf_sha256": "AB" * 32}, {"elf_sha256": "ab"}],
)
def test_inconsistent_devices_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"serial_number|elf_sha256"):
        device(**overrides)


def test_hmac_key_never_shows_in_repr() -> None:
    assert HMAC_KEY.hex() not in repr(device(serial_number=SERIAL, hmac_key=HMAC_KEY))
    assert repr(HMAC_KEY) not in repr(device(serial_number=SERIAL, hmac_key=HMAC_KEY))


@pytest.mark.parametrize(
    ("ota_url", "expected"),
    [
        ("http://h:8002/xiaozhi/ota/", "http://h:8002/xiaozhi/ota/activate"),
        ("http://h:8002/xiaozhi/ota", "http://h:8002/xiaozhi/ota/activate"),
        ("https://api.tenclass.net/xiaozhi/ota/", "https://api.tenclass.net/xiaozhi/ota/activate"),
    ],
)
def test_activate_url_inserts_a_slash_only_when_missing(ota_url: str, expected: str) -> None:
    assert activate_url(ota_url) == expected


def test_activation_hmac_matches_the_openssl_vector() -> None:
    assert activation_hmac(HMAC_KEY, CHALLENGE) == EXPECTED_HMAC


def test_v2_activate_body_is_the_firmwares_flat_shape() -> None:
    v2_device = device(serial_number=SERIAL, hmac_key=HMAC_KEY)
    request = build_activate_request("http://h/xiaozhi/ota/", v2_device, CHALLENGE)
    assert request.url == "http://h/xiaozhi/ota/activate"
    assert request.headers["Activation-Version"] == "2"
    assert json.loads(request.body) == {
        "algorithm": "hmac-sha256",
        "serial_number": SERIAL,
        "challenge": CHALLENGE,
        "hmac": EXPECTED_HMAC,
    }
    assert list(json.loads(request.body)) == ["algorithm", "serial_number", "challenge", "hmac"]


def test_v1_activate_body_is_empty_object() -> None:
    request = build_activate_request("http://h/xiaozhi/ota", device(), CHALLENGE)
    assert request.body == b"{}"
    assert request.headers["Activation-Version"] == "1"


# --- Response ----------------------------------------------------------------------------------


def test_manager_api_answer_parses_completely() -> None:
    response = parse_response(MANAGER_API_ANSWER.encode())
    assert response.problems == ()
    assert response.mqtt is not None
    assert (response.mqtt.host, response.mqtt.port, response.mqtt.tls) == ("198.51.100.7", 1883, False)
    assert response.mqtt.client_id == "GID_default@@@11_22_33_44_55_66@@@11_22_33_44_55_66"
    assert response.mqtt.username == "eyJpcCI6IjA6MDowOjA6MDowOjA6MSJ9"
    assert response.mqtt.password == "Y8XP9xPE8="
    assert response.mqtt.publish_topic == "device-server"
    assert response.mqtt.subscribe_topic == "devices/p2p/11_22_33_44_55_66"
    assert response.mqtt.keepalive == 240
    assert response.websocket == WebsocketSettings("ws://198.51.100.23:8000/xiaozhi/v1/", "", None, {})
    assert response.server_time is not None
    assert (response.server_time.timestamp_ms, response.server_time.timezone_offset_minutes) == (1757567894012, 480)
    assert response.firmware is not None
    assert (response.firmware.version, response.firmware.force) == ("1.0.1", False)
    assert response.activation is not None
    assert response.activation.code == "460609"
    assert response.activation.message == "http://xiaozhi.server.com\n460609"
    assert response.activation.challenge == "11:22:33:44:55:66"
    assert response.activation.timeout_ms is None


def test_every_member_is_optional() -> None:
    assert parse_response(b"{}") == OtaResponse()
    only_ws = parse({"websocket": {"url": "wss://x/xiaozhi/v1/", "token": "t0k", "version": 3}})
    assert only_ws.mqtt is None
    assert only_ws.websocket is not None
    assert (only_ws.websocket.token, only_ws.websocket.version) == ("t0k", 3)


def test_mqtt_keeps_every_string_and_int_member_and_hides_the_password() -> None:
    response = parse(
        {"mqtt": {"endpoint": "m.example", "password": "s3cret-pass", "keepalive": 60, "extra": "x", "n": 7,
                  "flag": True, "nested": {"a": 1}, "list": [1]}}
    )
    mqtt = response.mqtt
    assert mqtt is not None
    assert dict(mqtt.members) == {"endpoint": "m.example", "password": "s3cret-pass", "keepalive": 60, "extra": "x",
                                  "n": 7}
    assert (mqtt.port, mqtt.tls, mqtt.keepalive) == (8883, True, 60)
    assert (mqtt.client_id, mqtt.username, mqtt.publish_topic) == ("", "", "")
    assert "s3cret-pass" not in repr(mqtt)
    assert "s3cret-pass" not in repr(response)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("broker", ("broker", 8883)),
        ("broker:1883", ("broker", 1883)),
        ("203.0.113.1:8883", ("203.0.113.1", 8883)),
        ("[::1]:1883", ("::1", 1883)),
        ("[fe80::1]", ("fe80::1", 8883)),
    ],
)
def test_endpoint_split(endpoint: str, expected: tuple[str, int]) -> None:
    assert split_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["", ":1883", "h:0", "h:65536", "h:abc", "h:١٢", "h:", "[::1", "[::1]x", "a b:1"])
def test_unusable_mqtt_endpoint_drops_mqtt_with_a_problem(endpoint: str) -> None:
    response = parse({"mqtt": {"endpoint": endpoint}, "websocket": {"url": "ws://w/"}})
    assert response.mqtt is None
    assert any(p.startswith("mqtt.endpoint") for p in response.problems)
    assert response.websocket is not None  # the other members still count


@pytest.mark.parametrize(
    ("member", "problem_prefix"),
    [
        ({"mqtt": {"endpoint": "h:1883", "keepalive": "60"}}, "mqtt.keepalive"),
        ({"mqtt": {"endpoint": "h:1883", "keepalive": 70000}}, "mqtt.keepalive"),
        ({"mqtt": {"endpoint": "h:1883", "keepalive": True}}, "mqtt.keepalive"),
        ({"mqtt": {"endpoint": "h:1883", "password": 1234}}, "mqtt.password"),
    ],
)
def test_bad_mqtt_fields_fall_back_to_defaults(member: dict[str, object], problem_prefix: str) -> None:
    response = parse(member)
    assert response.mqtt is not None
    assert (response.mqtt.keepalive, response.mqtt.password) == (240, "")
    assert [p.split(":")[0] for p in response.problems] == [problem_prefix]


@pytest.mark.parametrize(
    "member",
    [
        {"mqtt": "h:1883"},
        {"mqtt": [1]},
        {"websocket": {"url": "http://not-ws/"}},
        {"websocket": {"url": 5}},
        {"websocket": {}},
        {"server_time": {"timestamp": "1757567894012"}},
        {"server_time": {"timestamp": True}},
        {"firmware": {"url": "http://x"}},
        {"activation": "460609"},
        {"activation": {"code": 460609}},
    ],
)
def test_wrong_types_drop_only_that_member(member: dict[str, object]) -> None:
    name = next(iter(member))
    bystander = {} if name == "firmware" else {"firmware": {"version": "1.2"}}
    response = parse({**member, **bystander, "server": "extra members are fine"})
    assert getattr(response, name) is None
    assert response.problems
    assert all(p.startswith(name) for p in response.problems)
    if name != "firmware":
        assert response.firmware is not None


def test_nan_timestamp_is_dropped() -> None:
    response = parse_response(b'{"server_time": {"timestamp": NaN}}')
    assert response.server_time is None
    assert response.problems


def test_websocket_version_of_wrong_type_is_dropped_but_the_url_kept() -> None:
    response = parse({"websocket": {"url": "ws://w/", "version": "2"}})
    assert response.websocket is not None
    assert response.websocket.version is None
    assert response.problems == ("websocket.version: not an integer (str)",)


def test_activation_needs_a_code_or_a_challenge() -> None:
    assert parse({"activation": {"message": "hi"}}).activation is None
    code_only = parse({"activation": {"code": "123456"}}).activation
    assert code_only is not None
    assert code_only.challenge is None
    challenge_only = parse({"activation": {"challenge": "abc", "timeout_ms": 30000}}).activation
    assert challenge_only is not None
    assert (challenge_only.code, challenge_only.timeout_ms) == ("", 30000)


@pytest.mark.parametrize(
    ("firmware", "current", "upgrade"),
    [
        ({"version": "1.0.1", "url": ""}, "1.0.1", False),
        ({"version": "1.0.10", "url": ""}, "1.0.9", True),
        ({"version": "0.9", "url": "", "force": 1}, "1.0", True),
        ({"version": "2.0", "url": "", "force": 0}, "10.0", False),
        ({"version": "2.0-beta", "url": ""}, "1.0", False),
    ],
)
def test_firmware_upgrade_rule(firmware: dict[str, object], current: str, upgrade: bool) -> None:
    info = parse({"firmware": firmware}).firmware
    assert info is not None
    assert info.offers_upgrade(current) is upgrade


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b"", b"[1, 2]", b'"ok"', b"\xff\xfe{", b"[" * 50000, b"{" + b" " * 70000 + b"}"],
)
def test_garbage_bodies_are_typed_errors(body: bytes) -> None:
    with pytest.raises(OtaUnavailable) as caught:
        parse_response(body)
    assert caught.value.reason is OtaFailure.BAD_BODY


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"success": false, "message": "request error."}', "request error."),
        (b'{"error": "Invalid OTA request"}', "Invalid OTA request"),
    ],
)
def test_refusals_are_typed_errors(body: bytes, message: str) -> None:
    with pytest.raises(OtaUnavailable, match=message) as caught:
        parse_response(body)
    assert caught.value.reason is OtaFailure.REJECTED


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
_member_names = st.sampled_from(["mqtt", "websocket", "server_time", "firmware", "activation", "success", "x"])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_member_names, _json | st.dictionaries(st.text(max_size=10), _json, max_size=5), max_size=6))
def test_any_json_object_parses_unless_the_server_refuses(data: dict[str, object]) -> None:
    if data.get("success") is False:
        with pytest.raises(OtaUnavailable):
            parse(data)
    else:
        assert isinstance(parse(data), OtaResponse)


# --- Transport choice --------------------------------------------------------------------------

_MQTT = parse({"mqtt": {"endpoint": "m:1883"}}).mqtt
_WS = parse({"websocket": {"url": "ws://w/"}}).websocket


@pytest.mark.parametrize(
    ("mqtt", "ws", "preference", "expected"),
    [
        (_MQTT, _WS, Transport.AUTO, MqttSettings),
        (None, _WS, Transport.AUTO, WebsocketSettings),
        (_MQTT, None, Transport.AUTO, MqttSettings),
        (_MQTT, _WS, Transport.WEBSOCKET, WebsocketSettings),
        (_MQTT, _WS, "mqtt", MqttSettings),
    ],
)
def test_choose_transport(mqtt: MqttSettings | None, ws: WebsocketSettings | None, preference: str,
                          expected: type) -> None:
    assert isinstance(choose_transport(OtaResponse(mqtt=mqtt, websocket=ws), preference), expected)


@pytest.mark.parametrize(
    ("mqtt", "ws", "preference"),
    [(None, None, Transport.AUTO), (None, _WS, Transport.MQTT), (_MQTT, None, Transport.WEBSOCKET)],
)
def test_choose_transport_refuses_what_is_not_offered(mqtt: MqttSettings | None, ws: WebsocketSettings | None,
                                                      preference: str) -> None:
    with pytest.raises(NoTransportOffered, match=f"upstream.transport is {preference}"):
        choose_transport(OtaResponse(mqtt=mqtt, websocket=ws), preference)


def test_choose_transport_rejects_unknown_preferences() -> None:
    with pytest.raises(ValueError, match="udp"):
        choose_transport(OtaResponse(mqtt=_MQTT), "udp")
