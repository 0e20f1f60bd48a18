"""The attack suite's tools: attackers from other loopback addresses, and a bound on what gets logged.

Linux routes all of 127.0.0.0/8 to the loopback interface, so an attacker binds 127.0.1.x (or 127.0.0.2)
as its source address while the legitimate device stays on 127.0.0.1: per-address caps then separate them
as they would on a LAN. Every attack is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import pytest

from pibuddy.gateway.credentials import issue_mqtt_credentials
from tests.gateway.conftest import SIGNATURE_KEY
from tests.peers.firmware_device import connect_packet

ATTACKER = "127.0.0.2"
MAX_LOG_LINES: int = 40
"""Log lines (WARNING and above) an attack may cause; the findings saw 100 000+."""


def rss_mb() -> float:
    """This process's resident memory (the gateway under test runs in it)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def attacker_address(index: int) -> str:
    """One of 250 distinct attacker source addresses."""
    return f"127.0.1.{index % 250 + 1}"


async def open_idle(port: int, source: str = ATTACKER) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to 127.0.0.1:`port` from `source` that sends nothing."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """True if the server closed (or reset) the connection within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        return True
    return True


def signed(mac: str) -> dict[str, str]:
    """Valid credentials for `mac`, as the OTA (or `pibuddy gateway credentials`) issues them."""
    return issue_mqtt_credentials(SIGNATURE_KEY, mac=mac, client_uuid=None, board_type="default",
                                  endpoint="127.0.0.1:0", ip="127.0.0.1")


async def mqtt_connect_from(port: int, source: str, client_id: str, username: str, password: str,
                            ) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    """CONNECT (keep-alive 0) to 127.0.0.1:`port` from `source`: the CONNACK return code, and the connection,
    left open (the caller closes it)."""
    reader, writer = await open_idle(port, source)
    try:
        writer.write(connect_packet(client_id, username, password, keepalive=0))
        connack = await asyncio.wait_for(reader.readexactly(4), 2)
    except BaseException:
        close_all([writer])
        raise
    return connack[3], reader, writer


def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        with contextlib.suppress(Exception):
            writer.transport.abort()


@contextlib.contextmanager
def bounded_log(caplog: pytest.LogCaptureFixture, limit: int = MAX_LOG_LINES) -> Iterator[None]:
    """Asserts that the block logs at most `limit` WARNING+ lines, none of them a traceback."""
    caplog.set_level(logging.INFO)
    before = len(caplog.records)
    yield
    records = caplog.records[before:]
    loud = [r for r in records if r.levelno >= logging.WARNING]
    assert len(loud) <= limit, f"{len(loud)} warning lines, e.g. {[r.getMessage()[:200] for r in loud[:5]]}"
    assert not [r for r in records if r.exc_info], "a traceback was logged"
