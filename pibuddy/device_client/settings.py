"""The transports the OTA server issued, kept in `upstream.json` (mode 600) like the firmware's NVS.

With them a restart can connect while the OTA server is briefly down. Each answer that offers a transport
replaces what is stored (the firmware merges member by member into NVS; replacing means a server that
stops offering MQTT also stops PiBuddy using stale MQTT credentials). An answer offering none keeps
using the stored ones, as the firmware falls back to NVS.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, Final

from pibuddy.statedir import StateDir
from pibuddy.xiaozhi.ota_response import OtaResponse, response_from_json

_LOGGER = logging.getLogger(__name__)
UPSTREAM_FILE: Final = "upstream.json"


class UpstreamSettingsStore:
    """Reads and writes the persisted `mqtt` / `websocket` members. Never raises: storage is a fallback."""

    def __init__(self, state: StateDir) -> None:
        self._state = state

    def load(self) -> OtaResponse:
        """The stored transports (an empty answer when there are none or the file is damaged)."""
        path = self._state.path / UPSTREAM_FILE
        try:
            text = self._state.read_text(UPSTREAM_FILE)
        except UnicodeDecodeError:
            text = ""  # not UTF-8: damaged
        except OSError as exc:
            _LOGGER.warning("cannot read %s: %s", path, exc.strerror or exc)
            return OtaResponse()
        if text is None:
            return OtaResponse()
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            _LOGGER.warning("%s is damaged; ignoring it until the next OTA answer replaces it", path)
            return OtaResponse()
        stored = response_from_json({key: data.get(key) for key in ("mqtt", "websocket")})
        if stored.problems:
            _LOGGER.warning("%s: %s", path, "; ".join(stored.problems))
        return stored

    def merge(self, response: OtaResponse) -> OtaResponse:
        """Persist the transports of a fresh answer, or fill an answer without any from storage."""
        if response.mqtt is None and response.websocket is None:
            stored = self.load()
            return replace(response, mqtt=stored.mqtt, websocket=stored.websocket)
        data: dict[str, Any] = {}
        if response.mqtt is not None:
            data["mqtt"] = dict(response.mqtt.members)
        if response.websocket is not None:
            data["websocket"] = dict(response.websocket.members)
        try:
            self._state.write_json(UPSTREAM_FILE, data)
        except OSError as exc:
            _LOGGER.warning("cannot save %s: %s", self._state.path / UPSTREAM_FILE, exc.strerror or exc)
        return response
