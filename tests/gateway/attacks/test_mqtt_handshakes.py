"""Finding 3: sockets that never send CONNECT, reopened as fast as they are closed, and keep-alive 0.

Seen: 200 such sockets kept every device out (0/5 connects for 45 s) and logged 136 865 WARNING lines;
200 squatters with keep-alive 0 were never timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from pibuddy.gateway import mqtt_server
from pibuddy.gateway.service import GatewayService
from tests.gateway.attacks.helpers import ATTACKER, attacker_address, bounded_log, close_all, open_idle
from tests.gateway.conftest import DeviceFactory, connect_device
from tests.gateway.test_bad_input import still_serving
from tests.peers.xiaozhi_server import XiaozhiTestServer

ATTACK_SECONDS = 3.0
MAX_OPENS = 3000


async def _silent_flood(port: int, sources: list[str], stop: asyncio.Event) -> int:
    """Keep one silent socket open per entry of `sources`, reopening each as soon as it is closed."""
    opened = 0
    writers: list[asyncio.StreamWriter] = []

    async def hold(source: str) -> None:
        nonlocal opened
        while not stop.is_set() and opened < MAX_OPENS:
            opened += 1
            try:
                reader, writer = await open_idle(port, source)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writers.append(writer)
            with contextlib.suppress(ConnectionError, OSError):
                stop_wait = asyncio.ensure_future(stop.wait())
                read = asyncio.ensure_future(reader.read(1))
                await asyncio.wait({stop_wait, read}, return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                read.cancel()

    try:
        await asyncio.gather(*(hold(source) for source in sources))
    finally:
        close_all(writers)
    return opened


async def _legit_connects(gateway: GatewayService, tries: int) -> int:
    accepted = 0
    for _ in range(tries):
        device = await connect_device(gateway, 5, connect=False)
        try:
            accepted += await device.connect() == 0
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            await device.close()
        await asyncio.sleep(ATTACK_SECONDS / (tries + 1))
    return accepted


@pytest.mark.parametrize("sources", [[ATTACKER] * 250, [attacker_address(i % 50) for i in range(250)]],
                         ids=["one-address", "fifty-addresses"])
async def test_silent_sockets_reopened_fast_do_not_lock_devices_out(
    gateway: GatewayService, device_factory: DeviceFactory, upstream: XiaozhiTestServer,
    caplog: pytest.LogCaptureFixture, sources: list[str],
) -> None:
    assert gateway.mqtt is not None
    device = await device_factory(1)
    with bounded_log(caplog):
        stop = asyncio.Event()
        flood = asyncio.create_task(_silent_flood(gateway.mqtt.port, sources, stop))
        await asyncio.sleep(0.5)
        try:
            assert await _legit_connects(gateway, 5) == 5
            await still_serving(device, upstream)
        finally:
            stop.set()
            opened = await flood
    assert opened >= len(sources)
    await still_serving(device, upstream)


async def test_keepalive_zero_gets_a_server_side_idle_limit(
    gateway: GatewayService, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mqtt_server, "IDLE_WITHOUT_KEEPALIVE_SECONDS", 0.5)
    squatter = await connect_device(gateway, 6, connect=False)
    squatter.keepalive = 0
    started = time.monotonic()
    assert await squatter.connect() == 0
    await asyncio.wait_for(squatter.closed.wait(), 2)
    assert 0.4 < time.monotonic() - started < 2.0
    await squatter.close()
