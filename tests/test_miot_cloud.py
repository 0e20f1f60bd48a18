"""The Mi cloud path against a local fake of the account server and app API: logins (password, 2FA, captcha,
QR), the RC4 envelope (checked by micloud's reference code in the fake), homes and devices with tokens,
miotspec get/set/action with per-item codes, expired sessions, scenes."""

from __future__ import annotations

import asyncio
import base64
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pibuddy.drivers.miot.cloud import SESSION_FILE, MiCloud
from pibuddy.drivers.miot.cloud_crypto import decrypt_body, encrypt_form, make_nonce, rc4, signed_nonce
from pibuddy.drivers.miot.cloud_login import MiAccount
from pibuddy.drivers.miot.cloud_transport import CloudTransport
from pibuddy.drivers.miot.errors import BadReply, DeviceRejected, SessionExpired, TwoFactorRequired
from pibuddy.drivers.miot.inventory import Device
from pibuddy.errors import AuthFailed, DeviceUnreachable
from tests.peers.mi_cloud import PASSWORD, SSECURITY, USER_ID, USERNAME, CloudDevice, FakeMiCloud

LAMP_URN = "urn:miot-spec-v2:device:light:0000A001:pibuddy-lamp1:1"
SWITCH_URN = "urn:miot-spec-v2:device:switch:0000A003:pibuddy-switch1:1"
LAMP_TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
async def fake() -> AsyncIterator[FakeMiCloud]:
    cloud = FakeMiCloud(devices=[
        CloudDevice("4294967298", "Desk lamp", "pibuddy.light.lamp1", LAMP_URN, "Study", LAMP_TOKEN, "198.51.100.20"),
        CloudDevice("blt.3.1abcd", "Hall switch", "pibuddy.switch.switch1", SWITCH_URN, "Hall", parent="hub-1"),
        CloudDevice("77", "Garage fan", "pibuddy.fan.fan1", "urn:x", None, online=False)])
    await cloud.start()
    yield cloud
    await cloud.stop()


def _cloud(fake: FakeMiCloud, state: Path, *, password: str | None = PASSWORD) -> MiCloud:
    return MiCloud(state_dir=state, username=USERNAME, password=password, api_url=fake.api_url,
                   account=MiAccount(account_url=fake.base_url, timeout=5), timeout=5)


def test_envelope_round_trip_and_nonce_layout() -> None:
    nonce = make_nonce(random_bytes=b"\x01" * 8, now=60 * 1000)
    assert nonce == "AQEBAQEBAQEAAAPo"  # 8 random bytes + minute 1000 as 4 big-endian bytes
    form = encrypt_form("/home/device_list", '{"a":1}', ssecurity=SSECURITY, nonce=nonce)
    assert list(form) == ["data", "rc4_hash__", "signature", "ssecurity", "_nonce"]
    signed = signed_nonce(SSECURITY, nonce)
    assert rc4(signed, base64.b64decode(form["data"])) == b'{"a":1}'
    assert decrypt_body(base64.b64encode(rc4(signed, b"{}")), ssecurity=SSECURITY, nonce=nonce) == b"{}"


async def test_password_login_lists_devices_with_rooms_and_tokens(fake: FakeMiCloud, tmp_path: Path) -> None:
    cloud = _cloud(fake, tmp_path)
    try:
        devices = await cloud.devices()
    finally:
        await cloud.close()
    lamp, switch, fan = devices
    assert (lamp.name, lamp.did, lamp.room, lamp.ip, lamp.urn, lamp.online) == (
        "Desk lamp", "4294967298", "Study", "198.51.100.20", LAMP_URN, True)
    assert lamp.token is not None
    assert lamp.token.raw.hex() == LAMP_TOKEN
    assert (switch.token, switch.parent_did, switch.room) == (None, "hub-1", "Hall")
    assert (fan.room, fan.online) == (None, False)
    mode = stat.S_IMODE((tmp_path / SESSION_FILE).stat().st_mode)
    assert mode == 0o600
    assert PASSWORD not in (tmp_path / SESSION_FILE).read_text()


async def test_wrong_password_two_factor_and_captcha_are_clear(fake: FakeMiCloud) -> None:
    account = MiAccount(account_url=fake.base_url, timeout=5)
    with pytest.raises(AuthFailed, match="user name or password is wrong"):
        await account.login(USERNAME, "wrong")
    fake.require_2fa = True
    with pytest.raises(TwoFactorRequired, match="verify this login") as caught:
        await account.login(USERNAME, PASSWORD)
    assert caught.value.url is not None
    assert "identity/authStart" in caught.value.url
    fake.require_2fa, fake.require_captcha = False, True
    with pytest.raises(TwoFactorRequired, match="captcha"):
        await account.login(USERNAME, PASSWORD)


