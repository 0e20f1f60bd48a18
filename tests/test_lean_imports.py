"""`pibuddy run` does not import what it does not run: each of these packages cost 2-45 MB of RSS
(bench/memory.py --imports; bench/RESULTS.md 2026-12-07). The gateway's target is 60 MB at 100 devices, the
appliance's 120 MB without the local brain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

_REPO = Path(__file__).resolve().parent.parent

# Package -> why a gateway-only run never needs it.
_NOT_FOR_A_GATEWAY = {
    "httpx": "model downloads, the device client's OTA and the drivers",
    "rich": "httpx's own command line",
    "zeroconf": "mDNS, which this config turns off",
    "cryptography": "the pure-Python packet twin; the C extension is in use",
    "jsonschema": "checking tool arguments; no tool is registered",
    "hassil": "the local brain, which needs a microphone",
    "pibuddy.drivers.homeassistant": "a driver that is not enabled",
    "pibuddy.drivers.miot": "a driver that is not enabled",
    "onnxruntime": "the Silero VAD of the audio pipeline",
    "numpy": "the audio pipeline",
}


def test_a_gateway_only_run_builds_its_services_without_the_heavy_packages(tmp_path: Path) -> None:
    config = {"device": {"state_dir": str(tmp_path / "state")}, "audio": {"enabled": False},
              "upstream": {"enabled": False}, "tools": {"builtin": False},
              "gateway": {"host": "127.0.0.1", "mdns": False}}
    path = tmp_path / "gateway.yaml"
    path.write_text(json.dumps(config))
    loaded = _build(path)
    assert "gateway" in loaded["services"]
    imported = {name for name in _NOT_FOR_A_GATEWAY if _imported(name, loaded["modules"])}
    assert imported == set(), {name: _NOT_FOR_A_GATEWAY[name] for name in imported}


def test_the_appliance_loads_the_silero_vad_only_for_a_turn_that_ends_on_silence(tmp_path: Path) -> None:
    """The shipped config.yaml, local brain off: onnxruntime (the Silero VAD, about 45 MB) is not imported when
    the services are built; the first turn that ends on silence (local brain, manual listening) loads it."""
    config = yaml.safe_load((_REPO / "config.yaml").read_text())
    config["device"]["state_dir"] = str(tmp_path / "state")
    config["brain"]["mode"] = "upstream"
    config["gateway"].update(host="127.0.0.1", mdns=False)
    path = tmp_path / "appliance.yaml"
    path.write_text(json.dumps(config))
    loaded = _build(path, then="asyncio.run(next(s for s in services if s.name == 'audio')"
                               ".pipeline.load_vad())")
    assert {"audio", "gateway", "upstream"} <= set(loaded["services"])
    assert not _imported("onnxruntime", loaded["modules_at_start"])
    assert _imported("onnxruntime", loaded["modules"])  # load_vad() did load it: the test sees the real engine


def _imported(name: str, modules: list[str]) -> bool:
    return any(module == name or module.startswith(name + ".") for module in modules)


def _build(path: Path, then: str = "pass") -> dict[str, list[str]]:
    """Build `pibuddy run`'s services for the config at `path` in a fresh interpreter; the modules it imported
    then (`modules_at_start`) and after running `then` (`modules`)."""
    code = f"""if True:
        import asyncio, json, sys
        from pathlib import Path
        from pibuddy.cli import build_parser
        from pibuddy.config import load_config
        from pibuddy.events import EventBus
        from pibuddy.wiring.services import build_services
        build_parser()  # every subcommand's arguments, as `pibuddy run` builds them
        services = build_services(load_config(Path({str(path)!r})), EventBus())
        at_start = sorted(sys.modules)
        {then}
        print(json.dumps({{"services": [s.name for s in services], "modules_at_start": at_start,
                          "modules": sorted(sys.modules)}}))
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                            cwd=_REPO, env={"PIBUDDY_NATIVE": "1", "PATH": "/usr/bin:/bin"})
    loaded: dict[str, list[str]] = json.loads(result.stdout.splitlines()[-1])
    return loaded
