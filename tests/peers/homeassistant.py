"""A real Home Assistant for the test suite, on 127.0.0.1, in its own cached venv.

`ensure_installed()` builds the HA venv once per version under
`${PIBUDDY_TEST_CACHE:-~/.cache/pibuddy-tests}/homeassistant-<version>/` (see `tests.peers.cache`: a lock
file keeps two test processes from building it at once; a marker file says the build is complete).
`HomeAssistantPeer` writes a YAML config with test entities, starts `hass` as a child process on a free
port, obtains a long-lived token through onboarding, names areas and entities through the registries,
and stops the process again. `stop()`/`start()` restart it on the same port and config, for
reconnection tests. The pytest fixture `homeassistant_peer` starts it once per test session.

HA 2024.3.3 is the last release that runs on Python 3.11; its pins and gotchas are in
docs/drivers.md §3.6.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from tests.peers.cache import InstallImpossible, Progress, cached_install, run_step
from tests.peers.ports import free_port
from tests.peers.processes import stop_group

HA_VERSION: Final = "2024.3.3"
# What HA would otherwise pip-install at startup, plus the reference's fixes (josepy<2 for acme,
# securetar for backup, numpy for /api/services).
_EXTRA_REQUIREMENTS: Final = (
    "hassil==1.6.1",
    "home-assistant-intents==2024.3.12",
    "Pillow==10.2.0",
    "SQLAlchemy==2.0.27",
    "fnv-hash-fast==0.5.0",
    "psutil-home-assistant==0.0.1",
    "josepy<2",
    "janus==1.0.0",
    "securetar==2024.2.1",
    "home-assistant-frontend==20240307.0",
    "mutagen==1.47.0",
    "numpy==1.26.0",
    "paho-mqtt==1.6.1",  # the MQTT integration's requirement (PiBuddy's MQTT discovery tests)
)
_START_TIMEOUT_SECONDS: Final = 120.0
_STOP_TIMEOUT_SECONDS: Final = 30.0
_CLIENT_ID_PATH: Final = "/"
_PR_SET_PDEATHSIG: Final = 1
_OWNER = {"name": "Test Owner", "username": "owner", "password": "pibuddy-test-password", "language": "en"}


def ensure_installed(version: str = HA_VERSION, *, progress: Progress = print) -> Path:
    """The Python of a complete HA venv for `version`, building it first if needed."""
    venv = cached_install("homeassistant", cache_key(version), lambda target: _build(version, target, progress),
                          label="Home Assistant", progress=progress)
    return venv / "bin" / "python"


def cache_key(version: str) -> str:
    """`<version>-<digest of the extra requirements>`: a cached venv built for another requirement set
    is not reused (adding a requirement rebuilds it once)."""
    digest = hashlib.sha256("\n".join(_EXTRA_REQUIREMENTS).encode()).hexdigest()[:8]
    return f"{version}-{digest}"


def _build(version: str, venv: Path, progress: Progress) -> None:
    started = time.monotonic()
    progress(f"building the Home Assistant {version} venv in {venv} (about a minute, once)")
    _run([sys.executable, "-m", "venv", str(venv)], progress)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    quiet = ["--progress-bar", "off"]
    with tempfile.TemporaryDirectory(prefix="ha-wheel-") as tmp:
        _run([*pip, "download", *quiet, "--no-deps", "-d", tmp, f"homeassistant=={version}"], progress)
        wheel = next(Path(tmp).glob("homeassistant-*.whl"))
        constraints = Path(tmp) / "package_constraints.txt"
        with zipfile.ZipFile(wheel) as archive:
            constraints.write_bytes(archive.read("homeassistant/package_constraints.txt"))
        _run([*pip, "install", *quiet, "-c", str(constraints), str(wheel), *_EXTRA_REQUIREMENTS], progress)
    progress(f"built in {time.monotonic() - started:.0f} s")


def _run(command: list[str], progress: Progress) -> None:
    """One pip step; no route to PyPI raises `InstallImpossible` (skip), anything else fails."""
    run_step(command, progress, what="Home Assistant", sources="PyPI")


# Backing helpers hold the state of the template entities; they are hidden in the registry so that
# only the "devices" a household would name show up in lists.
_HIDDEN_HELPERS: Final = (
    "input_boolean.living_room_light_power",
    "input_boolean.floor_lamp_power",
    "input_boolean.bedroom_light_power",
    "input_boolean.desk_lamp_power",
    "input_boolean.ceiling_fan_power",
    "input_boolean.front_door_locked",
    "input_boolean.heater_power",
    "input_number.floor_lamp_level",
    "input_number.bedroom_light_level",
    "input_number.bedroom_light_hue",
    "input_number.bedroom_light_saturation",
    "input_number.bedroom_blinds_position",
    "input_number.living_room_temperature_value",
    "input_number.kitchen_speaker_volume",
    "input_select.kitchen_speaker_state",
)

# area name -> aliases; "书房" does not exist after onboarding and is created.
AREAS: Final = {
    "Living Room": ["lounge", "客厅"],
    "Bedroom": ["卧室"],
    "Kitchen": ["厨房"],
    "书房": ["study"],
}

# entity -> (area name, registry name override or None, aliases)
ENTITIES: Final = {
    "light.living_room_light": ("Living Room", None, ["big lamp"]),
    "light.floor_lamp": ("Living Room", None, []),
    "light.bedroom_light": ("Bedroom", None, []),
    "light.desk_lamp": ("书房", "台灯", ["书桌灯"]),
    "cover.bedroom_blinds": ("Bedroom", None, ["窗帘"]),
    "lock.front_door": (None, None, ["大门"]),
    "climate.living_room_thermostat": ("Living Room", None, []),
    "sensor.living_room_temperature": ("Living Room", None, []),
    "media_player.kitchen_speaker": ("Kitchen", None, []),
    "fan.ceiling_fan": ("Bedroom", None, []),
    "input_boolean.kitchen_fan": ("Kitchen", None, []),
    "input_boolean.guest_mode": (None, None, []),
}


def _set(entity: str, value: str) -> dict[str, Any]:
    return {"service": "input_number.set_value", "target": {"entity_id": entity}, "data": {"value": value}}


def _switch(entity: str, on: bool) -> dict[str, Any]:
    return {"service": f"input_boolean.turn_{'on' if on else 'off'}", "target": {"entity_id": entity}}


def _select(option: str) -> dict[str, Any]:
    return {"service": "input_select.select_option", "target": {"entity_id": "input_select.kitchen_speaker_state"},
            "data": {"option": option}}


def _onoff(key: str, name: str, **extra: Any) -> dict[str, Any]:
    """A template light or fan switched by its hidden `input_boolean.<key>_power`."""
    power = f"input_boolean.{key}_power"
    return {key: {"unique_id": f"pibuddy_{key}", "friendly_name": name,
                  "value_template": f"{{{{ is_state('{power}', 'on') }}}}",
                  "turn_on": _switch(power, True), "turn_off": _switch(power, False), **extra}}


def _level(key: str) -> dict[str, Any]:
    level = f"input_number.{key}_level"
    return {"level_template": f"{{{{ states('{level}') | int }}}}",
            "set_level": [_set(level, "{{ brightness }}"), _switch(f"input_boolean.{key}_power", True)]}


# A colour given to a light at level 0 also brings it to full brightness, as real bulbs do.
_FULL_IF_DARK: Final = ("{% set level = states('input_number.bedroom_light_level') | int %}"
                        "{{ 255 if level == 0 else level }}")


def build_config(port: int) -> dict[str, Any]:
    """The YAML config (as data): template lights (on/off, brightness, colour), a fan, a cover, a lock, a
    thermostat, a media player, helpers, a script and a scene — all offline, all with unique ids."""
    number = {"min": 0, "max": 255, "step": 1, "initial": 0}
    bedroom_hs = ("({{ states('input_number.bedroom_light_hue') | float }}, "
                  "{{ states('input_number.bedroom_light_saturation') | float }})")
    return {
        "homeassistant": {"name": "PiBuddy Test Home", "latitude": 31.23, "longitude": 121.47, "elevation": 4,
                          "unit_system": "metric", "time_zone": "UTC", "country": "CN", "currency": "CNY"},
        "http": {"server_host": "127.0.0.1", "server_port": port},
        "api": None, "websocket_api": None, "config": None, "onboarding": None, "conversation": None,
        "logger": {"default": "warning"},
        "input_boolean": {
            **{h.split(".")[1]: {"name": h.split(".")[1].replace("_", " ")}
               for h in _HIDDEN_HELPERS if h.startswith("input_boolean.")},
            "kitchen_fan": {"name": "Kitchen Fan"},
            "guest_mode": {"name": "Guest Mode"},
        },
        "input_number": {
            "floor_lamp_level": number, "bedroom_light_level": number,
            "bedroom_light_hue": {"min": 0, "max": 360, "step": 1, "initial": 0},
            "bedroom_light_saturation": {"min": 0, "max": 100, "step": 1, "initial": 0},
            "bedroom_blinds_position": {"min": 0, "max": 100, "step": 1, "initial": 0},
            "living_room_temperature_value": {"min": 0, "max": 40, "step": 0.5, "initial": 21.5},
            "kitchen_speaker_volume": {"min": 0, "max": 1, "step": 0.01, "initial": 0.3},
        },
        "input_select": {"kitchen_speaker_state": {"options": ["off", "idle", "playing", "paused"],
                                                   "initial": "off"}},
        "light": [{"platform": "template", "lights": {
            **_onoff("living_room_light", "Living Room Light"),
            **_onoff("floor_lamp", "Floor Lamp", **_level("floor_lamp")),
            **_onoff("bedroom_light", "Bedroom Light", **_level("bedroom_light"), hs_template=bedroom_hs,
                           set_hs=[_set("input_number.bedroom_light_level", _FULL_IF_DARK),
                                   _set("input_number.bedroom_light_hue", "{{ h }}"),
                                   _set("input_number.bedroom_light_saturation", "{{ s }}"),
                                   _switch("input_boolean.bedroom_light_power", True)]),
            **_onoff("desk_lamp", "Desk Lamp"),
        }}],
        "fan": [{"platform": "template", "fans": _onoff("ceiling_fan", "Ceiling Fan")}],
        "cover": [{"platform": "template", "covers": {"bedroom_blinds": {
            "unique_id": "pibuddy_bedroom_blinds", "friendly_name": "Bedroom Blinds",
            "position_template": "{{ states('input_number.bedroom_blinds_position') | int }}",
            "open_cover": _set("input_number.bedroom_blinds_position", "100"),
            "close_cover": _set("input_number.bedroom_blinds_position", "0"),
            "set_cover_position": _set("input_number.bedroom_blinds_position", "{{ position }}"),
        }}}],
        "lock": [{"platform": "template", "name": "Front Door", "unique_id": "pibuddy_front_door",
                  "value_template": "{{ is_state('input_boolean.front_door_locked', 'on') }}",
                  "lock": _switch("input_boolean.front_door_locked", True),
                  "unlock": _switch("input_boolean.front_door_locked", False)}],
        "template": [{"sensor": [{
            "name": "Living Room Temperature", "unique_id": "pibuddy_living_room_temperature",
            "unit_of_measurement": "°C", "device_class": "temperature",
            "state": "{{ states('input_number.living_room_temperature_value') }}"}]}],
        "climate": [{"platform": "generic_thermostat", "name": "Living Room Thermostat",
                     "unique_id": "pibuddy_living_room_thermostat", "heater": "input_boolean.heater_power",
                     "target_sensor": "sensor.living_room_temperature", "min_temp": 10, "max_temp": 30,
                     "target_temp": 20, "initial_hvac_mode": "off"}],
        "media_player": [{"platform": "universal", "name": "Kitchen Speaker", "unique_id": "pibuddy_kitchen_speaker",
                          "state_template": "{{ states('input_select.kitchen_speaker_state') }}",
                          "attributes": {"volume_level": "input_number.kitchen_speaker_volume"},
                          "commands": {"turn_on": _select("idle"), "turn_off": _select("off"),
                                       "media_play": _select("playing"), "media_pause": _select("paused"),
                                       "volume_set": _set("input_number.kitchen_speaker_volume",
                                                          "{{ volume_level }}")}}],
        "script": {"good_night": {"alias": "Good Night", "sequence": [
            {"service": "light.turn_off", "target": {"entity_id": "all"}}]}},
        "scene": [{"name": "Movie Time", "id": "pibuddy_movie_time", "entities": {
            "light.living_room_light": "off", "light.floor_lamp": {"state": "on", "brightness": 50}}}],
    }


@dataclass
class HomeAssistantPeer:
    """One Home Assistant process and its config dir. `start()` is idempotent per run; the token
    survives restarts because the config dir (and its auth store) is kept."""

    config_dir: Path
    python: Path
    port: int = field(default_factory=free_port)
    token: str = ""
    _proc: subprocess.Popen[bytes] | None = None
    _log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/websocket"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        first_run = not (self.config_dir / ".pibuddy-token").exists()
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(json.dumps(build_config(self.port), indent=1))
        self._log = open(self.config_dir / "hass.stdout", "ab")  # noqa: SIM115 (closed in stop())
        self._proc = subprocess.Popen(
            [str(self.python), "-m", "homeassistant", "-c", str(self.config_dir), "--skip-pip",
             "--log-file", str(self.config_dir / "ha.log")],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent)  # noqa: PLW1509 - one prctl call, no locks taken
        try:
            self._wait_http()
            if first_run:
                self.token = self._onboard()
                (self.config_dir / ".pibuddy-token").write_text(self.token)
            else:
                self.token = (self.config_dir / ".pibuddy-token").read_text()
            self._wait_running()
            if first_run:
                self._name_things()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, _STOP_TIMEOUT_SECONDS)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        path = self.config_dir / "ha.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- helpers for tests: read HA's own view of the world, bypassing PiBuddy ---

    def state(self, entity_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/states/{entity_id}", headers=self._auth(), timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def call(self, domain: str, service: str, data: dict[str, Any]) -> None:
        response = httpx.post(f"{self.url}/api/services/{domain}/{service}", json=data, headers=self._auth(),
                              timeout=10)
        response.raise_for_status()

    def add_mqtt(self, host: str, port: int) -> str:
        """Set up HA's MQTT integration for the broker at `host:port` through the config-flow REST API, as
        the UI does (discovery on, prefix `homeassistant`, birth message on); returns the config entry id."""
        flow = self._post("/api/config/config_entries/flow", {"handler": "mqtt", "show_advanced_options": False})
        if flow.get("step_id") != "broker":
            raise RuntimeError(f"the MQTT config flow did not ask for the broker: {flow}")
        done = self._post(f"/api/config/config_entries/flow/{flow['flow_id']}", {"broker": host, "port": port})
        if done.get("type") != "create_entry":
            raise RuntimeError(f"the MQTT config flow did not create an entry: {done}")
        entry = done["result"]
        return str(entry["entry_id"] if isinstance(entry, dict) else entry)

    def remove_config_entry(self, entry_id: str) -> None:
        response = httpx.delete(f"{self.url}/api/config/config_entries/entry/{entry_id}", headers=self._auth(),
                                timeout=30)
        response.raise_for_status()

    def entity_ids_by_unique_id(self, platform: str) -> dict[str, str]:
        """unique_id -> entity_id of every entity the integration `platform` ("mqtt") registered."""
        [entries] = self.ws([{"type": "config/entity_registry/list"}])
        return {e["unique_id"]: e["entity_id"] for e in entries if e["platform"] == platform}

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.url}{path}", json=body, headers=self._auth(), timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def ws(self, commands: list[dict[str, Any]]) -> list[Any]:
        """Run WebSocket commands in order; return each result, failing on the first error."""
        results = []
        with ws_connect(self.ws_url, open_timeout=10) as conn:
            json.loads(conn.recv(10))
            conn.send(json.dumps({"type": "auth", "access_token": self.token}))
            if json.loads(conn.recv(10))["type"] != "auth_ok":
                raise RuntimeError("the test token was refused")
            for number, command in enumerate(commands, start=1):
                conn.send(json.dumps({**command, "id": number}))
                while (reply := json.loads(conn.recv(10))).get("id") != number:
                    pass
                if not reply["success"]:
                    raise RuntimeError(f"{command['type']} failed: {reply['error']}")
                results.append(reply["result"])
        return results

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _wait_http(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"Home Assistant exited during startup:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/onboarding", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"Home Assistant did not answer within {_START_TIMEOUT_SECONDS:.0f} s:\n{self.log_tail()}")

    def _wait_running(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(f"{self.url}/api/config", headers=self._auth(), timeout=2)
                if response.status_code == 200 and response.json().get("state") == "RUNNING":
                    return
            time.sleep(0.2)
        raise TimeoutError(f"Home Assistant did not reach RUNNING:\n{self.log_tail()}")

    def _onboard(self) -> str:
        """Owner user → auth code → access token → long-lived token (the core_config step is skipped:
        offline it answers 500, and the API does not need it)."""
        client_id = self.url + _CLIENT_ID_PATH
        response = httpx.post(f"{self.url}/api/onboarding/users", json={"client_id": client_id, **_OWNER}, timeout=30)
        response.raise_for_status()
        response = httpx.post(f"{self.url}/auth/token", timeout=10, data={
            "grant_type": "authorization_code", "code": response.json()["auth_code"], "client_id": client_id})
        response.raise_for_status()
        self.token = response.json()["access_token"]
        [long_lived] = self.ws([{"type": "auth/long_lived_access_token", "client_name": "pibuddy-tests",
                                 "lifespan": 3650}])
        return str(long_lived)

    def _name_things(self) -> None:
        """Areas with aliases (one Chinese-named), entity areas/names/aliases, hidden helpers."""
        [areas] = self.ws([{"type": "config/area_registry/list"}])
        area_ids = {a["name"]: a["area_id"] for a in areas}
        for name in AREAS:
            if name not in area_ids:
                [created] = self.ws([{"type": "config/area_registry/create", "name": name}])
                area_ids[name] = created["area_id"]
        commands: list[dict[str, Any]] = [
            {"type": "config/area_registry/update", "area_id": area_ids[name], "aliases": aliases}
            for name, aliases in AREAS.items()]
        for entity_id, (area, name, aliases) in ENTITIES.items():
            commands.append({"type": "config/entity_registry/update", "entity_id": entity_id,
                             "area_id": area_ids[area] if area else None, "name": name, "aliases": aliases})
        commands += [{"type": "config/entity_registry/update", "entity_id": helper, "hidden_by": "user"}
                     for helper in _HIDDEN_HELPERS]
        self.ws(commands)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies, even by SIGKILL (Linux prctl
    PR_SET_PDEATHSIG), so a killed test run never leaves Home Assistant running. The signal follows the
    *thread* that started it: call `start()` from the main thread, not from a worker thread."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def running_peer(config_dir: Path, *, progress: Progress = print) -> Iterator[HomeAssistantPeer]:
    """Install if needed, start, yield, and always stop."""
    peer = HomeAssistantPeer(config_dir, ensure_installed(progress=progress))
    try:
        peer.start()
        yield peer
    finally:
        peer.stop()


@pytest.fixture(scope="session")
def homeassistant_peer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[HomeAssistantPeer]:
    """One real Home Assistant for the whole test session (startup is slow)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")

    def progress(line: str) -> None:
        if capture is None or reporter is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[homeassistant] {line}")

    try:
        python = ensure_installed(progress=progress)
    except InstallImpossible as exc:
        pytest.skip(str(exc).splitlines()[0])
    peer = HomeAssistantPeer(tmp_path_factory.mktemp("homeassistant"), python)
    try:
        peer.start()
        yield peer
    finally:
        peer.stop()
