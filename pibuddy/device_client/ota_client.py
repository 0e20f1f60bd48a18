"""The OTA and activation HTTP calls (docs/protocol.md §2), with httpx.

`OtaClient.check_version` is one attempt: any failure (DNS, refused, timeout, HTTP status, garbage or
refusing body) becomes one `OtaUnavailable` with a clear message. `provision` is the firmware's
`CheckNewVersion` minus its retry loop, which lives in supervisor.py like every reconnect loop: check,
and while the server asks for activation announce the code and poll `/activate`, then check again.

    async with OtaClient(ota_url, device) as client:
        response = await client.provision(bus=bus)        # or on_code=print_code for a CLI
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlsplit

import httpx

from pibuddy.device_client.settings import UpstreamSettingsStore
from pibuddy.events import ActivationCode, DeviceState, EventBus, Say
from pibuddy.tls import client_tls_context
from pibuddy.xiaozhi.ota import (
    MAX_RESPONSE_BYTES,
    OtaDevice,
    OtaError,
    OtaFailure,
    OtaRequest,
    OtaUnavailable,
    build_activate_request,
    build_check_request,
)
from pibuddy.xiaozhi.ota_response import Activation, OtaResponse, parse_response

_LOGGER = logging.getLogger(__name__)
_DEFAULT_TIMEOUT_SECONDS: Final = 10.0
_HTTP_OK: Final = 200
_HTTP_ACCEPTED: Final = 202
_SAY_CODE: Final = {
    "zh": "请登录控制面板添加设备，输入验证码：{digits}",
    "en": "To activate PiBuddy, add it in the xiaozhi control panel with the code {digits}",
}


class ActivationTimedOut(OtaError):
    """The server still wants activation after every round of polling; the user never entered the code."""


class ActivateResult(StrEnum):
    ACTIVATED = "activated"
    PENDING = "pending"
    """202: the code has not been entered yet."""
    FAILED = "failed"
    """Any other status, a failed request, or no challenge to answer."""


@dataclass(frozen=True, slots=True)
class ActivationTimings:
    """The firmware's activation pacing; tests shrink it."""

    polls: int = 10
    """`/activate` requests per round before checking the version again."""
    pending_delay: float = 3.0
    """Seconds to wait after a 202."""
    retry_delay: float = 10.0
    """Seconds to wait after any other answer or a failed request."""
    rounds: int = 10
    """Rounds (announce, poll, check again) before `ActivationTimedOut`; the firmware loops forever,
    PiBuddy hands over to the supervisor, which starts over after its backoff."""


DEFAULT_TIMINGS: Final = ActivationTimings()


