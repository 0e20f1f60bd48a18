"""Finding 1: idle HTTP connections held by a neighbour (local OTA, management API, MCP HTTP).

Seen: 1 100 idle connections to the OTA port reached the 1 024-descriptor limit; devices could not connect,
the API and MCP stopped answering, and asyncio logged 296 123 accept tracebacks in 40 s.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from pibuddy.gateway.ota_server import LocalOta
from pibuddy.gateway.service import GatewayService
from pibuddy.gateway.webapp import WebApp
from pibuddy.httpserve import HTTP_POLICY, HttpPolicy
from pibuddy.tools.mcp_standard import McpHttpServer
from pibuddy.tools.registry import ToolRegistry
from tests.gateway.attacks.helpers import (
    ATTACKER,
    attacker_address,
    bounded_log,
    close_all,
    closed_by_server,
    open_idle,
)
from tests.gateway.conftest import DeviceFactory, ota_credentials
from tests.gateway.test_bad_input import still_serving
from tests.peers.xiaozhi_server import XiaozhiTestServer

REPO = Path(__file__).resolve().parents[3]


async def _hold(port: int, sources: list[str]) -> tuple[list[asyncio.StreamReader], list[asyncio.StreamWriter]]:
    pairs = [await open_idle(port, source) for source in sources]
    return [r for r, _ in pairs], [w for _, w in pairs]


async def _count_closed(readers: list[asyncio.StreamReader], within: float) -> int:
    return sum(await asyncio.gather(*(closed_by_server(r, within) for r in readers)))


async def test_one_neighbour_holds_at_most_its_share_of_ota_and_api(
    gateway: GatewayService, device_factory: DeviceFactory, upstream: XiaozhiTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert gateway.ota is not None
    assert gateway.api is not None
    device = await device_factory(1)
    with bounded_log(caplog):
        readers, writers = [], []
        for port in (gateway.ota.port, gateway.api.port):
            r, w = await _hold(port, [ATTACKER] * 30)
            readers += r
            writers += w
        try:
            # Over the per-address cap, the gateway closes at once: 30 - 8 per port.
            assert await _count_closed(readers, 1.0) == 2 * (30 - HTTP_POLICY.max_per_address)
            # During the attack: a device still gets its OTA answer and talks.
            assert (await ota_credentials(gateway, "aa:bb:cc:dd:ee:31"))["mqtt"]["endpoint"]
            await still_serving(device, upstream)
        finally:
            close_all(writers)
    await still_serving(device, upstream)


async def test_many_neighbours_hold_at_most_the_global_cap(
    gateway: GatewayService, caplog: pytest.LogCaptureFixture,
) -> None:
    assert gateway.ota is not None
    with bounded_log(caplog):
        readers, writers = await _hold(gateway.ota.port, [attacker_address(i % 50) for i in range(200)])
        try:
            assert await _count_closed(readers, 1.0) == 200 - HTTP_POLICY.max_connections
            # The oldest idle one gives way to a device's request.
            assert (await ota_credentials(gateway, "aa:bb:cc:dd:ee:32"))["mqtt"]["endpoint"]
        finally:
            close_all(writers)
    assert (await ota_credentials(gateway, "aa:bb:cc:dd:ee:32"))["mqtt"]["endpoint"]


SHORT = HttpPolicy(idle_seconds=0.3, header_seconds=0.3, response_seconds=1.0)


async def test_silent_half_sent_and_kept_alive_connections_are_closed_on_deadlines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = WebApp(LocalOta(key="Gw-Sign-Key9", mqtt_endpoint="127.0.0.1:1883").app(), "local OTA", policy=SHORT)
    await app.start("127.0.0.1", 0)
    try:
        with bounded_log(caplog):
            silent, silent_w = await open_idle(app.port)
            half, half_w = await open_idle(app.port)
            half_w.write(b"POST /xiaozhi/ota/ HTTP/1.1\r\nHost: x\r\n")
            body, body_w = await open_idle(app.port)
            body_w.write(b"POST /xiaozhi/ota/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            legit, legit_w = await asyncio.open_connection("127.0.0.1", app.port)
            try:
                # A legitimate keep-alive request is answered meanwhile.
                legit_w.write(b"GET /xiaozhi/ota/ HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await asyncio.wait_for(legit.readuntil(b"\r\n"), 1)).startswith(b"HTTP/1.1 200")
                for _ in range(4):  # a header trickled a byte at a time still ends at the header deadline
                    await asyncio.sleep(0.1)
                    half_w.write(b"X")
                assert await closed_by_server(silent, 1.0)
                assert await closed_by_server(half, 0.5)
                assert await closed_by_server(legit, 1.0)  # idle after its answer
                assert await closed_by_server(body, 1.5)  # body never completed: no answer in time
            finally:
                close_all([silent_w, half_w, body_w, legit_w])
    finally:
        await app.stop()
    assert app.listener is None


async def test_mcp_http_is_capped_per_address() -> None:
    server = McpHttpServer(ToolRegistry(), host="127.0.0.1", port=0, token=None)
    await server.start()
    try:
        readers, writers = await _hold(server.port, [ATTACKER] * 20)
        try:
            assert await _count_closed(readers, 1.0) == 20 - HTTP_POLICY.max_per_address
            async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{server.port}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"Accept": "application/json, text/event-stream"},
            ) as response:
                assert response.status == 200
        finally:
            close_all(writers)
    finally:
        await server.stop()


_OUT_OF_FILES = """
import asyncio, os, resource, sys
from pathlib import Path
from pibuddy.gateway.service import GatewayService
from pibuddy.logsetup import setup_logging
from pibuddy.statedir import StateDir
from tests.gateway.conftest import gateway_config

async def main():
    setup_logging("INFO")
    service = GatewayService(gateway_config([]), state_dir=StateDir(Path(sys.argv[1])))
    await service.start()
    in_use = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 16, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print(service.ota.port, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_out_of_descriptors_backs_off_with_one_log_line_and_recovers(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OUT_OF_FILES, str(tmp_path), cwd=REPO, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), 30))
        # 2 per address, under the per-address cap: only the descriptor limit stops them.
        _readers, writers = await _hold(port, [attacker_address(i // 2) for i in range(60)])
        await asyncio.sleep(3.0)
        close_all(writers)
        await asyncio.sleep(0.2)
        # Accepting resumes within the longest pause (2 s): a device gets its answer.
        async with aiohttp.ClientSession() as http:
            for _ in range(30):
                try:
                    async with http.post(f"http://127.0.0.1:{port}/xiaozhi/ota/",
                                         headers={"Device-Id": "aa:bb:cc:dd:ee:33"}, json={}) as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            else:
                raise AssertionError("the OTA never answered again after the descriptors came back")
    finally:
        process.kill()
        _, stderr = await process.communicate()
    lines = stderr.decode(errors="replace").splitlines()
    assert len(lines) < 30, f"{len(lines)} log lines, e.g. {lines[:3]}"
    assert not any("Traceback" in line for line in lines)
    assert any("EMFILE" in line for line in lines), lines
