"""Which devices the gateway serves: known ones always, new ones only while pairing is open.

A device is its MAC address, which is no secret on a LAN (it is in every frame, the OTA request and the
MQTT client id): admission keeps strangers out while nobody is pairing, it does not authenticate a device.
- `pairing` (the default): a device seen for the first time is accepted, and remembered in the state dir
  (`gateway_devices.json`), while pairing is open: for `pairing_minutes` after start, and again after
  `pibuddy gateway pair` (POST /api/pairing). At most `MAX_NEW_PER_WINDOW` new devices per window.
- `open` (today's behaviour before this rule): every device is accepted; one is remembered once it has
  said hello (held a conversation). A connection of a device not remembered yet is closed if it says no
  hello within `NO_HELLO_SECONDS` (squatters that only hold a connection); remembered devices may stay
  connected between conversations, as the firmware does.
At most `MAX_KNOWN` devices are remembered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from pibuddy.config import AdmissionMode
from pibuddy.statedir import StateDir

_LOGGER = logging.getLogger(__name__)
KNOWN_DEVICES_FILE: Final = "gateway_devices.json"
MAX_KNOWN: Final = 1000
MAX_NEW_PER_WINDOW: Final = 32
NO_HELLO_SECONDS: Final = 600.0


class Admission:
    """Args:
    state_dir: where known devices are kept.
    mode: `pairing` or `open`.
    pairing_seconds: how long pairing is open after start.
    clock: monotonic seconds (tests move it).
    """

    def __init__(self, state_dir: StateDir, *, mode: AdmissionMode, pairing_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.mode = mode
        self._state_dir = state_dir
        self._clock = clock
        stored = state_dir.read_json(KNOWN_DEVICES_FILE) or {}
        devices = stored.get("devices")
        self._known: set[str] = {d for d in devices if isinstance(d, str)} if isinstance(devices, list) else set()
        self._pairing_until = 0.0
        self._new_in_window = 0
        self.open_pairing(pairing_seconds)

    def known(self, mac: str) -> bool:
        return mac in self._known

    def pairing_remaining(self) -> float:
        """Seconds pairing stays open (0 when closed)."""
        return max(0.0, self._pairing_until - self._clock())

    def open_pairing(self, seconds: float) -> None:
        self._pairing_until = self._clock() + seconds
        self._new_in_window = 0
        if seconds > 0 and self.mode is AdmissionMode.PAIRING:
            _LOGGER.info("gateway: pairing open for %.0f s: new devices are accepted and remembered", seconds)

    def admit(self, mac: str) -> bool:
        """May `mac` get credentials and connect? A new device admitted while pairing is remembered."""
        if mac in self._known or self.mode is AdmissionMode.OPEN:
            return True
        if self.pairing_remaining() <= 0 or self._new_in_window >= MAX_NEW_PER_WINDOW:
            return False
        self._new_in_window += 1
        self.remember(mac)
        return True

    def remember(self, mac: str) -> None:
        if mac in self._known:
            return
        if len(self._known) >= MAX_KNOWN:
            _LOGGER.warning("gateway: %d devices remembered already; %s is not", MAX_KNOWN, mac)
            return
        self._known.add(mac)
        self._state_dir.write_json(KNOWN_DEVICES_FILE, {"devices": sorted(self._known)})
        _LOGGER.info("gateway: device %s remembered (%d known)", mac, len(self._known))
