"""A real mosquitto broker on 127.0.0.1 for tests, with stop/restart on the same port.

Use the ``mosquitto`` fixture (import its function into the test module) or ``MosquittoBroker``::

    from tests.peers.mosquitto import MosquittoBroker, mosquitto_fixture  # noqa: F401

    async def test_x(mosquitto: MosquittoBroker) -> None:
        ...connect to mosquitto.host:mosquitto.port...
        await mosquitto.restart()
"""

from __future__ import annotations

import asyncio
import getpass
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import pytest
import pytest_asyncio

from tests.peers.ports import free_port
from tests.peers.processes import stop_process

SKIP_REASON: Final = "mosquitto not installed (apt install mosquitto)"
_START_TIMEOUT: Final = 5.0
_STOP_TIMEOUT: Final = 3.0
_POLL_SECONDS: Final = 0.02


def mosquitto_binary() -> str | None:
    """The broker executable (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


@dataclass(frozen=True, slots=True)
class TlsListener:
    host: str
    port: int
    cert: Path
    key: Path


class MosquittoBroker:
    """``mosquitto -c <tmp conf>``: anonymous, no persistence, one listener on ``host:port``.

    Args:
        workdir: Where the config and log go (default: a temporary directory removed on stop).
        host: Listener address.
        port: Listener port (default: a free one, kept across restarts).
        tls: A second listener speaking MQTT over TLS.
        users: user name -> password; when given, anonymous clients are refused.
    """

    def __init__(self, workdir: Path | None = None, *, host: str = "127.0.0.1", port: int | None = None,
                 tls: TlsListener | None = None, users: dict[str, str] | None = None) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError(SKIP_REASON)
        self._binary = binary
        self.host = host
        self.port = port or free_port(host=host)
        self.tls = tls
        self.users = users
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mosquitto-")
            workdir = Path(self._tmp.name)
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.password_path = workdir / "mosquitto.passwd"
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    async def __aenter__(self) -> MosquittoBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the broker and return once its port accepts connections."""
        if self.running:
            return
        tls = self.tls
        if self.users:
            await self._write_password_file(self.users)
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            + (f"listener {tls.port} {tls.host}\ncertfile {tls.cert}\nkeyfile {tls.key}\n" if tls else "")
            + (f"allow_anonymous false\npassword_file {self.password_path}\n" if self.users else
               "allow_anonymous true\n")
            + "set_tcp_nodelay true\n"  # as a broker tuned for small realtime messages (the bench's latency)
            + f"user {getpass.getuser()}\n"  # as root, mosquitto would read the TLS files as user mosquitto
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        self._log = self.log_path.open("ab")
        self._process = await asyncio.create_subprocess_exec(
            self._binary, "-c", str(self.config_path), stdout=self._log, stderr=self._log
        )
        await self._wait_until_accepting()

    async def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after a few seconds)."""
        process, self._process = self._process, None
        if process is not None:
            await stop_process(process, _STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    async def restart(self, downtime: float = 0.0) -> None:
        """Stop, stay down for ``downtime`` seconds, and start again on the same port."""
        await self.stop()
        await asyncio.sleep(downtime)
        await self.start()

    async def _write_password_file(self, users: dict[str, str]) -> None:
        """mosquitto_passwd hashes the passwords (mosquitto reads only hashed password files)."""
        self.password_path.write_text("")
        for user, password in users.items():
            process = await asyncio.create_subprocess_exec(
                shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-b", str(self.password_path), user, password,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, error = await process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"mosquitto_passwd failed: {error.decode(errors='replace')}")

    async def _wait_until_accepting(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        while loop.time() < deadline:
            if self._process is None or self._process.returncode is not None:
                break
            try:
                _reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(_POLL_SECONDS)
                continue
            writer.close()
            await writer.wait_closed()
            return
        await self.stop()
        log = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"mosquitto did not accept on {self.host}:{self.port}; log tail:\n{log}")


@pytest_asyncio.fixture(name="mosquitto")
async def mosquitto_fixture(tmp_path: Path) -> AsyncIterator[MosquittoBroker]:
    """A started broker on a free 127.0.0.1 port; skips the test when mosquitto is missing."""
    if mosquitto_binary() is None:
        pytest.skip(SKIP_REASON)
    async with MosquittoBroker(tmp_path) as broker:
        yield broker
