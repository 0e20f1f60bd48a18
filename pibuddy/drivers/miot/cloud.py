"""The Mi app API for the user's own account: homes and rooms, devices with their LAN tokens, MIoT
property get/set and actions through the cloud, and scenes.

Every call is a POST of the RC4 envelope (`cloud_crypto`) to `https://[<region>.]api.io.mi.com/app<path>`
with the session cookies; the answer is `{"code": 0, "message", "result"}`. HTTP 401/403 means the service
token expired: the client renews it once (stored passToken, else the configured password) and retries.
The session lives in the state dir (mode 600).
UNCONFIRMED: the scene endpoints (`AppSceneService/GetSceneList`, `RunScene`) and their field names.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from pibuddy.drivers.miot import cloud_crypto
from pibuddy.drivers.miot.cloud_login import CloudSession, MiAccount
from pibuddy.drivers.miot.codec import Token
from pibuddy.drivers.miot.errors import BadReply, DeviceRejected, SessionExpired
from pibuddy.drivers.miot.inventory import Device
from pibuddy.errors import AuthFailed, DeviceUnreachable, NotSetUp, Party
from pibuddy.statedir import StateDir

_LOGGER = logging.getLogger(__name__)
SESSION_FILE: Final = "miot-cloud.json"
_EXPIRED_STATUSES: Final = frozenset({401, 403})
_MAX_BODY_BYTES: Final = 8 * 1024 * 1024
_SCENE_SERVICE: Final = "/appgateway/miot/appsceneservice/AppSceneService"
_HEADERS: Final = {
    "User-Agent": "Android-7.1.1-1.0.0-ONEPLUS A3010-136-PIBUDDY APP/xiaomi.smarthome APPV/62830",
    "x-xiaomi-protocal-flag-cli": "PROTOCAL-HTTP2",
    "MIOT-ENCRYPT-ALGORITHM": "ENCRYPT-RC4",
    "Accept-Encoding": "identity",
}


def default_api_url(region: str) -> str:
    return f"https://{'' if region == 'cn' else region + '.'}api.io.mi.com/app"


@dataclass(frozen=True, slots=True)
class Home:
    home_id: str
    name: str
    rooms: dict[str, str]  # did -> room name
    dids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scene:
    scene_id: str
    name: str
    home_id: str


class MiCloud:
    """One Mi account's view of the app API.

    Args:
        state_dir: where the session is kept.
        region: cn, de, us, ru, sg or i2.
        username, password: for renewing an expired session without asking (optional).
        api_url: base URL override (tests); default from the region.
        account: the account server client (tests point it at a local fake).
        timeout: seconds per request.
    """

    def __init__(self, *, state_dir: Path, region: str = "cn", username: str | None = None,
                 password: str | None = None, api_url: str | None = None, account: MiAccount | None = None,
                 timeout: float = 10.0) -> None:
        self._state = StateDir(state_dir)
        self._url = (api_url or default_api_url(region)).rstrip("/")
        self._username, self._password = username, password
        self._account = account or MiAccount(timeout=timeout)
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._session = CloudSession.from_record(self._state.read_json(SESSION_FILE))

    @property
    def logged_in(self) -> bool:
        """Whether a session is stored (it may still turn out to be expired)."""
        return self._session is not None

    @property
    def can_log_in(self) -> bool:
        return self._session is not None or bool(self._username and self._password)

    def use_session(self, session: CloudSession) -> None:
        """Adopt and store a session from a login."""
        self._session = session
        self._state.write_json(SESSION_FILE, session.to_record())

    async def login(self) -> None:
        """Password login with the configured credentials."""
        if not (self._username and self._password):
            raise NotSetUp("no Mi account is configured: run `pibuddy miot setup`", party=Party.MI_CLOUD)
        self.use_session(await self._account.login(self._username, self._password))

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def call(self, path: str, data: Any) -> Any:
        """POST one API call and return its `result`."""
        if self._session is None:
            await self.login()
        for renewed in (False, True):
            assert self._session is not None
            status, envelope = await self._post(self._session, path, data)
            if status not in _EXPIRED_STATUSES:
                break
            if renewed:
                raise SessionExpired("the Mi cloud rejects the renewed login: run `pibuddy miot setup`")
            await self._renew()
        if status != 200:
            raise BadReply(f"the Mi cloud answered HTTP {status} to {path}")
        code = envelope.get("code")
        if code != 0:
            raise DeviceRejected(f"the Mi cloud refused {path}: {envelope.get('message') or 'no reason'} "
                                 f"(code {code})")
        return envelope.get("result")

    async def homes(self) -> list[Home]:
        result = await self.call("/v2/homeroom/gethome", {"fg": True, "fetch_share": True, "fetch_share_dev": True,
                                                          "limit": 300, "app_ver": 7})
        homes = []
        for home in _list(result, "homelist"):
            rooms = {str(did): str(room.get("name", "")) for room in home.get("roomlist") or []
                     if isinstance(room, dict) for did in room.get("dids") or []}
            homes.append(Home(str(home.get("id")), str(home.get("name", "")), rooms,
                              tuple(str(d) for d in home.get("dids") or [])))
        return homes

    async def devices(self) -> list[Device]:
        """Every device of the account with its room, token, address and online state."""
        homes = await self.homes()
        result = await self.call("/home/device_list", {"getVirtualModel": True, "getHuamiDevices": 1,
                                                       "get_split_device": False, "support_smart_home": True})
        found = []
        for item in _list(result, "list"):
            did = str(item.get("did", ""))
            home = next((h for h in homes if did in h.dids or did in h.rooms), None)
            found.append(Device(
                name=str(item.get("name") or did), did=did or None, room=home.rooms.get(did) if home else None,
                model=_text(item.get("model")), urn=_text(item.get("spec_type")), ip=_text(item.get("localip")),
                token=_token(item.get("token")), online=item.get("isOnline") if isinstance(item.get("isOnline"),
                                                                                          bool) else None,
                parent_did=_text(item.get("parent_id")), home_id=home.home_id if home else None))
        return found

    async def scenes(self, home_ids: Sequence[str]) -> list[Scene]:
        found = []
        for home_id in home_ids:
            result = await self.call(f"{_SCENE_SERVICE}/GetSceneList", {"home_id": home_id})
            found += [Scene(str(s.get("scene_id")), str(s.get("name", "")), home_id)
                      for s in _list(result, "scene_info_list")]
        return found

    async def run_scene(self, scene: Scene) -> None:
        await self.call(f"{_SCENE_SERVICE}/RunScene", {"scene_id": scene.scene_id, "trigger_key": "user.click"})

    async def _renew(self) -> None:
        session = self._session
        if session is not None and session.pass_token and self._username:
            try:
                self.use_session(await self._account.resume(self._username, session.user_id, session.pass_token))
                return
            except AuthFailed:
                _LOGGER.info("the stored Mi account login is stale; trying the password")
        if not (self._username and self._password):
            raise SessionExpired("the Mi account login expired: run `pibuddy miot setup` to log in again")
        await self.login()

    async def _post(self, session: CloudSession, path: str, data: Any) -> tuple[int, dict[str, Any]]:
        nonce = cloud_crypto.make_nonce()
        form = cloud_crypto.encrypt_form(path, json.dumps(data, separators=(",", ":")),
                                         ssecurity=session.ssecurity, nonce=nonce)
        cookie = "; ".join(f"{k}={v}" for k, v in {
            "userId": session.user_id, "serviceToken": session.service_token,
            "yetAnotherServiceToken": session.service_token, "locale": "en_US",
            "timezone": time.strftime("GMT%z"), "channel": "MI_APP_STORE"}.items())
        try:
            response = await self._client().post(self._url + path, data=form, headers={**_HEADERS, "Cookie": cookie})
        except httpx.HTTPError as exc:
            raise DeviceUnreachable(f"cannot reach the Mi cloud ({type(exc).__name__})", party=Party.MI_CLOUD) from None
        if response.status_code != 200:
            return response.status_code, {}
        if len(response.content) > _MAX_BODY_BYTES:
            raise BadReply(f"the Mi cloud sent {len(response.content)} bytes for {path}")
        try:
            plain = cloud_crypto.decrypt_body(response.content.strip(), ssecurity=session.ssecurity, nonce=nonce)
            envelope = json.loads(plain)
        except ValueError:
            raise BadReply(f"the Mi cloud's answer to {path} does not decrypt to JSON") from None
        if not isinstance(envelope, dict):
            raise BadReply(f"the Mi cloud's answer to {path} is not an object")
        return 200, envelope

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return self._http


def _list(result: Any, key: str) -> list[dict[str, Any]]:
    items = result.get(key) if isinstance(result, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _token(value: Any) -> Token | None:
    try:
        return Token.from_hex(value) if isinstance(value, str) and value else None
    except ValueError:
        return None
