"""Finding 6: malformed HTTP input gave 500s with ERROR tracebacks; a 1 MB tool name made a 1 MB log line;
the UDP drop log named only the first reason of each 10 s window.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import subprocess
import sys

import aiohttp
import pytest

from pibuddy.drops import DropCounter
from pibuddy.gateway.credentials import daily_api_token
from pibuddy.gateway.service import GatewayService
from pibuddy.jsonlimits import MAX_DEPTH, JsonTooDeep, loads_limited, nesting_depth
from pibuddy.logsetup import MAX_MESSAGE_CHARS
from pibuddy.tools.mcp_standard import McpHttpServer
from pibuddy.tools.registry import ToolRegistry
from tests.gateway.attacks.helpers import ATTACKER, bounded_log
from tests.gateway.conftest import SIGNATURE_KEY, DeviceFactory, ota_credentials
from tests.gateway.test_bad_input import still_serving
from tests.peers.xiaozhi_server import XiaozhiTestServer

DEEP = b"[" * 20_000 + b"]" * 20_000  # under the 64 KiB body cap: the depth cap answers
OTA_HEAD = b"POST /xiaozhi/ota/ HTTP/1.1\r\nHost: x\r\nDevice-Id: aa:bb:cc:dd:ee:01\r\n"


def _post(head: bytes, body: bytes) -> bytes:
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def _status(port: int, raw: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
    try:
        writer.write(raw)
        line = await asyncio.wait_for(reader.readline(), 3)
        return int(line.split()[1])
    finally:
        writer.close()


async def test_malformed_requests_get_400_and_no_traceback(
    gateway: GatewayService, device_factory: DeviceFactory, upstream: XiaozhiTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert gateway.ota is not None
    assert gateway.api is not None
    token = daily_api_token(SIGNATURE_KEY, dt.date.today()).encode()
    api_head = b"POST /api/devices/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + b"\r\n"
    cases = {
        "non-UTF-8 Authorization": (gateway.api.port,
                                    b"GET /api/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n"),
        "non-UTF-8 Client-Id": (gateway.ota.port, _post(OTA_HEAD + b"Client-Id: \xff\xfe\r\n", b"{}")),
        "deep JSON to the OTA": (gateway.ota.port, _post(OTA_HEAD, DEEP)),
        "deep JSON to the API": (gateway.api.port, _post(api_head, DEEP)),
        "9 kB header to the OTA": (gateway.ota.port, _post(OTA_HEAD + b"Client-Id: " + b"a" * 9000 + b"\r\n", b"{}")),
        "9 kB Authorization": (gateway.api.port,
                               b"GET /api/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 9000
                               + b"\r\n\r\n"),
    }
    device = await device_factory(1)
    with bounded_log(caplog, limit=len(cases)):
        statuses = {name: await _status(port, raw) for name, (port, raw) in cases.items()}
        assert statuses == dict.fromkeys(cases, 400)
        assert (await ota_credentials(gateway, "aa:bb:cc:dd:ee:41"))["mqtt"]["endpoint"]
        await still_serving(device, upstream)
    assert "Error handling request" not in caplog.text


def test_json_depth_is_capped_before_parsing() -> None:
    assert nesting_depth('{"a": [1, {"b": "[[[[{{{"}]}') == 3  # brackets inside strings do not count
    assert loads_limited(b'{"a": [[1]]}') == {"a": [[1]]}
    with pytest.raises(JsonTooDeep):
        loads_limited("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(JsonTooDeep):
        loads_limited(DEEP)


def test_a_log_line_is_capped_after_secrets_are_masked() -> None:
    secret = "tok-" + "s" * 40
    script = (
        "import logging, sys; from pibuddy.logsetup import setup_logging, MAX_MESSAGE_CHARS; "
        f"setup_logging('INFO', [{secret!r}]); "
        f"logging.getLogger('mcp').warning('x' * (MAX_MESSAGE_CHARS - 10) + {secret!r} + 'y' * 1_000_000)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    (line,) = result.stderr.splitlines()
    assert len(line) < MAX_MESSAGE_CHARS + 200
    assert "tok-" not in line
    assert line.endswith("more characters)")


async def test_mcp_http_survives_a_megabyte_tool_name() -> None:
    server = McpHttpServer(ToolRegistry(), host="127.0.0.1", port=0, token=None)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{server.port}/mcp"
            headers = {"Accept": "application/json, text/event-stream"}
            call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "x" * 1_000_000, "arguments": {}}}
            async with http.post(url, json=call, headers=headers) as response:
                assert response.status < 500
            async with http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, headers=headers) as response:
                assert response.status == 200
    finally:
        await server.stop()


def test_the_drop_log_names_every_reason_of_its_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    drops = DropCounter("UDP packets", logging.getLogger("test.drops"), interval=10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    drops.count("unknown connection id")
    for _ in range(3):
        drops.count("from a second source address")
    drops.count("replayed or old sequence number")
    now[0] = 10.0
    drops.count("unknown connection id")
    first, second = (r.getMessage() for r in caplog.records)
    assert "unknown connection id: 1" in first
    assert "from a second source address: 3" in second
    assert "replayed or old sequence number: 1" in second
    assert "unknown connection id: 1" in second
    assert drops.reasons["from a second source address"] == 3
