"""GPL code stays out of the PiBuddy process: python-miio is a test peer only, and PyRIC (GPLv3), which pip
installs under bthome-ble -> habluetooth -> bluetooth-auto-recovery, must never be imported by PiBuddy."""

from __future__ import annotations

import json
import subprocess
import sys

_GPL_MODULES = ("miio", "pyric")

_LOAD_EVERYTHING = """
import json, sys
import pibuddy.wiring.services, pibuddy.cli
import pibuddy.drivers.ble, pibuddy.drivers.ble.adverts, pibuddy.drivers.ble.probe
import pibuddy.drivers.miot, pibuddy.drivers.gpio, pibuddy.drivers.homeassistant
import pibuddy.gateway.service, pibuddy.wiring.openclaw, pibuddy.wiring.brain
print(json.dumps(sorted(sys.modules)))
"""


def test_no_gpl_module_is_loaded_by_any_part_of_pibuddy() -> None:
    done = subprocess.run([sys.executable, "-c", _LOAD_EVERYTHING], capture_output=True, text=True, timeout=120,
                          check=True)
    loaded = json.loads(done.stdout)
    assert "pibuddy.drivers.ble.adverts" in loaded  # the BLE parsers, whose dependencies pull PyRIC in
    assert [m for m in loaded if m.split(".")[0].lower() in _GPL_MODULES] == []
