"""Logging in to the user's own Mi account, as the Mi Home app and the open-source token tools do.

Password login (service `xiaomiio`):
1. GET `/pass/serviceLogin?sid=xiaomiio&_json=true` -> `_sign` (or, with a valid passToken cookie, the
   finished login);
2. POST `/pass/serviceLoginAuth2` with the user, MD5(password) in upper-case hex, `_sign` and the STS
   callback -> `ssecurity`, `userId`, `passToken` and a `location`; or `notificationUrl` when Xiaomi wants
   a second factor, `captchaUrl` for a captcha, code 70016 for a wrong password;
3. GET `location` -> the `serviceToken` cookie.
QR login: GET `/longPolling/loginUrl` -> a QR image, a login URL and a long-poll URL; the long poll answers
like step 2 once the Mi Home app has scanned the code; then step 3. Every JSON answer starts `&&&START&&&`.
UNCONFIRMED: the QR query parameters beyond `sid`, `callback`, `qs` and `_json`; Xiaomi changes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import string
from dataclasses import asdict, dataclass
from typing import Any, Final

import httpx

from pibuddy.drivers.miot.errors import BadReply, TwoFactorRequired
from pibuddy.errors import AuthFailed, DeviceUnreachable, Party

_LOGGER = logging.getLogger(__name__)
DEFAULT_ACCOUNT_URL: Final = "https://account.xiaomi.com"
_STS_CALLBACK: Final = "https://sts.api.io.mi.com/sts"
_QS: Final = "%3Fsid%3Dxiaomiio%26_json%3Dtrue"
_PREFIX: Final = "&&&START&&&"
_WRONG_PASSWORD: Final = 70016
_QR_POLL_SECONDS: Final = 300.0


@dataclass(frozen=True, slots=True)
class CloudSession:
    """What a login yields; kept in the state dir (mode 600), never logged."""

    user_id: str
    ssecurity: str
    service_token: str
    pass_token: str | None = None

    def __repr__(self) -> str:
        return f"CloudSession(user_id={self.user_id!r})"

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Any) -> CloudSession | None:
        if not isinstance(record, dict):
            return None
        try:
            return cls(str(record["user_id"]), str(record["ssecurity"]), str(record["service_token"]),
                       record.get("pass_token") if isinstance(record.get("pass_token"), str) else None)
        except KeyError:
            return None


@dataclass(frozen=True, slots=True)
class QrLogin:
    """A pending QR login: show `image_url` (or `login_url`) to the user, then `finish_qr_login`."""

    image_url: str
    login_url: str
    poll_url: str
    timeout: float


class MiAccount:
    """The Mi account server.

    Args:
        account_url: base URL of the account server (tests point it at a local fake).
        timeout: seconds per request (the QR long poll waits longer).
    """

    def __init__(self, *, account_url: str = DEFAULT_ACCOUNT_URL, timeout: float = 10.0) -> None:
        self._url = account_url.rstrip("/")
        self._timeout = timeout
        # A random app-install id, as each phone has one; also makes our logins distinguishable.
        self._device_id = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))

    async def login(self, username: str, password: str) -> CloudSession:
        """Password login; raises AuthFailed (wrong password), TwoFactorRequired, DeviceUnreachable."""
        async with self._client(username) as client:
            first = await self._json(client, "GET", "/pass/serviceLogin", params={"sid": "xiaomiio", "_json": "true"})
            form = {"sid": "xiaomiio", "hash": hashlib.md5(password.encode()).hexdigest().upper(),
                    "callback": _STS_CALLBACK, "qs": _QS, "user": username, "_json": "true"}
            if isinstance(first.get("_sign"), str):
                form["_sign"] = first["_sign"]
            answer = await self._json(client, "POST", "/pass/serviceLoginAuth2", data=form)
            return await self._finish(client, answer)

    async def resume(self, username: str, user_id: str, pass_token: str) -> CloudSession:
        """A new service token from a stored passToken, without the password; AuthFailed if it is stale."""
        async with self._client(username, user_id=user_id, pass_token=pass_token) as client:
            answer = await self._json(client, "GET", "/pass/serviceLogin", params={"sid": "xiaomiio", "_json": "true"})
            if not answer.get("ssecurity"):
                raise AuthFailed("the stored Mi account login is no longer valid", party=Party.MI_CLOUD)
            return await self._finish(client, answer, pass_token=pass_token)

    async def start_qr_login(self) -> QrLogin:
        async with self._client(None) as client:
            answer = await self._json(client, "GET", "/longPolling/loginUrl", params={
                "sid": "xiaomiio", "_json": "true", "callback": _STS_CALLBACK, "qs": _QS, "_qrsize": "240"})
        try:
            return QrLogin(str(answer["qr"]), str(answer["loginUrl"]), str(answer["lp"]),
                           float(answer.get("timeout", _QR_POLL_SECONDS)))
        except (KeyError, TypeError, ValueError):
            raise BadReply("the Mi account server did not offer a QR login") from None

    async def finish_qr_login(self, qr: QrLogin) -> CloudSession:
        """Wait until the code is scanned (or the poll times out) and complete the login."""
        async with self._client(None) as client:
            try:
                response = await client.get(qr.poll_url, timeout=qr.timeout)
            except httpx.TimeoutException:
                raise AuthFailed("the QR code was not scanned in time; run setup again") from None
            except httpx.HTTPError as exc:
                raise DeviceUnreachable(f"cannot reach the Mi account server ({type(exc).__name__})",
                                        party=Party.MI_CLOUD) from None
            return await self._finish(client, _parse(response))

    def _client(self, username: str | None, *, user_id: str | None = None,
                pass_token: str | None = None) -> httpx.AsyncClient:
        cookies = {"sdkVersion": "accountsdk-18.8.15", "deviceId": self._device_id}
        if username or user_id:
            cookies["userId"] = user_id or username or ""
        if pass_token:
            cookies["passToken"] = pass_token
        return httpx.AsyncClient(base_url=self._url, cookies=cookies, timeout=self._timeout, follow_redirects=True)

    async def _finish(self, client: httpx.AsyncClient, answer: dict[str, Any], *,
                      pass_token: str | None = None) -> CloudSession:
        """Turn a step-2 style answer into a session: errors first, then the `location` for the service token."""
        if answer.get("code") == _WRONG_PASSWORD:
            raise AuthFailed("the Mi account user name or password is wrong", party=Party.MI_CLOUD)
        if answer.get("captchaUrl"):
            raise TwoFactorRequired("Xiaomi asks for a captcha: log in once with `pibuddy miot setup --qr`, "
                                    "or in the Mi Home app, then try again", url=str(answer["captchaUrl"]))
        if answer.get("notificationUrl"):
            raise TwoFactorRequired("Xiaomi asks to verify this login (SMS or e-mail code): open the link, confirm, "
                                    "then run setup again, or use `pibuddy miot setup --qr`",
                                    url=str(answer["notificationUrl"]))
        location, ssecurity, user_id = answer.get("location"), answer.get("ssecurity"), answer.get("userId")
        if not (location and ssecurity and user_id):
            raise AuthFailed(f"the Mi account login failed ({answer.get('desc') or answer.get('code') or 'no reason'})")
        response = await self._request(client, "GET", str(location))
        token = next((r.cookies.get("serviceToken") for r in [*response.history, response]
                      if r.cookies.get("serviceToken")), None)
        if not token:
            raise AuthFailed("the Mi account server gave no service token")
        _LOGGER.info("logged in to the Mi account (user id %s)", user_id)
        return CloudSession(str(user_id), str(ssecurity), token, answer.get("passToken") or pass_token)

    async def _json(self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        return _parse(await self._request(client, method, url, **kwargs))

    async def _request(self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise DeviceUnreachable(f"cannot reach the Mi account server ({type(exc).__name__})",
                                    party=Party.MI_CLOUD) from None


def _parse(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an account-server answer, after its `&&&START&&&` prefix."""
    try:
        data = json.loads(response.text.removeprefix(_PREFIX))
    except ValueError:
        raise BadReply(f"the Mi account server answered {response.status_code} without JSON") from None
    if not isinstance(data, dict):
        raise BadReply("the Mi account server answered with something other than an object")
    return data