async def test_qr_login_completes_once_scanned(fake: FakeMiCloud, tmp_path: Path) -> None:
    account = MiAccount(account_url=fake.base_url, timeout=5)
    qr = await account.start_qr_login()
    assert qr.image_url.endswith("/qr.png")
    waiting = asyncio.create_task(account.finish_qr_login(qr))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    fake.scanned.set()
    session = await asyncio.wait_for(waiting, 5)
    assert (session.user_id, session.service_token) == (USER_ID, fake.service_token)


async def test_miotspec_get_set_action_and_per_item_codes(fake: FakeMiCloud, tmp_path: Path) -> None:
    transport = CloudTransport(_cloud(fake, tmp_path))
    switch = Device("Hall switch", did="blt.3.1abcd")
    fan = Device("Garage fan", did="77")
    try:
        assert [r.code for r in await transport.set_properties(switch, [(2, 1, True)])] == [0]
        assert [(r.code, r.value) for r in await transport.get_properties(switch, [(2, 1)])] == [(0, True)]
        assert (await transport.action(switch, 2, 1, [])).code == 0
        fake.item_codes[("blt.3.1abcd", 2, 1)] = -704030023
        assert [r.code for r in await transport.set_properties(switch, [(2, 1, False)])] == [-704030023]
        with pytest.raises(DeviceUnreachable, match="Garage fan is offline"):  # every item said "offline"
            await transport.get_properties(fan, [(2, 1)])
    finally:
        await transport.close()
    assert fake.calls[0] == ("/miotspec/prop/set", {"params": [{"did": "blt.3.1abcd", "siid": 2, "piid": 1,
                                                                 "value": True}]})
    assert fake.calls[2] == ("/miotspec/action", {"params": {"did": "blt.3.1abcd", "siid": 2, "aiid": 1, "in": []}})


async def test_an_expired_session_is_renewed_with_the_pass_token(fake: FakeMiCloud, tmp_path: Path) -> None:
    cloud = _cloud(fake, tmp_path, password=None)
    cloud.use_session(await MiAccount(account_url=fake.base_url).login(USERNAME, PASSWORD))
    fake.expire_session()
    try:
        assert len(await cloud.homes()) == 1
    finally:
        await cloud.close()
    assert fake.logins == 2  # the first login, then the renewal
    assert fake.service_token in (tmp_path / SESSION_FILE).read_text()


async def test_an_expired_session_without_a_way_back_says_run_setup(fake: FakeMiCloud, tmp_path: Path) -> None:
    cloud = _cloud(fake, tmp_path, password=None)
    cloud.use_session(await MiAccount(account_url=fake.base_url).login(USERNAME, PASSWORD))
    fake.expire_session()
    fake.pass_token = "revoked"
    try:
        with pytest.raises(SessionExpired, match="run `pibuddy miot setup`"):
            await cloud.homes()
    finally:
        await cloud.close()


async def test_scenes_are_listed_and_run(fake: FakeMiCloud, tmp_path: Path) -> None:
    cloud = _cloud(fake, tmp_path)
    try:
        scenes = await cloud.scenes(["home-1"])
        await cloud.run_scene(scenes[1])
    finally:
        await cloud.close()
    assert [s.name for s in scenes] == ["Good night", "Movie time"]
    assert fake.scenes_run == ["9002"]


async def test_api_errors_and_unreachable_cloud_are_typed(fake: FakeMiCloud, tmp_path: Path) -> None:
    cloud = _cloud(fake, tmp_path)
    fake.api_errors["/home/device_list"] = -8
    try:
        with pytest.raises(BadReply, match="HTTP 404"):
            await cloud.call("/no/such/path", {})
        with pytest.raises(DeviceRejected, match=r"refused /home/device_list: data type not valid \(code -8\)"):
            await cloud.devices()
    finally:
        await cloud.close()
    dead = MiCloud(state_dir=tmp_path / "dead", username=USERNAME, password=PASSWORD, api_url="http://127.0.0.1:9",
                   account=MiAccount(account_url="http://127.0.0.1:9", timeout=1), timeout=1)
    with pytest.raises(DeviceUnreachable, match="Mi account server"):
        await dead.homes()
