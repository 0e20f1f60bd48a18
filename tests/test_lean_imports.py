"""A gateway-only `pibuddy run` does not import what it does not run: each of these packages cost 2-20 MB of
RSS (bench/memory.py --imports; bench/RESULTS.md 2026-12-07), and the gateway's target is 60 MB at 100 devices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    code = f"""if True:
        import json, sys
        from pathlib import Path
        from pibuddy.cli import build_parser
        from pibuddy.config import load_config
        from pibuddy.events import EventBus
        from pibuddy.wiring.services import build_services
        build_parser()  # every subcommand's arguments, as `pibuddy run` builds them
        names = [s.name for s in build_services(load_config(Path({str(path)!r})), EventBus())]
        print(json.dumps({{"services": names, "modules": sorted(sys.modules)}}))
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                            env={"PIBUDDY_NATIVE": "1", "PATH": "/usr/bin:/bin"})
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert "gateway" in loaded["services"]
    imported = {name for name in _NOT_FOR_A_GATEWAY
                if any(module == name or module.startswith(name + ".") for module in loaded["modules"])}
    assert imported == set(), {name: _NOT_FOR_A_GATEWAY[name] for name in imported}
