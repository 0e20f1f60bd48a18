"""Device credentials and tokens: the reference's test vectors (§12.3) and every rejection class (§3.3)."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from pibuddy.gateway.credentials import (
    CredentialRejected,
    api_token_valid,
    daily_api_token,
    generate_signature_key,
    issue_mqtt_credentials,
    key_weakness,
    server_auth_token,
    sign_password,
    validate_client,
)
from pibuddy.gateway.mqtt_codec import ConnackCode
from pibuddy.macaddr import parse_mac
from tests.peers.xiaozhi_wire import mqtt_password, ws_auth_token

KEY = "Abcdefgh9"
CLIENT_ID = "GID_test@@@11_22_33_44_55_66@@@36c98363-3656-43cb-a00f-8bced2391a90"
USERNAME = "eyJpcCI6IjIyMi4yMjIuMjIyLjIyMiJ9"
PASSWORD = b"fXr+daEDNo112brdkesDYSOP/bbVilnyYdmtyZbq594="


def test_reference_vectors() -> None:
    assert sign_password(KEY, CLIENT_ID, USERNAME) == PASSWORD.decode()
    assert daily_api_token(KEY, dt.date(2025, 9, 15)) == \
        "25f17f9be54505998fe31a5e311653f90c0d06968787003596b0b19eacb152a9"
    assert server_auth_token("Te1st12134", "36c98363-3656-43cb-a00f-8bced2391a90", "11:22:33:44:55:66",
                             1757567894) == "_LrvrIqo8upwkl5hHeJgh2toDihX5EDpvtkz_b8XFAg.1757567894"


def test_valid_three_part_client_gets_its_identity_with_the_peer_ip() -> None:
    identity = validate_client(CLIENT_ID, USERNAME, PASSWORD, "::ffff:203.0.113.7", key=KEY, allow_two_part=False)
    assert identity.mac == "11:22:33:44:55:66"
    assert identity.uuid == "36c98363-3656-43cb-a00f-8bced2391a90"
    assert identity.group == "GID_test"
    assert identity.user_data == {"ip": "203.0.113.7"}  # the TCP peer overrides what the user name claims
    assert identity.reply_topic == "devices/p2p/11_22_33_44_55_66"


@pytest.mark.parametrize(
    ("client_id", "username", "password", "allow_two_part", "code"),
    [
        (CLIENT_ID, USERNAME, b"x" + PASSWORD[1:], False, ConnackCode.BAD_USERNAME_OR_PASSWORD),
        (CLIENT_ID, USERNAME, None, False, ConnackCode.BAD_USERNAME_OR_PASSWORD),
        (CLIENT_ID, None, PASSWORD, False, ConnackCode.BAD_USERNAME_OR_PASSWORD),
        ("just-one-part", USERNAME, PASSWORD, True, ConnackCode.IDENTIFIER_REJECTED),
        ("a@@@b@@@c@@@d", USERNAME, PASSWORD, True, ConnackCode.IDENTIFIER_REJECTED),
        ("GID_test@@@11_22:33_44:55_66@@@u", USERNAME, PASSWORD, False, ConnackCode.IDENTIFIER_REJECTED),
        ("GID_test@@@11_22_33_44_55@@@u", USERNAME, PASSWORD, False, ConnackCode.IDENTIFIER_REJECTED),
        ("GID_test@@@11_22_33_44_55_66", None, None, False, ConnackCode.NOT_AUTHORIZED),
        ("GID_test@@@11_22_33_44_55_GG", None, None, True, ConnackCode.IDENTIFIER_REJECTED),
        ("GID_test@@@112233445566", None, None, True, ConnackCode.IDENTIFIER_REJECTED),
    ],
)
def test_rejections_carry_the_connack_code(
    client_id: str, username: str | None, password: bytes | None, allow_two_part: bool, code: ConnackCode
) -> None:
    with pytest.raises(CredentialRejected) as caught:
        validate_client(client_id, username, password, "1.2.3.4", key=KEY, allow_two_part=allow_two_part)
    assert caught.value.hint == code


@pytest.mark.parametrize("mac_part", ["AA_BB_CC_DD_EE_0F", "Aa_bB_cc_DD_ee_0f", "aa:bb:cc:dd:ee:0f",
                                      "AA-BB-CC-DD-EE-0F"])
def test_any_mac_spelling_is_one_device(mac_part: str) -> None:
    """Seen: a validly signed client id with an upper-case MAC was refused (rc 2); the reference takes it."""
    client_id = f"GID_test@@@{mac_part}@@@36c98363"
    password = sign_password(KEY, client_id, USERNAME).encode()
    identity = validate_client(client_id, USERNAME, password, "1.2.3.4", key=KEY, allow_two_part=False)
    assert identity.mac == "aa:bb:cc:dd:ee:0f"  # the Device-Id the chat server gets
    assert identity.reply_topic == f"devices/p2p/{mac_part}"  # as the reference: its own spelling
    two_part = validate_client(f"GID_x@@@{mac_part}", None, None, "1.2.3.4", key=KEY, allow_two_part=True)
    assert two_part.mac == "aa:bb:cc:dd:ee:0f"


@pytest.mark.parametrize(("text", "mac"), [
    ("11:22:33:44:55:66", "11:22:33:44:55:66"), ("FF_FF_FF_FF_FF_FF", "ff:ff:ff:ff:ff:ff"),
    (" aa-BB-cc-DD-ee-FF ", "aa:bb:cc:dd:ee:ff"), ("aa:bb:cc:dd:ee", None), ("aa:bb:cc:dd:ee:ff:00", None),
    ("aabb.ccdd.eeff", None), ("aa:bb_cc:dd_ee:ff", None), ("gg:bb:cc:dd:ee:ff", None), ("", None),
])
def test_parse_mac(text: str, mac: str | None) -> None:
    assert parse_mac(text) == mac


def test_signed_user_name_that_is_not_a_json_object_is_rejected() -> None:
    username = base64.b64encode(b"[1,2]").decode()
    password = sign_password(KEY, CLIENT_ID, username).encode()
    with pytest.raises(CredentialRejected) as caught:
        validate_client(CLIENT_ID, username, password, "1.2.3.4", key=KEY, allow_two_part=False)
    assert caught.value.hint == ConnackCode.BAD_USERNAME_OR_PASSWORD


def test_two_part_ids_pass_only_when_allowed() -> None:
    identity = validate_client("GID_x@@@11_22_33_44_55_66", None, None, "1.2.3.4", key=KEY, allow_two_part=True)
    assert identity.uuid is None
    assert identity.mac == "11:22:33:44:55:66"


def test_credentials_for_the_reference_docs_test_mac() -> None:
    """Seen: `pibuddy gateway credentials 11:22:33:44:55:66` said 'is not a MAC address'."""
    mqtt = issue_mqtt_credentials(KEY, mac="11:22:33:44:55:66", client_uuid=None, board_type="",
                                  endpoint="198.51.100.5:1883", ip="198.51.100.20")
    assert mqtt["client_id"] == "GID_default@@@11_22_33_44_55_66@@@11_22_33_44_55_66"
    with pytest.raises(ValueError, match="not a MAC address"):
        issue_mqtt_credentials(KEY, mac="11:22:33", client_uuid=None, board_type="", endpoint="h:1", ip="")


def test_issued_credentials_validate_and_match_the_peer_codec() -> None:
    mqtt = issue_mqtt_credentials(KEY, mac="AA:BB:CC:DD:EE:0F", client_uuid="uuid-7", board_type="bread compact",
                                  endpoint="198.51.100.5:1883", ip="198.51.100.20")
    assert mqtt["client_id"] == "GID_bread_compact@@@aa_bb_cc_dd_ee_0f@@@uuid-7"
    assert json.loads(base64.b64decode(mqtt["username"])) == {"ip": "198.51.100.20"}
    assert mqtt["password"] == mqtt_password(KEY, mqtt["client_id"], mqtt["username"])  # independent HMAC
    assert mqtt["subscribe_topic"] == "devices/p2p/aa_bb_cc_dd_ee_0f"
    assert mqtt["publish_topic"] == "device-server"
    identity = validate_client(mqtt["client_id"], mqtt["username"], mqtt["password"].encode(), "198.51.100.20",
                               key=KEY, allow_two_part=False)
    assert identity.mac == "aa:bb:cc:dd:ee:0f"


def test_api_token_window_is_yesterday_today_tomorrow() -> None:
    today = dt.date(2026, 3, 1)
    for delta, accepted in [(-2, False), (-1, True), (0, True), (1, True), (2, False)]:
        token = daily_api_token(KEY, today + dt.timedelta(days=delta))
        assert api_token_valid(KEY, token, today) is accepted
    assert not api_token_valid("Other-Key1", daily_api_token(KEY, today), today)


def test_server_token_matches_the_peer_codec() -> None:
    assert server_auth_token("Sec-ret9", None, "11:22:33:44:55:66", 1700000000) == \
        ws_auth_token("Sec-ret9", "default-client-id", "11:22:33:44:55:66", 1700000000)


@pytest.mark.parametrize(("key", "weak"), [("Abcdefgh9", False), ("abcdefgh9", True), ("Ab1", True),
                                           ("MyXiaozhiKey", True), ("Password99", True)])
def test_key_weakness_follows_the_reference_rules(key: str, weak: bool) -> None:
    assert (key_weakness(key) is not None) is weak


def test_generated_keys_are_strong_and_distinct() -> None:
    keys = {generate_signature_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(key_weakness(k) is None for k in keys)
