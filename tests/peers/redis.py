"""A real Redis (Debian's redis-server) on 127.0.0.1 for tests: no persistence, a free port, its own temp dir.

    async with RedisServer() as redis:
        ...redis.url...

Skips the calling test (with the apt package to install) when redis-server is missing.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Final

import pytest

from tests.peers.ports import free_port
from tests.peers.processes import stop_process

SKIP_REASON: Final = "redis-server not installed (./setup.sh --dev, or apt install redis-server)"
_START_TIMEOUT_SECONDS: Final = 10.0
_STOP_TIMEOUT_SECONDS: Final = 3.0


class RedisServer:
    """`redis-server` with every setting on its command line: 127.0.0.1 only, no RDB/AOF files."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/sbin:/usr/bin")
        if binary is None:
            pytest.skip(SKIP_REASON)
        self._binary = binary
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="pibuddy-redis-")
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> RedisServer:
        log = Path(self._tmp.name) / "redis.log"
        self._process = await asyncio.create_subprocess_exec(
            self._binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
            "--dir", self._tmp.name, "--logfile", str(log), "--daemonize", "no", "--protected-mode", "yes",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"PING\r\n")
                answer = await reader.readline()
                writer.close()
                if answer == b"+PONG\r\n":
                    return self
            except OSError:
                pass
            if self._process.returncode is not None or time.monotonic() > deadline:
                await self.__aexit__(None, None, None)
                raise RuntimeError(f"redis-server did not start; its log: {log.read_text() if log.exists() else ''}")
            await asyncio.sleep(0.05)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._process is not None:
            await stop_process(self._process, _STOP_TIMEOUT_SECONDS)
            self._process = None
        self._tmp.cleanup()
