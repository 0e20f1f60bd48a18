"""A private PulseAudio server with a null sink, for tests that need a real sound server.

    async with pulseaudio_server() as pulse:
        monkeypatch.setenv("PULSE_SERVER", pulse.server)   # or pass pulse.env to a subprocess
        await pulse.pactl("get-sink-volume", pulse.sink)

What makes it work here (Debian 12, pulseaudio 16.1, also as root):
- `-n` skips default.pa, so no hardware detection; the two `-L` modules are all the server has: a native
  socket in our own temp dir with `auth-anonymous=1` (no cookie needed) and a `module-null-sink` that is
  the default sink.
- As root, pulseaudio only warns "not intended to be run as root" and runs; no `--system` and no
  PULSE_ALLOW_ROOT are needed. HOME, XDG_RUNTIME_DIR and PULSE_RUNTIME_PATH point into the temp dir so
  nothing touches the real user's runtime or cookie; `--use-pid-file=no` lets several run at once.
- D-Bus warnings on stderr are harmless. With PULSE_SERVER set, clients never autospawn a daemon.
- The socket lives under a short /tmp dir: unix socket paths are limited to 107 bytes.
- An idle null sink renders 2 s ahead on a timer, so a new stream's first callbacks waited 1.1-1.8 s
  (measured). Each sink therefore has a keep-alive: a low-latency recorder on its monitor, connected while
  the sink is suspended, so from the resume on the sink renders in short blocks and streams start at once.
Skips the calling test (with the apt package to install) when pulseaudio or pactl is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers.processes import stop_process

_START_TIMEOUT_SECONDS = 10.0
_STOP_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class PulseServer:
    socket_path: Path
    sink: str
    env: dict[str, str]
    """A full environment for clients (subprocesses) of this server."""
    log_path: Path
    mic_source: str | None = None
    """With `mic=True`: the default source, a remap of the `mic_feed` sink's monitor (a virtual microphone)."""

    @property
    def mic_feed(self) -> str:
        """The sink to play into (paplay -d) to "speak" into the virtual microphone."""
        return f"{self.mic_source}_feed"

    @property
    def server(self) -> str:
        """The PULSE_SERVER value."""
        return f"unix:{self.socket_path}"

    async def pactl(self, *args: str) -> str:
        """Run pactl against this server; raises AssertionError with its stderr on failure."""
        process = await asyncio.create_subprocess_exec(
            "pactl", *args, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=5)
        if process.returncode != 0:
            raise AssertionError(f"pactl {' '.join(args)} failed: {stderr.decode().strip()}")
        return stdout.decode()


@contextlib.asynccontextmanager
async def pulseaudio_server(sink: str = "test_sink", *, mic: bool = False) -> AsyncIterator[PulseServer]:
    binary = shutil.which("pulseaudio")
    if binary is None or shutil.which("pactl") is None:
        pytest.skip("pulseaudio/pactl not installed (apt-get install pulseaudio pulseaudio-utils)")
    with tempfile.TemporaryDirectory(prefix="pbpa-") as directory:
        root = Path(directory)
        for sub in ("home", "runtime", "xdg"):
            (root / sub).mkdir(mode=0o700)
        socket_path = root / "native"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
        env |= {"HOME": str(root / "home"), "XDG_RUNTIME_DIR": str(root / "xdg"),
                "PULSE_RUNTIME_PATH": str(root / "runtime")}
        server = PulseServer(socket_path, sink, env | {"PULSE_SERVER": f"unix:{socket_path}"},
                             root / "pulseaudio.log", "test_mic" if mic else None)
        mic_modules = ["-L", f"module-null-sink sink_name={server.mic_feed}",
                       "-L", f"module-remap-source source_name={server.mic_source} master={server.mic_feed}.monitor",
                       ] if mic else []
        with server.log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                binary, "-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
                "--use-pid-file=no", "--log-target=stderr", "--high-priority=yes", "--realtime=yes",
                "-L", f"module-native-protocol-unix socket={socket_path} auth-anonymous=1",
                "-L", f"module-null-sink sink_name={sink}", *mic_modules,
                env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=log)
        keepalives: list[asyncio.subprocess.Process] = []
        try:
            await _wait_ready(server, process)
            if mic:
                await server.pactl("set-default-source", server.mic_source or "")
                await server.pactl("set-default-sink", sink)
            for name in (sink, server.mic_feed) if mic else (sink,):
                keepalives.append(await _keep_rendering(server, name))
            yield server
        finally:
            for keepalive in keepalives:
                await stop_process(keepalive, _STOP_TIMEOUT_SECONDS)
            await stop_process(process, _STOP_TIMEOUT_SECONDS)


async def _wait_ready(server: PulseServer, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"pulseaudio exited ({process.returncode}): {_log_tail(server)}")
        if server.socket_path.exists():
            with contextlib.suppress(AssertionError):
                await server.pactl("info")
                return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"pulseaudio not ready within {_START_TIMEOUT_SECONDS} s: {_log_tail(server)}")


async def _keep_rendering(server: PulseServer, sink: str) -> asyncio.subprocess.Process:
    """Record `sink`'s monitor at 20 ms latency (to nowhere) so the sink never sleeps on its 2 s timer."""
    await server.pactl("suspend-sink", sink, "1")
    recorder = await asyncio.create_subprocess_exec(
        "parec", "--latency-msec=20", "--rate=8000", "--channels=1", f"--device={sink}.monitor",
        env=server.env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while f"{sink}.monitor" not in await _recorded_sources(server):
        if recorder.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"parec on {sink}.monitor did not connect (exit {recorder.returncode})")
        await asyncio.sleep(0.02)
    await server.pactl("suspend-sink", sink, "0")  # resuming restarts the sink's clock at the short latency
    return recorder


async def _recorded_sources(server: PulseServer) -> set[str]:
    """The names of the sources that a client (not a module such as the remap source) records from."""
    names = {line.split("\t")[0]: line.split("\t")[1]
             for line in (await server.pactl("list", "short", "sources")).splitlines()}
    outputs = [line.split("\t") for line in (await server.pactl("list", "short", "source-outputs")).splitlines()]
    return {names.get(fields[1], "") for fields in outputs if fields[2] != "-"}


def _log_tail(server: PulseServer) -> str:
    return server.log_path.read_text(errors="replace")[-1000:]
