"""The OTA client over real sockets: the xiaozhi test server, a canned HTTP peer, closed and silent ports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from pibuddy.device_client.ota_client import (
    ActivationTimedOut,
    ActivationTimings,
    OtaClient,
    fetch_upstream_settings,
)
from pibuddy.device_client.settings import UPSTREAM_FILE, UpstreamSettingsStore
from pibuddy.events import ActivationCode, DeviceState, Event, EventBus, Say, StateChanged
from pibuddy.statedir import StateDir
from pibuddy.xiaozhi.ota import OtaDevice, OtaFailure, OtaUnavailable, system_info
from pibuddy.xiaozhi.ota_response import Activation, WebsocketSettings, choose_transport
from tests.peers.ports import free_port
from tests.peers.xiaozhi_server import XiaozhiTestServer

FAST = ActivationTimings(polls=10, pending_delay=0.01, retry_delay=0.01, rounds=3)
HMAC_KEY = bytes(range(32))
SERIAL = "SN-0123456789abcdef0123456789a"


def device(**overrides: object) -> OtaDevice:
    fields: dict[str, object] = {
        "device_id": "dc:a6:32:01:02:03",
        "client_id": "36c98363-3656-43cb-a00f-8bced2391a90",
        "board_type": "pibuddy",
        "board_name": "pibuddy",
        "app_name": "pibuddy",
        "app_version": "0.1.0",
        "elf_sha256": "cd" * 32,
        "chip_model_name": "bcm2712",
        "language": "zh-CN",
        "ip": "127.0.0.1",
    }
    fields.update(overrides)
    return OtaDevice(**fields)  # type: ignore[arg-type]


def drain(subscription_queue: asyncio.Queue[Event]) -> list[Event]:
    events = []
    while not subscription_queue.empty():
        events.append(subscription_queue.get_nowait())
    return events


# --- Against the xiaozhi test server -----------------------------------------------------------


@contextlib.asynccontextmanager
async def ota_pair(dev: OtaDevice, **server_options: object) -> AsyncIterator[tuple[XiaozhiTestServer, OtaClient]]:
    async with XiaozhiTestServer(**server_options) as server, OtaClient(server.ota_url, dev) as client:  # type: ignore[arg-type]
        yield server, client


async def test_the_ca_bundle_is_never_loaded_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading it takes 0.2-1.4 s of CPU: on the loop, every OTA attempt stalled the audio and every service."""
    loop_thread, on_loop = threading.get_ident(), []
    load = ssl.SSLContext.load_verify_locations

    def recorded(context: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        if threading.get_ident() == loop_thread:
            on_loop.append(args or kwargs)
        load(context, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", recorded)
    for _ in range(2):  # a retry after a failed attempt builds a new client
        async with ota_pair(device()) as (_, client):
            assert (await client.check_version()).websocket is not None
    assert on_loop == []


async def test_check_version_without_activation() -> None:
    async with ota_pair(device()) as (server, client):
        response = await client.check_version()
    assert response.problems == ()
    assert response.activation is None
    assert response.websocket is not None
    assert response.websocket.url == server.ws_url
    assert isinstance(choose_transport(response, "auto"), WebsocketSettings)
    assert response.server_time is not None
    assert response.server_time.timezone_offset_minutes == 480
    [request] = server.ota_requests
    assert (request.method, request.path) == ("POST", "/xiaozhi/ota/")
    assert request.headers["Activation-Version"] == "1"
    assert request.headers["Device-Id"] == "dc:a6:32:01:02:03"
    assert request.headers["Client-Id"] == "36c98363-3656-43cb-a00f-8bced2391a90"
    assert request.headers["User-Agent"] == "pibuddy/0.1.0"
    assert request.headers["Accept-Language"] == "zh-CN"
    assert "Serial-Number" not in request.headers
    assert request.json == system_info(device())


async def test_tokens_and_keys_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    v2 = device(serial_number=SERIAL, hmac_key=HMAC_KEY)
    with caplog.at_level(logging.DEBUG):
        async with ota_pair(v2, websocket_token="tok-secret-123", activation=True, activation_polls=1) as (_, client):
            response = await client.provision(timings=FAST)
    assert response.websocket is not None
    assert response.websocket.token == "tok-secret-123"
    assert "ws://127.0.0.1" in caplog.text  # the summary names where, not with what
    for secret in ("tok-secret-123", HMAC_KEY.hex()):
        assert secret not in caplog.text


async def test_activation_announces_the_code_polls_and_rechecks(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    subscription = bus.subscribe()
    announced: list[Activation] = []
    only_202_is_quick = ActivationTimings(polls=10, pending_delay=0.01, retry_delay=60, rounds=3)
    async with ota_pair(device(), activation=True, activation_polls=2, activation_code="460609") as (server, client):
        with caplog.at_level(logging.INFO, logger="pibuddy.device_client.ota_client"):
            async with asyncio.timeout(10):
                response = await client.provision(bus=bus, on_code=announced.append, timings=only_202_is_quick)
    assert response.activation is None  # the re-check after 200 no longer asks
    assert len(server.ota_requests) == 2
    assert [r.path for r in server.activate_requests] == ["/xiaozhi/ota/activate"] * 2  # 202, then 200
    assert all(r.json == {} and r.headers["Activation-Version"] == "1" for r in server.activate_requests)
    assert [a.code for a in announced] == ["460609"]
    events = drain(subscription.queue)
    assert ActivationCode("460609", f"127.0.0.1:{server.http_url.rsplit(':', 1)[1]}\n460609") in events
    says = [e.text for e in events if isinstance(e, Say)]
    assert len(says) == 1
    assert "4 6 0 6 0 9" in says[0]
    states = [(e.old, e.new) for e in events if isinstance(e, StateChanged)]
    assert states == [(DeviceState.STARTING, DeviceState.ACTIVATING), (DeviceState.ACTIVATING, DeviceState.STARTING)]
    assert "code 460609" in caplog.text


async def test_v2_activation_sends_a_verifiable_hmac() -> None:
    v2 = device(serial_number=SERIAL, hmac_key=HMAC_KEY)
    async with ota_pair(v2, activation=True, activation_polls=1, activation_hmac_key=HMAC_KEY) as (server, client):
        response = await client.provision(timings=FAST)
    assert response.activation is None
    [poll] = server.activate_requests
    assert poll.hmac_valid is True
    assert poll.headers["Serial-Number"] == SERIAL
    assert list(poll.json) == ["algorithm", "serial_number", "challenge", "hmac"]


async def test_activation_gives_up_after_its_rounds() -> None:
    wrong_key = device(serial_number=SERIAL, hmac_key=b"\x01" * 32)
    timings = ActivationTimings(polls=2, pending_delay=60, retry_delay=0.01, rounds=2)  # 401 is not a 202
    bus = EventBus()
    async with ota_pair(wrong_key, activation=True, activation_polls=1, activation_hmac_key=HMAC_KEY) as (
        server,
        client,
    ):
        with pytest.raises(ActivationTimedOut, match="2 rounds of 2 polls"):
            async with asyncio.timeout(10):
                await client.provision(bus=bus, timings=timings)
    assert len(server.activate_requests) == 4  # each answered 401: hmac mismatch
    assert all(r.hmac_valid is False for r in server.activate_requests)
    assert len(server.ota_requests) == 3
    assert bus.state is DeviceState.STARTING  # not left in ACTIVATING


async def test_a_refusing_server_is_a_typed_error() -> None:
    async with ota_pair(device(device_id="not-a-mac")) as (_, client):
        with pytest.raises(OtaUnavailable, match="request error") as caught:
            await client.check_version()
    assert caught.value.reason is OtaFailure.REJECTED


async def test_settings_are_persisted_and_used_when_ota_is_down(tmp_path: Path) -> None:
    store = UpstreamSettingsStore(StateDir(tmp_path / "state"))
    async with ota_pair(device()) as (server, client):
        fresh = await fetch_upstream_settings(client, store, timings=FAST)
        ota_url = server.ota_url
    assert (tmp_path / "state" / UPSTREAM_FILE).exists()
    async with OtaClient(ota_url, device(), timeout=2) as client:  # the server is gone now
        fallback = await fetch_upstream_settings(client, store, timings=FAST)
    assert fallback.websocket == fresh.websocket
    empty_store = UpstreamSettingsStore(StateDir(tmp_path / "other"))
    async with OtaClient(ota_url, device(), timeout=2) as client:
        with pytest.raises(OtaUnavailable):
            await fetch_upstream_settings(client, empty_store, timings=FAST)


# --- Unreachable or misbehaving peers ----------------------------------------------------------


async def test_closed_port_is_refused() -> None:
    async with OtaClient(f"http://127.0.0.1:{free_port()}/xiaozhi/ota/", device(), timeout=2) as client:
        with pytest.raises(OtaUnavailable, match="refused") as caught:
            await client.check_version()
    assert caught.value.reason is OtaFailure.REFUSED


async def test_unresolvable_host_is_a_dns_error() -> None:
    # .invalid is reserved never to resolve (RFC 6761).
    async with OtaClient("http://pibuddy-test.invalid/xiaozhi/ota/", device(), timeout=3) as client:
        with pytest.raises(OtaUnavailable) as caught:
            await client.check_version()
    if caught.value.reason is OtaFailure.TIMEOUT:
        pytest.skip("the resolver did not answer within 3 s")
    assert caught.value.reason is OtaFailure.DNS



@contextlib.asynccontextmanager
async def canned_http(respond: Callable[[str, asyncio.StreamWriter], object]) -> AsyncIterator[tuple[str, list[str]]]:
    """A real HTTP/1.1 peer on 127.0.0.1 whose answer to each request (by path) the test decides."""
    paths: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            path = head.split(b" ")[1].decode()
            paths.append(path)
            result = respond(path, writer)
            if asyncio.iscoroutine(result):
                await result
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/xiaozhi/ota/", paths
    finally:
        server.close()
        await server.wait_closed()


def http_answer(status: int, body: bytes, reason: str = "X") -> bytes:
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    ("answer", "reason", "message"),
    [
        (http_answer(200, b"<html>not json</html>"), OtaFailure.BAD_BODY, "not JSON"),
        (http_answer(200, b"[]"), OtaFailure.BAD_BODY, "not an object"),
        (http_answer(200, b"{" + b" " * 70000 + b"}"), OtaFailure.BAD_BODY, "more than 65536 bytes"),
        (http_answer(500, b'{"error":"boom"}'), OtaFailure.HTTP_STATUS, "HTTP 500"),
        (http_answer(302, b""), OtaFailure.HTTP_STATUS, "HTTP 302"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"mqtt\"", OtaFailure.NETWORK, "unreachable"),
        (b"garbage, not http\r\n\r\n", OtaFailure.NETWORK, "unreachable"),
    ],
)
async def test_misbehaving_peers_are_typed_errors(answer: bytes, reason: OtaFailure, message: str) -> None:
    async with canned_http(lambda _path, writer: writer.write(answer)) as (url, _), \
            OtaClient(url, device(), timeout=2) as client:
        with pytest.raises(OtaUnavailable, match=message) as caught:
            await client.check_version()
    assert caught.value.reason is reason
    assert caught.value.status == (int(answer[9:12]) if reason is OtaFailure.HTTP_STATUS else None)


async def test_a_silent_server_times_out() -> None:
    async def never(_path: str, _writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async with canned_http(never) as (url, _), OtaClient(url, device(), timeout=0.3) as client:
        with pytest.raises(OtaUnavailable, match="did not answer in time") as caught:
            await client.check_version()
    assert caught.value.reason is OtaFailure.TIMEOUT


async def test_activation_without_a_challenge_waits_without_polling(caplog: pytest.LogCaptureFixture) -> None:
    body = json.dumps({"activation": {"code": "111222", "message": "xiaozhi.me"}}).encode()
    timings = ActivationTimings(polls=3, pending_delay=0.01, retry_delay=0.01, rounds=1)
    async with canned_http(lambda _path, writer: writer.write(http_answer(200, body))) as (url, paths), \
            OtaClient(url, device(language="en-US"), timeout=2) as client:
        bus = EventBus()
        subscription = bus.subscribe()
        with pytest.raises(ActivationTimedOut):
            await client.provision(bus=bus, timings=timings)
    assert paths == ["/xiaozhi/ota/", "/xiaozhi/ota/"]  # two checks, no /activate without a challenge
    says = [e.text for e in drain(subscription.queue) if isinstance(e, Say)]
    assert says == ["To activate PiBuddy, add it in the xiaozhi control panel with the code 1 1 1 2 2 2"]


async def test_client_must_be_entered_and_is_not_reentrant() -> None:
    client = OtaClient("http://127.0.0.1:1/xiaozhi/ota/", device())
    with pytest.raises(RuntimeError, match="async with"):
        await client.check_version()
    async with client:
        with pytest.raises(RuntimeError, match="reentrant"):
            await client.__aenter__()
    async with client:  # reusable after leaving
        pass
