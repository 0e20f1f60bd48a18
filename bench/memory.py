"""Memory of the whole appliance: `pibuddy run` with the default config.yaml, RSS after each service starts,
after idle listening and after ten spoken turns; and where the memory goes, import by import.

    .venv/bin/python bench/memory.py                       # default config, 60 s idle, 10 turns
    .venv/bin/python bench/memory.py --no-brain --idle 600 # brain.mode upstream (no local brain)
    .venv/bin/python bench/memory.py --listen-mode manual  # turns end on PiBuddy's own VAD (Silero loads)
    .venv/bin/python bench/memory.py --gateway-only        # only the gateway on
    .venv/bin/python bench/memory.py --imports             # RSS added by each package group, in start order

The appliance is the real `pibuddy run` in its own process with config.yaml as shipped, changed only where a
test machine must differ: the state dir (a temp dir), the xiaozhi server's OTA URL (the xiaozhi test server,
WebSocket, on 127.0.0.1), the gateway bound to 127.0.0.1 on free ports, and no mDNS (the bench stays off the
LAN). Its microphone and speaker are a private PulseAudio server's virtual devices. The bench reads the
process's log: at each "service X is running" it samples VmRSS. Then it lets the appliance idle-listen
(`--idle` seconds; CPU over that window is the idle cost), then speaks "okay nabu" into the microphone ten
times: each turn is a real conversation (wake word, hello, the utterance streamed, the server's answer and
its TTS played, then the server's goodbye). RSS is sampled after each phase; the peak is VmHWM.
Needs pulseaudio, espeak-ng and sox (installed by ./setup.sh --dev).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _results import publish  # noqa: E402

_RUNNING: Final = re.compile(r"service (\S+) is running")
_UP: Final = "PiBuddy is up"
_STEP_SECONDS: Final = 20.0
_PACER_LATENCY_MS: Final = 100
_PULSE_CLIENT_ENV: Final = ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR", "HOME")
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
#: Package groups in the order `pibuddy run` (default config) first needs them: `--imports` adds each in turn.
_IMPORT_GROUPS: Final = (
    ("python + asyncio, logging", ["asyncio", "logging"]),
    ("pibuddy.config (pydantic, yaml)", ["pibuddy.config", "pibuddy.config.loader"]),
    ("supervisor, events, wiring", ["pibuddy.supervisor", "pibuddy.wiring.services"]),
    ("tools (builtin)", ["pibuddy.wiring.tools"]),
    ("gateway (aiohttp, websockets; zeroconf only with mDNS)", ["pibuddy.gateway.service"]),
    ("audio pipeline (numpy, sounddevice, soxr, opus)", ["pibuddy.audio.pipeline"]),
    ("device client", ["pibuddy.device_client.service"]),
    ("local brain wiring (hassil, pocketsphinx)", ["pibuddy.wiring.brain"]),
)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


# --- where the memory goes --------------------------------------------------------------------------------


def imports_report() -> list[str]:
    """RSS added by importing each package group, in a fresh interpreter (each group on top of the last)."""
    code = ("import importlib, json, sys\n"
            "def rss():\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024\n"
            "rows = [('interpreter', rss(), len(sys.modules))]\n"
            f"for name, modules in {list(_IMPORT_GROUPS)!r}:\n"
            "    for module in modules: importlib.import_module(module)\n"
            "    rows.append((name, rss(), len(sys.modules)))\n"
            "print(json.dumps(rows))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    lines = ["| import (cumulative) | RSS MB | added MB | modules |", "|---|---:|---:|---:|"]
    previous = 0.0
    for name, rss, modules in rows:
        lines.append(f"| {name} | {rss:.1f} | {rss - previous:+.1f} | {modules} |")
        previous = rss
    return lines


# --- the appliance ----------------------------------------------------------------------------------------


def appliance_config(workdir: Path, ota_url: str, *, brain: bool, gateway_only: bool,
                     listen_mode: str = "auto") -> Path:
    """config.yaml as shipped, with the test machine's differences (see the module docstring)."""
    import yaml  # noqa: PLC0415

    from tests.peers.ports import free_port  # noqa: PLC0415

    config: dict[str, Any] = yaml.safe_load((REPO / "config.yaml").read_text())
    config["device"]["state_dir"] = str(workdir / "state")
    config["device"]["device_id"] = "02:00:00:00:21:01"
    config["upstream"]["ota_url"] = ota_url
    config["upstream"]["listen_mode"] = listen_mode
    config["gateway"].update(host="127.0.0.1", mqtt_port=free_port(), udp_port=free_port(), api_port=free_port(),
                             ota_port=free_port(), mdns=False)
    if not brain:
        config["brain"]["mode"] = "upstream"
    if gateway_only:
        config["audio"]["enabled"] = config["upstream"]["enabled"] = config["tools"]["builtin"] = False
    path = workdir / "config.yaml"
    path.write_text(json.dumps(config))
    return path


