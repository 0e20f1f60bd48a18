"""`pibuddy check`: probe everything the config asks for and report an OK/FAIL table.

`PROBES` lists which probes run for which config; the probes that need a feature's code live with it
(`drivers/ble/probe.py`, `gateway/probe.py`) and return `pibuddy.probe.ProbeResult`. A probe turns what goes
wrong into a FAIL row with a reason a user can act on; `run_probes` makes one that raises or hangs a FAIL row
too.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from typing import Final

import httpx

from pibuddy.config import Config
from pibuddy.ports import port_free, port_holder
from pibuddy.probe import Probe, ProbeResult
from pibuddy.statedir import StateDir

_PROBE_TIMEOUT_SECONDS: Final = 8.0


async def probe_state_dir(config: Config) -> ProbeResult:
    state = StateDir(config.device.resolved_state_dir)
    try:
        state.ensure()
        if not os.access(state.path, os.W_OK):
            return ProbeResult(False, f"{state.path} is not writable by this user")
    except OSError as exc:
        return ProbeResult(False, f"cannot create {state.path}: {exc.strerror} (set device.state_dir)")
    return ProbeResult(True, str(state.path))


async def probe_audio(config: Config) -> ProbeResult:
    from pibuddy.audio.devices import AudioDeviceError, resolve_devices  # noqa: PLC0415 (PortAudio is slow to load)

    try:
        chosen = await asyncio.to_thread(resolve_devices, config.audio.input_device, config.audio.output_device)
    except AudioDeviceError as exc:
        return ProbeResult(False, str(exc))
    return ProbeResult(True, f"input: {chosen.input_name}; output: {chosen.output_name}")


async def probe_upstream(config: Config) -> ProbeResult:
    url = str(config.upstream.ota_url)
    return await _probe_http(url, headers={}, what="the xiaozhi OTA server", accept_any_status=True)


async def probe_homeassistant(config: Config) -> ProbeResult:
    token = config.homeassistant.token
    if token is None:
        return ProbeResult(False, "no token: set homeassistant.token or PIBUDDY_HOMEASSISTANT_TOKEN")
    url = str(config.homeassistant.url).rstrip("/") + "/api/"
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
    return await _probe_http(url, headers=headers, what="Home Assistant", accept_any_status=False)


async def probe_ble(config: Config) -> ProbeResult:
    from pibuddy.drivers.ble.probe import probe_bluetooth  # noqa: PLC0415 (bleak and the parsers are slow to load)

    return await probe_bluetooth(config.ble)


async def probe_homeassistant_mqtt(config: Config) -> ProbeResult:
    from pibuddy.ha_mqtt.probe import probe_broker  # noqa: PLC0415 (aiomqtt: only when configured)

    return await probe_broker(config.homeassistant.mqtt)


async def probe_gateway(config: Config) -> ProbeResult:
    from pibuddy.gateway.probe import probe_gateway as probe_ports  # noqa: PLC0415 (aiohttp is slow to load)

    return await probe_ports(config.gateway)


async def probe_mcp_http(config: Config) -> ProbeResult:
    return _probe_port(config.tools.mcp_http_host, config.tools.mcp_http_port, "tools.mcp_http_port")


async def probe_web(config: Config) -> ProbeResult:
    return _probe_port(config.web.host, config.web.port, "web.port")


def _probe_port(host: str, port: int, setting: str) -> ProbeResult:
    """Whether a TCP listener can have its port (or a running PiBuddy has it already)."""
    if port_free(host, "tcp", port):
        return ProbeResult(True, f"port {port}/tcp free on {host}")
    holder = port_holder(port, "tcp")
    if holder is not None and "pibuddy" in holder:
        return ProbeResult(True, f"a running PiBuddy holds {port}/tcp ({holder})")
    return ProbeResult(False, f"port {port}/tcp on {host} is in use by {holder or 'another program'}; stop it or "
                              f"set {setting} to a free port")


async def probe_packet_path(config: Config) -> ProbeResult:
    """Which UDP packet implementation runs; the pure-Python fallback works, only slower."""
    from pibuddy.xiaozhi.udp_codec import PACKET_PATH  # noqa: PLC0415 (loads cryptography)

    return ProbeResult(True, PACKET_PATH)


async def _probe_http(url: str, *, headers: dict[str, str], what: str, accept_any_status: bool) -> ProbeResult:
    try:
        async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT_SECONDS) as client:
            response = await client.get(url, headers=headers)
    except httpx.TimeoutException:
        return ProbeResult(False, f"{what} at {url} did not answer within {_PROBE_TIMEOUT_SECONDS:.0f} s")
    except httpx.HTTPError as exc:
        return ProbeResult(False, f"cannot reach {what} at {url}: {_reason(exc)}")
    if response.status_code == 401:
        return ProbeResult(False, f"{what} rejected the token (HTTP 401)")
    if not accept_any_status and response.status_code >= 400:
        return ProbeResult(False, f"{what} answered HTTP {response.status_code}")
    return ProbeResult(True, f"{url} answers (HTTP {response.status_code})")


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason, e.g. 'Connection refused' rather than a wrapper's repr."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


PROBES: list[Probe] = [
    Probe("state dir", lambda c: True, probe_state_dir),
    Probe("audio", lambda c: c.audio.enabled, probe_audio, loads=("pibuddy.audio.devices",)),
    Probe("upstream", lambda c: c.upstream.enabled, probe_upstream),
    Probe("homeassistant", lambda c: c.homeassistant.enabled, probe_homeassistant),
    Probe("homeassistant mqtt", lambda c: c.homeassistant.mqtt.enabled, probe_homeassistant_mqtt,
          loads=("pibuddy.ha_mqtt.probe",)),
    Probe("gateway", lambda c: c.gateway.enabled, probe_gateway, loads=("pibuddy.gateway.probe",)),
    Probe("mcp http", lambda c: c.tools.mcp_http_enabled, probe_mcp_http),
    Probe("web page", lambda c: c.web.enabled, probe_web),
    Probe("udp packet path", lambda c: c.upstream.enabled or c.gateway.enabled, probe_packet_path,
          loads=("pibuddy.xiaozhi.udp_codec",)),
    Probe("bluetooth", lambda c: c.ble.enabled, probe_ble, loads=("pibuddy.drivers.ble.probe",)),
]


async def run_probes(config: Config, probes: list[Probe] | None = None) -> list[tuple[str, ProbeResult]]:
    """Run every applicable probe concurrently; a probe that raises anyway becomes a FAIL row."""
    chosen = [p for p in (PROBES if probes is None else probes) if p.applies(config)]
    for module in dict.fromkeys(m for p in chosen for m in p.loads):
        importlib.import_module(module)  # before any deadline starts (see `Probe.loads`)

    async def guarded(probe: Probe) -> ProbeResult:
        try:
            return await asyncio.wait_for(probe.run(config), _PROBE_TIMEOUT_SECONDS + 2)
        except TimeoutError:
            return ProbeResult(False, f"probe timed out after {_PROBE_TIMEOUT_SECONDS + 2:.0f} s")
        except Exception as exc:
            return ProbeResult(False, f"probe failed: {type(exc).__name__}: {exc}")

    results = await asyncio.gather(*(guarded(p) for p in chosen))
    return [(p.name, r) for p, r in zip(chosen, results, strict=True)]


def format_table(rows: list[tuple[str, ProbeResult]]) -> str:
    width = max([len("CHECK"), *(len(name) for name, _ in rows)])
    lines = [f"{'CHECK':<{width}}  RESULT  DETAIL"]
    lines += [f"{name:<{width}}  {'OK' if r.ok else 'FAIL':<6}  {r.detail}" for name, r in rows]
    return "\n".join(lines)