class OtaClient:
    """Talks to one OTA server as one device. Reusable, not reentrant.

    Args:
        ota_url: The OTA URL, used as is (trailing slash kept).
        device: What the requests say about this device.
        timeout: Seconds per HTTP request (wrap a call in `asyncio.timeout` for a tighter bound).
    """

    def __init__(
        self,
        ota_url: str,
        device: OtaDevice,
        *,
        timeout: float = _DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.ota_url = ota_url
        self.device = device
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        if self._http is not None:
            raise RuntimeError("OtaClient is not reentrant")
        self._http = httpx.AsyncClient(timeout=self.timeout, verify=await client_tls_context())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def check_version(self) -> OtaResponse:
        """One check-version request. Raises `OtaUnavailable` on any failure."""
        request = build_check_request(self.ota_url, self.device)
        status, body = await self._post(request)
        if status != _HTTP_OK:
            raise OtaUnavailable(
                f"OTA server {_where(request.url)} answered HTTP {status}", reason=OtaFailure.HTTP_STATUS, status=status
            )
        response = parse_response(body)
        if response.problems:
            _LOGGER.warning("OTA answer from %s: %s", _where(request.url), "; ".join(response.problems))
        self._log_summary(response)
        return response

    async def activate(self, challenge: str) -> ActivateResult:
        """One `/activate` poll; failures are logged and reported as FAILED, as the firmware just waits."""
        request = build_activate_request(self.ota_url, self.device, challenge)
        try:
            status, _ = await self._post(request)
        except OtaUnavailable as exc:
            _LOGGER.warning("activation poll failed: %s", exc)
            return ActivateResult.FAILED
        if status == _HTTP_OK:
            return ActivateResult.ACTIVATED
        if status == _HTTP_ACCEPTED:
            return ActivateResult.PENDING
        _LOGGER.warning("activation poll: %s answered HTTP %d", _where(request.url), status)
        return ActivateResult.FAILED

    async def provision(
        self,
        *,
        bus: EventBus | None = None,
        on_code: Callable[[Activation], None] | None = None,
        timings: ActivationTimings = DEFAULT_TIMINGS,
    ) -> OtaResponse:
        """Check the version, activating first if the server asks; return the final answer.

        Args:
            bus: Gets `ActivationCode`, `Say` and the ACTIVATING state while the code is pending.
            on_code: Called with each announced activation (a CLI prints it).
            timings: Activation pacing.

        Raises:
            OtaUnavailable: a check-version request failed (retry later).
            ActivationTimedOut: still not activated after `timings.rounds` rounds.
        """
        response = await self.check_version()
        activation = response.activation
        if activation is None:
            return response
        previous = bus.state if bus is not None else None
        if bus is not None:
            bus.set_state(DeviceState.ACTIVATING, "waiting for the activation code")
        try:
            for _ in range(timings.rounds):
                self._announce(activation, bus, on_code)
                await self._poll(activation, timings)
                response = await self.check_version()
                if response.activation is None:
                    _LOGGER.info("device activated")
                    return response
                activation = response.activation
        finally:
            if bus is not None and previous is not None:
                bus.set_state(previous, "activation over")
        raise ActivationTimedOut(
            f"the activation code was not entered in time ({timings.rounds} rounds of {timings.polls} polls)"
        )

    async def _poll(self, activation: Activation, timings: ActivationTimings) -> None:
        """Up to `timings.polls` polls; returns early once the server says activated."""
        for _ in range(timings.polls):
            if activation.challenge is None:
                # The firmware cannot activate without a challenge and just waits for the next check.
                result = ActivateResult.FAILED
            else:
                result = await self.activate(activation.challenge)
            if result is ActivateResult.ACTIVATED:
                return
            await asyncio.sleep(timings.pending_delay if result is ActivateResult.PENDING else timings.retry_delay)

    def _announce(
        self, activation: Activation, bus: EventBus | None, on_code: Callable[[Activation], None] | None
    ) -> None:
        if activation.code:
            where = " ".join(activation.message.split()) or "the xiaozhi console"
            _LOGGER.info("activation needed: add this device in the xiaozhi control panel with code %s (%s)",
                         activation.code, where)
        else:
            _LOGGER.info("activation needed: the server sent a challenge but no code; waiting for it to accept us")
        if bus is not None:
            bus.publish(ActivationCode(activation.code, activation.message))
            if activation.code:
                template = _SAY_CODE.get(self.device.language.split("-")[0].lower(), _SAY_CODE["en"])
                bus.publish(Say(template.format(digits=" ".join(activation.code))))
        if on_code is not None:
            on_code(activation)

    async def _post(self, request: OtaRequest) -> tuple[int, bytes]:
        """(status, body) of a POST; every httpx/OS error becomes one `OtaUnavailable`."""
        if self._http is None:
            raise RuntimeError("use `async with OtaClient(...)` before calling it")
        body = bytearray()
        try:
            async with self._http.stream(
                request.method, request.url, headers=dict(request.headers), content=request.body
            ) as answer:
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise OtaUnavailable(
                            f"OTA server {_where(request.url)} sent more than {MAX_RESPONSE_BYTES} bytes",
                            reason=OtaFailure.BAD_BODY)
                return answer.status_code, bytes(body)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise _unavailable(exc, request.url) from None

    def _log_summary(self, response: OtaResponse) -> None:
        offered = []
        if response.mqtt is not None:
            tls = " (TLS)" if response.mqtt.tls else ""
            offered.append(f"mqtt {response.mqtt.host}:{response.mqtt.port}{tls}")
        if response.websocket is not None:
            offered.append(f"websocket {_where(response.websocket.url)}")
        _LOGGER.info("OTA answer: %s%s", ", ".join(offered) or "no transport",
                     "; activation pending" if response.activation else "")
        if response.firmware is not None and response.firmware.offers_upgrade(self.device.app_version):
            _LOGGER.info("the server offers firmware %s; ignored (PiBuddy is updated by its installer)",
                         response.firmware.version)


def _unavailable(exc: BaseException, url: str) -> OtaUnavailable:
    """Name the cause the way a user can act on it, searching the exception chain for the OS error."""
    where = _where(url)
    if isinstance(exc, httpx.TimeoutException):
        return OtaUnavailable(f"OTA server {where} did not answer in time", reason=OtaFailure.TIMEOUT)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return OtaUnavailable(f"cannot resolve the OTA server {where} (DNS)", reason=OtaFailure.DNS)
        if isinstance(cause, ConnectionRefusedError):
            return OtaUnavailable(f"OTA server {where} refused the connection", reason=OtaFailure.REFUSED)
        cause = cause.__cause__ or cause.__context__
    detail = str(exc) or type(exc).__name__
    return OtaUnavailable(f"OTA server {where} unreachable: {detail}", reason=OtaFailure.NETWORK)


def _where(url: str) -> str:
    """scheme://host:port of a URL: enough to say where, without paths or query tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


async def fetch_upstream_settings(
    client: OtaClient,
    store: UpstreamSettingsStore,
    *,
    bus: EventBus | None = None,
    timings: ActivationTimings = DEFAULT_TIMINGS,
) -> OtaResponse:
    """`provision`, persisting the transports; when the OTA server is unavailable, the stored ones.

    Activation problems are not papered over: `ActivationTimedOut` propagates.
    """
    try:
        response = await client.provision(bus=bus, timings=timings)
    except OtaUnavailable as exc:
        stored = store.load()
        if stored.mqtt is None and stored.websocket is None:
            raise
        _LOGGER.warning("%s; connecting with the settings of the last OTA answer", exc)
        return stored
    return store.merge(response)
