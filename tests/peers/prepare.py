"""Build the heavy test peers' cached installs before pytest starts: `python -m tests.peers.prepare`.

Home Assistant's venv and Node + OpenClaw take minutes to build on a fresh machine. Built inside a test
fixture, that time counts against the per-test timeout (120 s), so a cold cache failed the first test that
needed the peer. scripts/test.sh runs this first, outside any timeout; with a warm cache it returns at once.
A peer that cannot be installed here is reported, and the tests that need it skip with that reason.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tests.peers import homeassistant, openclaw_gateway
from tests.peers.cache import InstallImpossible

_PEERS: dict[str, Callable[..., object]] = {
    "homeassistant": homeassistant.ensure_installed,
    "openclaw": openclaw_gateway.ensure_installed,
}


def main() -> int:
    for name, ensure_installed in _PEERS.items():
        started = time.monotonic()
        try:
            ensure_installed(progress=lambda line, name=name: print(f"[{name}] {line}", flush=True))
        except InstallImpossible as exc:
            print(f"[{name}] not installable here, its tests will skip: {str(exc).splitlines()[0]}", flush=True)
            continue
        print(f"[{name}] ready ({time.monotonic() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
