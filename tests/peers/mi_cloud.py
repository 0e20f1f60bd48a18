"""A local stand-in for Xiaomi's account server and Mi app API (no real one can run here, so a
test double stands in for Xiaomi's cloud). It follows the wire facts PiBuddy's client is built on:

- account: `/pass/serviceLogin` (`&&&START&&&` + JSON with `_sign`, or a finished login for a valid
  passToken cookie), `/pass/serviceLoginAuth2` (code 70016 for a wrong password, `notificationUrl` for 2FA,
  `captchaUrl` for a captcha, else ssecurity/userId/passToken/location), `location` -> `serviceToken` cookie,
  and the QR login's `/longPolling/loginUrl` + long poll;
- app API under `/app`: the RC4 envelope is checked and opened with micloud's `miutils` (MIT, a reference
  implementation, used here only), cookies must carry the current service token (else HTTP 401), answers are
  `{"code", "message", "result"}` encrypted back, miotspec items carry their own codes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

USERNAME = "buddy@example.com"
PASSWORD = "correct horse"
USER_ID = "1812345678"
SSECURITY = base64.b64encode(bytes(range(16))).decode()
_SIGN_URL_BASE = "https://api.io.mi.com/app"  # micloud's signature helper cuts the path after "com"
OFFLINE = -704042011


@dataclass
class CloudDevice:
    did: str
    name: str
    model: str
    urn: str
    room: str | None = None
    token: str = ""
    ip: str = ""
    online: bool = True
    parent: str = ""


@dataclass
class FakeMiCloud:
    devices: list[CloudDevice] = field(default_factory=list)
    values: dict[tuple[str, int, int], Any] = field(default_factory=dict)
    item_codes: dict[tuple[str, int, int], int] = field(default_factory=dict)
    scenes: dict[str, str] = field(default_factory=lambda: {"9001": "Good night", "9002": "Movie time"})
    require_2fa: bool = False
    require_captcha: bool = False
    service_token: str = "service-token-1"
    pass_token: str = "pass-token-1"
    calls: list[tuple[str, Any]] = field(default_factory=list)
    scenes_run: list[str] = field(default_factory=list)
    api_errors: dict[str, int] = field(default_factory=dict)  # path -> envelope code
    logins: int = 0
    scanned: asyncio.Event = field(default_factory=asyncio.Event)
    _server: TestServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("")).rstrip("/")

    @property
    def api_url(self) -> str:
        return self.base_url + "/app"

    async def start(self) -> FakeMiCloud:
        app = web.Application()
        app.router.add_get("/pass/serviceLogin", self._service_login)
        app.router.add_post("/pass/serviceLoginAuth2", self._login_auth2)
        app.router.add_get("/sts", self._sts)
        app.router.add_get("/longPolling/loginUrl", self._qr_start)
        app.router.add_get("/longPolling/lp", self._qr_poll)
        app.router.add_post("/app/{path:.*}", self._api)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()

    def expire_session(self) -> None:
        """The service token stops working (as after Xiaomi's session lifetime)."""
        self.service_token = self.service_token.rsplit("-", 1)[0] + f"-{int(self.service_token[-1]) + 1}"

    # ---- account server

    def _login_answer(self) -> dict[str, Any]:
        return {"code": 0, "ssecurity": SSECURITY, "userId": USER_ID, "cUserId": "c-" + USER_ID,
                "passToken": self.pass_token, "location": f"{self.base_url}/sts?nonce=1&clientSign=x"}

    async def _service_login(self, request: web.Request) -> web.Response:
        if request.cookies.get("passToken") == self.pass_token and request.cookies.get("userId") == USER_ID:
            return _account_json(self._login_answer())
        return _account_json({"code": 70016, "_sign": "sign-abc", "sid": "xiaomiio"})

    async def _login_auth2(self, request: web.Request) -> web.Response:
        form = await request.post()
        expected_hash = hashlib.md5(PASSWORD.encode()).hexdigest().upper()
        if form.get("user") != USERNAME or form.get("hash") != expected_hash or form.get("_sign") != "sign-abc":
            return _account_json({"code": 70016, "desc": "登录验证失败", "captchaUrl": None})
        if self.require_captcha:
            return _account_json({"code": 87001, "captchaUrl": "/pass/getCode?icodeType=login"})
        if self.require_2fa:
            return _account_json({"code": 0, "location": "", "notificationUrl":
                                  "https://account.xiaomi.com/identity/authStart?sid=xiaomiio"})
        return _account_json(self._login_answer())

    async def _sts(self, request: web.Request) -> web.Response:
        self.logins += 1
        response = web.Response(text="ok")
        response.set_cookie("serviceToken", self.service_token)
        return response

    async def _qr_start(self, request: web.Request) -> web.Response:
        return _account_json({"code": 0, "qr": f"{self.base_url}/qr.png", "loginUrl": f"{self.base_url}/login?q=1",
                              "lp": f"{self.base_url}/longPolling/lp", "timeout": 5})

    async def _qr_poll(self, request: web.Request) -> web.Response:
        await asyncio.wait_for(self.scanned.wait(), 10)
        return _account_json(self._login_answer())

    # ---- app API

    async def _api(self, request: web.Request) -> web.Response:
        from micloud import miutils  # noqa: PLC0415 - the reference envelope code, test-time only

        if request.cookies.get("serviceToken") != self.service_token or request.cookies.get("userId") != USER_ID:
            return web.Response(status=401, text="auth err")
        form = await request.post()
        path = "/" + request.match_info["path"]
        signed = miutils.signed_nonce(SSECURITY, str(form["_nonce"]))
        url = _SIGN_URL_BASE + path
        sent = {"data": str(form["data"]), "rc4_hash__": str(form["rc4_hash__"])}
        if form.get("signature") != miutils.gen_enc_signature(url, "POST", signed, sent):
            return web.Response(status=400, text="bad signature")
        data = miutils.decrypt_rc4(signed, sent["data"]).decode()
        if miutils.decrypt_rc4(signed, sent["rc4_hash__"]).decode() != miutils.gen_enc_signature(
                url, "POST", signed, {"data": data}):
            return web.Response(status=400, text="bad rc4 hash")
        payload = json.loads(data)
        self.calls.append((path, payload))
        if path in self.api_errors:
            envelope = {"code": self.api_errors[path], "message": "data type not valid"}
        else:
            envelope = {"code": 0, "message": "ok", "result": self._route(path, payload)}
        return web.Response(text=miutils.encrypt_rc4(signed, json.dumps(envelope)))

    def _route(self, path: str, payload: dict[str, Any]) -> Any:
        match path:
            case "/v2/homeroom/gethome":
                rooms: dict[str, list[str]] = {}
                for device in self.devices:
                    if device.room:
                        rooms.setdefault(device.room, []).append(device.did)
                return {"homelist": [{"id": "home-1", "name": "Home", "dids": [d.did for d in self.devices],
                                      "roomlist": [{"id": f"room-{i}", "name": name, "dids": dids}
                                                   for i, (name, dids) in enumerate(rooms.items())]}]}
            case "/home/device_list":
                return {"list": [{"did": d.did, "name": d.name, "model": d.model, "spec_type": d.urn,
                                  "token": d.token, "localip": d.ip, "isOnline": d.online, "parent_id": d.parent}
                                 for d in self.devices]}
            case "/miotspec/prop/get":
                return [self._item(p, write=False) for p in payload["params"]]
            case "/miotspec/prop/set":
                return [self._item(p, write=True) for p in payload["params"]]
            case "/miotspec/action":
                params = payload["params"]
                code = OFFLINE if self._offline(params["did"]) else 0
                return {"did": params["did"], "siid": params["siid"], "aiid": params["aiid"], "code": code}
            case "/appgateway/miot/appsceneservice/AppSceneService/GetSceneList":
                return {"scene_info_list": [{"scene_id": k, "name": v} for k, v in self.scenes.items()]}
            case "/appgateway/miot/appsceneservice/AppSceneService/RunScene":
                self.scenes_run.append(payload["scene_id"])
                return True
        raise web.HTTPNotFound

    def _offline(self, did: str) -> bool:
        return any(d.did == did and not d.online for d in self.devices)

    def _item(self, params: dict[str, Any], *, write: bool) -> dict[str, Any]:
        key = (params["did"], params["siid"], params["piid"])
        answer = {"did": params["did"], "siid": params["siid"], "piid": params["piid"]}
        code = OFFLINE if self._offline(params["did"]) else self.item_codes.get(key, 0)
        if code != 0:
            return {**answer, "code": code}
        if write:
            self.values[key] = params["value"]
            return {**answer, "code": 0}
        return {**answer, "code": 0, "value": self.values.get(key)}


def _account_json(data: dict[str, Any]) -> web.Response:
    return web.Response(text="&&&START&&&" + json.dumps(data), content_type="application/json")