class Appliance:
    """`pibuddy run` as a child process, its log lines read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.started: list[tuple[str, float]] = []
        """(service, VmRSS MB) when the log said it was running."""
        self.up = asyncio.Event()
        self.log: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            if (match := _RUNNING.search(line)) and self.process.returncode is None:
                self.started.append((match.group(1), rss_mb(self.process.pid)))
            if _UP in line:
                self.up.set()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await asyncio.gather(self._reader, return_exceptions=True)


async def run_appliance(args: argparse.Namespace) -> dict[str, Any]:
    from tests.audio.conftest import play_into_microphone  # noqa: PLC0415
    from tests.peers.pulseaudio import pulseaudio_server  # noqa: PLC0415
    from tests.peers.speech import speech  # noqa: PLC0415
    from tests.peers.xiaozhi_server import XiaozhiTestServer  # noqa: PLC0415

    result: dict[str, Any] = {}
    async with pulseaudio_server(mic=True) as pulse, XiaozhiTestServer(
            mcp=True, greeting_text=None, utterance_frames=10) as server:
        pacers = [await asyncio.create_subprocess_exec(  # keep both null sinks real-time
            "parec", "-d", f"{sink}.monitor", "--raw", f"--latency-msec={_PACER_LATENCY_MS}", env=pulse.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            for sink in (pulse.sink, pulse.mic_feed)]
        env = {**os.environ, **{key: pulse.env[key] for key in _PULSE_CLIENT_ENV},
               "PULSE_SOURCE": pulse.mic_source or "", "PULSE_SINK": pulse.sink}
        with tempfile.TemporaryDirectory(prefix="pibuddy-bench-memory-") as workdir:
            config = appliance_config(Path(workdir), server.ota_url, brain=not args.no_brain,
                                      gateway_only=args.gateway_only, listen_mode=args.listen_mode)
            started_at = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pibuddy", "run", "--config", str(config), cwd=REPO, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            appliance = Appliance(process)
            try:
                await asyncio.wait_for(appliance.up.wait(), 120)
                result["start_seconds"] = round(time.monotonic() - started_at, 1)
                result["after_start"] = rss_mb(process.pid)
                cpu_before, idle_from = cpu_seconds(process.pid), time.monotonic()
                await asyncio.sleep(args.idle)
                result["idle_core_percent"] = round(
                    100 * (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - idle_from), 2)
                result["after_idle"] = rss_mb(process.pid)
                result["idle_parts"] = {part: rss_mb(process.pid, part) for part in ("RssAnon", "RssFile", "RssShmem")}
                if not args.gateway_only:
                    phrase = speech("okay nahboo", pad=1.0)  # then 10 uplink frames of room silence end the turn
                    for _ in range(args.turns):
                        server.reset_milestones()
                        await play_into_microphone(pulse, phrase)
                        for milestone in (server.listen_start, server.tts_done):
                            await asyncio.wait_for(milestone.wait(), _STEP_SECONDS)
                        await server.send_goodbye()  # the conversation ends; the next turn needs the wake word
                        await asyncio.sleep(1.5)
                    result["after_turns"] = rss_mb(process.pid)
                result["peak"] = rss_mb(process.pid, "VmHWM")
                result["services"] = appliance.started
            except BaseException:
                print("\n".join(appliance.log[-40:]), file=sys.stderr)
                raise
            finally:
                await appliance.stop()
                for pacer in pacers:
                    pacer.terminate()
                    await pacer.wait()
    return result


def appliance_report(args: argparse.Namespace) -> list[str]:
    r = asyncio.run(run_appliance(args))
    what = ("gateway only" if args.gateway_only else
            "default config.yaml" + (", brain.mode upstream (no local brain)" if args.no_brain else "")
            + (f", listen_mode {args.listen_mode}" if args.listen_mode != "auto" else ""))
    lines = [f"`pibuddy run`, {what}: up in {r['start_seconds']} s.", "",
             "| moment | RSS MB |", "|---|---:|"]
    lines += [f"| service {name} running | {rss:.1f} |" for name, rss in r["services"]]
    lines.append(f"| all up | {r['after_start']:.1f} |")
    lines.append(f"| after {args.idle:g} s idle listening | {r['after_idle']:.1f} |")
    if "after_turns" in r:
        lines.append(f"| after {args.turns} turns | {r['after_turns']:.1f} |")
    lines.append(f"| peak (VmHWM) | {r['peak']:.1f} |")
    parts = ", ".join(f"{name.removeprefix('Rss').lower()} {mb:.1f}" for name, mb in r["idle_parts"].items())
    lines += ["", f"After idling, RSS by kind (MB): {parts}.",
              f"Idle: {r['idle_core_percent']} % of one core over the {args.idle:g} s idle window."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=60.0, help="idle listening seconds before the turns (60)")
    parser.add_argument("--turns", type=int, default=10, choices=range(0, 51), metavar="N", help="turns (10)")
    parser.add_argument("--no-brain", action="store_true", help="brain.mode upstream: no local brain")
    parser.add_argument("--listen-mode", choices=("auto", "manual"), default="auto",
                        help="auto: the server ends turns (default); manual: PiBuddy's VAD does (Silero loads)")
    parser.add_argument("--gateway-only", action="store_true", help="only the gateway on (no audio, no client)")
    parser.add_argument("--imports", action="store_true", help="RSS added by each package group instead")
    parser.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.imports:
        publish("memory by import", __file__, imports_report(), record=args.record)
    else:
        publish("appliance memory", __file__, appliance_report(args), record=args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
