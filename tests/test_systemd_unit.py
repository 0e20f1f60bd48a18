"""systemd/pibuddy.service: systemd itself accepts it, it keeps the directives PiBuddy relies on, and PiBuddy runs
under them."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pibuddy.config import load_config
from pibuddy.control.paths import SOCKET_NAME, client_socket_paths, service_socket_path
from tests.peers.ports import free_port
from tests.sdnotify import messages_until
from tests.timescale import scaled

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "pibuddy.service"
CONFIG_PATH = "/etc/pibuddy/config.yaml"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}}; keys may repeat (Environment=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def with_exec_start(text: str, program: str) -> str:
    """The unit text with ExecStart's program replaced, as setup.sh does."""
    def replace(line: str) -> str:
        if not line.startswith("ExecStart="):
            return line
        return f"ExecStart={program} {line.partition(' ')[2]}"

    return "\n".join(replace(line) for line in text.splitlines()) + "\n"


def verify_problems(unit_path: Path) -> list[str]:
    """What `systemd-analyze verify` objects to in this unit (it exits 0 on mere unknown keys)."""
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    problems = [
        line for line in result.stderr.splitlines()
        if unit_path.name in line or line.startswith(("Unknown key", "Unknown section"))
    ]
    if result.returncode != 0:
        problems.append(f"exit code {result.returncode}: {result.stderr.strip()}")
    return problems


@pytest.fixture
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / "pibuddy.service"
    unit.write_text(with_exec_start(UNIT.read_text(encoding="utf-8"), sys.executable), encoding="utf-8")
    assert verify_problems(unit) == []


@needs_systemd_analyze
def test_verify_check_catches_a_misspelled_key(tmp_path: Path) -> None:
    """Guards the check above: systemd only warns about unknown keys, so stderr must be read."""
    text = with_exec_start(UNIT.read_text(encoding="utf-8"), sys.executable)
    unit = tmp_path / "pibuddy.service"
    unit.write_text(text.replace("NoNewPrivileges=", "NoNewPrivilegs="), encoding="utf-8")
    problems = verify_problems(unit)
    assert any("NoNewPrivilegs" in problem for problem in problems), problems


def test_type_notify_with_watchdog_and_restart(service: dict[str, list[str]]) -> None:
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "RestartSec": "5",
        "User": "pibuddy",
        "Group": "pibuddy",
    }
    assert {key: service[key] for key in expected} == {key: [value] for key, value in expected.items()}


def test_exec_start_runs_the_venv_pibuddy_with_the_system_config(service: dict[str, list[str]]) -> None:
    (exec_start,) = service["ExecStart"]
    program, *args = exec_start.split()
    assert program == "/opt/pibuddy/.venv/bin/pibuddy"
    assert args == ["run", "--config", CONFIG_PATH]


def test_directories_and_environment(service: dict[str, list[str]]) -> None:
    assert service["StateDirectory"] == ["pibuddy"]
    assert service["StateDirectoryMode"] == ["0700"]
    assert service["ConfigurationDirectory"] == ["pibuddy"]
    assert "PYTHONUNBUFFERED=1" in service["Environment"]


def test_the_control_socket_lives_in_the_runtime_directory_for_the_group_only(
    service: dict[str, list[str]]
) -> None:
    """`pibuddy status` as a member of the pibuddy group finds the socket where systemd puts the service's
    runtime directory ($RUNTIME_DIRECTORY); 0750 keeps every other user out (test_control_permissions.py)."""
    assert service["RuntimeDirectory"] == ["pibuddy"]
    assert service["RuntimeDirectoryMode"] == ["0750"]
    runtime = "/run/" + service["RuntimeDirectory"][0]
    config = load_config(None, environ={})
    assert service_socket_path(config, {"RUNTIME_DIRECTORY": runtime}) == Path(runtime) / SOCKET_NAME
    assert client_socket_paths(config)[0] == Path(runtime) / SOCKET_NAME


def test_state_directory_from_systemd_is_pibuddys_state_dir(
    service: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd exports StateDirectory= as $STATE_DIRECTORY; PiBuddy keeps its identity there."""
    assert not any(e.startswith("PIBUDDY_") for e in service["Environment"]), "config belongs in config.yaml"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/" + service["StateDirectory"][0])
    assert load_config(None, environ={}).device.resolved_state_dir == Path("/var/lib/pibuddy")


def test_sandboxing(service: dict[str, list[str]]) -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
        "PrivateDevices": "no",
        "SystemCallFilter": "@system-service",
        "SystemCallErrorNumber": "EPERM",
        "ProtectKernelLogs": "yes",
        "ProtectProc": "invisible",
        "PrivateMounts": "yes",
        "RemoveIPC": "yes",
    }
    assert {key: service.get(key) for key in expected} == {key: [value] for key, value in expected.items()}
    (families,) = service["RestrictAddressFamilies"]
    assert set(families.split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_BLUETOOTH"}


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("SupplementaryGroups", "a group missing on the system fails the unit; setup.sh grants groups"),
        ("DeviceAllow", "an allow-list would hide /dev/snd, /dev/gpiochip* or /dev/gpiomem on some Pi"),
        ("ProtectClock", "implies a DeviceAllow= list, hiding the sound and GPIO devices"),
        ("MemoryDenyWriteExecute", "breaks cffi/ctypes callbacks (sounddevice)"),
        ("ProcSubset", "pid hides /proc/net/route (the LAN address), /proc/net/wireless and /proc/meminfo"),
    ],
)
def test_directives_that_would_break_devices_are_absent(
    service: dict[str, list[str]], key: str, why: str
) -> None:
    assert key not in service, why


def test_file_limit_is_raised_and_pibuddy_lifts_its_soft_limit_to_it(service: dict[str, list[str]]) -> None:
    assert int(service["LimitNOFILE"][0]) >= 16384
    script = ("import resource; from pibuddy.listener import raise_open_file_limit; "
              "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
              "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)); "
              "print(raise_open_file_limit() == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.strip() == "True"


@needs_systemd_analyze
def test_security_exposure_is_at_most_3(tmp_path: Path) -> None:
    unit = tmp_path / "pibuddy.service"
    unit.write_text(with_exec_start(UNIT.read_text(encoding="utf-8"), sys.executable), encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for pibuddy.service: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= 3.0


# --- PiBuddy itself under the unit's sandbox -------------------------------------------------------------

LAUNCHER = Path(__file__).resolve().parent / "seccomp_launcher.py"
SANDBOX_UNIT = "pibuddy-sandbox-test"
"""The transient unit's name; also its state and runtime directories' (never the real /var/lib/pibuddy)."""
_NOT_SANDBOX = frozenset({"ExecStart", "Restart", "RestartSec", "User", "Group", "StateDirectory",
                          "RuntimeDirectory", "ConfigurationDirectory"})
"""[Service] keys the transient unit sets its own way; every other one of the unit's lines is passed as is."""
_HIDDEN_BY_PROTECT_HOME = ("/home", "/root", "/run/user")
_ERROR_LINE = re.compile(r"^\S*\s*(ERROR|CRITICAL) ", re.MULTILINE)
_PROBE = """
import ctypes, errno, socket
libc = ctypes.CDLL(None, use_errno=True)
failed = libc.adjtimex(ctypes.create_string_buffer(512)) < 0  # @clock: outside @system-service
print("adjtimex", errno.errorcode[ctypes.get_errno()] if failed else "ok")
for name in ("AF_PACKET", "AF_INET"):
    try:
        socket.socket(getattr(socket, name), socket.SOCK_DGRAM).close()
        print(name, "ok")
    except OSError as exc:
        print(name, errno.errorcode[exc.errno])
"""


def small_config(*, state_dir: Path | None = None, control_socket: str | None = None) -> tuple[str, int]:
    """A config for `pibuddy run` without sound hardware: the gateway on free 127.0.0.1 ports, the local
    brain, no xiaozhi server. Returns (YAML, the local OTA's port)."""
    ota_port = free_port()
    gateway = {"host": "127.0.0.1", "mqtt_port": free_port(), "udp_port": free_port(socket.SOCK_DGRAM),
               "api_port": free_port(), "ota_port": ota_port, "mdns": False}
    config: dict[str, object] = {"audio": {"enabled": False}, "upstream": {"enabled": False},
                                 "brain": {"mode": "local"}, "gateway": gateway}
    if state_dir is not None:
        config["device"] = {"state_dir": str(state_dir)}
    if control_socket is not None:
        config["control"] = {"socket": control_socket}
    return json.dumps(config), ota_port


def ota_issues_credentials(port: int) -> bool:
    """The gateway inside the sandbox answers a device's OTA request with MQTT credentials."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/xiaozhi/ota/", data=b"{}", method="POST",
                                     headers={"Device-Id": "aa:bb:cc:dd:ee:01", "Client-Id": "u-1",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status == 200 and "password" in json.loads(response.read())["mqtt"]


def assert_clean_log(log: str) -> None:
    assert "PiBuddy is up" in log
    assert "PiBuddy stopped" in log
    assert "Traceback" not in log, log
    assert "Operation not permitted" not in log, log  # what a filtered call turns into
    assert not _ERROR_LINE.search(log), log


def syscall_allow_list(filter_value: str) -> set[str]:
    """The system calls of a SystemCallFilter= allow-list, groups expanded as `systemd-analyze` lists them."""
    assert not filter_value.startswith("~"), "a deny-list: this check replays an allow-list"
    listing = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    groups: dict[str, list[str]] = {}
    members: list[str] = []
    for line in listing.splitlines():
        if line.startswith("@"):
            members = groups.setdefault(line.strip(), [])
        elif line.strip() and not line.strip().startswith("#"):
            members.append(line.strip())

    def expand(name: str) -> set[str]:
        return set().union(*(expand(m) for m in groups[name])) if name.startswith("@") else {name}

    return set().union(*(expand(name) for name in filter_value.split()))


@needs_systemd_analyze
def test_pibuddy_runs_under_the_units_system_call_and_address_family_filters(
    service: dict[str, list[str]], tmp_path: Path, notify_socket: socket.socket, pibuddy_env: dict[str, str],
    python: str,
) -> None:
    """Where systemd cannot start a unit (a container), the directives most likely to break PiBuddy are
    replayed with libseccomp, from the unit's own values: SystemCallFilter= with SystemCallErrorNumber=,
    RestrictAddressFamilies=, SystemCallArchitectures=native and NoNewPrivileges= (tests/seccomp_launcher.py).
    The unit's ExecStart, `pibuddy run`, starts, serves its gateway and control socket, and stops on SIGTERM
    without one refused call in its log. The mount, user and namespace directives are not reproduced: the
    systemd-run test below covers the whole sandbox where systemd runs."""
    assert service["SystemCallArchitectures"] == ["native"]
    assert service["NoNewPrivileges"] == ["yes"]
    launcher = [python, str(LAUNCHER), "--allow", ",".join(sorted(syscall_allow_list(service["SystemCallFilter"][0]))),
                "--errno", service["SystemCallErrorNumber"][0],
                "--families", ",".join(service["RestrictAddressFamilies"][0].split()), "--"]
    # The filter is in force: a call outside the list and a family outside the list fail as systemd makes them.
    probe = subprocess.run([*launcher, python, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
    assert probe.stdout.split("\n")[:3] == ["adjtimex EPERM", "AF_PACKET EAFNOSUPPORT", "AF_INET ok"], probe.stderr
    config_text, ota_port = small_config()
    config = tmp_path / "config.yaml"
    config.write_text(config_text, encoding="utf-8")
    (exec_start,) = service["ExecStart"]
    assert exec_start.split()[1:3] == ["run", "--config"]
    pibuddy = str(Path(python).with_name("pibuddy"))  # the unit's program, in this checkout's venv (setup.sh)
    env = pibuddy_env | {"NOTIFY_SOCKET": notify_socket.getsockname()}
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([*launcher, pibuddy, "run", "--config", str(config)], env=env, stderr=log)
    try:
        try:
            messages_until(notify_socket, "READY=1", time.monotonic() + scaled(30))
        except TimeoutError:
            pytest.fail("no READY=1 under the filter:\n" + log_path.read_text(encoding="utf-8", errors="replace"))
        assert ota_issues_credentials(ota_port)
        status = subprocess.run([pibuddy, "status", "--config", str(config)], env=pibuddy_env, capture_output=True,
                                text=True, timeout=60, check=False)
        assert status.returncode == 0, status.stderr
        assert re.search(r"^\s+gateway\s+running", status.stdout, re.MULTILINE), status.stdout
        process.send_signal(signal.SIGTERM)
        messages_until(notify_socket, "STOPPING=1", time.monotonic() + 5)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait(timeout=10)
    assert_clean_log(log_path.read_text(encoding="utf-8", errors="replace"))


def _as_root() -> list[str] | None:
    """The prefix that runs a command as root: none when root already, `sudo -n` when allowed, else None."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=30,
                                               check=False).returncode == 0:
        return ["sudo", "-n"]
    return None


def _service_user(paths: list[Path]) -> str:
    """DynamicUser=yes (an unprivileged user, like the unit's pibuddy) when everyone may read `paths`, else
    the owner of the first one (a checkout under a private home directory)."""
    def open_to_all(path: Path) -> bool:
        return all(part.stat().st_mode & 0o005 == 0o005 for part in [path, *path.parents])

    if all(open_to_all(path) for path in paths):
        return "DynamicUser=yes"
    return f"User={pwd.getpwuid(paths[0].stat().st_uid).pw_name}"


_SYSTEMD_IS_INIT = Path("/run/systemd/system").is_dir() and shutil.which("systemd-run") is not None


@pytest.mark.skipif(not _SYSTEMD_IS_INIT, reason="systemd is not the init system here (a container): "
                    "systemd-run cannot start a transient unit; the system-call and address-family test "
                    "above runs PiBuddy under those directives, and the others are checked statically")
def test_pibuddy_starts_under_the_units_sandbox(service: dict[str, list[str]], tmp_path: Path) -> None:
    """The unit's ExecStart, `pibuddy run`, as a transient unit with every sandboxing line of the unit (Type=notify
    and the watchdog too): it gets to READY=1, serves its gateway and control socket, and stops on SIGTERM
    (systemctl stop) with exit status 0 and a clean log.

    Set differently, and why: User=pibuddy -> DynamicUser=yes (no pibuddy user outside an install), or the
    checkout owner's user when the checkout is private; the state and runtime directories get this test's
    name; the config comes in as a credential (/run/credentials/<unit>/config.yaml), since PrivateTmp= hides
    the test's /tmp and ConfigurationDirectory= would be /etc/pibuddy; ProtectHome=read-only instead of yes
    when the venv or its Python lives under /home or /root, which the installed service refuses."""
    root = _as_root()
    if root is None:
        pytest.skip("systemd-run needs root, or sudo without a password, to start a system unit")
    pibuddy = Path(sys.executable).with_name("pibuddy")
    needed = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent, UNIT.parent.parent]
    properties = [f"{key}={value}" for key, values in service.items() if key not in _NOT_SANDBOX for value in values]
    if any(str(path).startswith(_HIDDEN_BY_PROTECT_HOME) for path in needed):
        properties = [("ProtectHome=read-only" if p == "ProtectHome=yes" else p) for p in properties]
    config_text, ota_port = small_config()
    config = tmp_path / "config.yaml"
    config.write_text(config_text, encoding="utf-8")
    runtime = Path("/run") / SANDBOX_UNIT
    client_text, _ = small_config(state_dir=tmp_path / "client-state", control_socket=str(runtime / SOCKET_NAME))
    client_config = tmp_path / "client.yaml"
    client_config.write_text(client_text, encoding="utf-8")
    properties += [_service_user(needed), f"StateDirectory={SANDBOX_UNIT}", f"RuntimeDirectory={SANDBOX_UNIT}",
                   f"LoadCredential=config.yaml:{config}"]

    def systemctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*root, "systemctl", *args], capture_output=True, text=True, timeout=60, check=False)

    def cleanup() -> None:
        systemctl("stop", SANDBOX_UNIT)
        systemctl("reset-failed", SANDBOX_UNIT)
        subprocess.run([*root, "rm", "-rf", f"/var/lib/{SANDBOX_UNIT}", f"/var/lib/private/{SANDBOX_UNIT}"],
                       timeout=60, check=False)

    cleanup()  # a run interrupted before
    log_path = tmp_path / "run.log"
    command = [*root, "systemd-run", "--wait", "--pipe", f"--unit={SANDBOX_UNIT}",
               *(f"--property={p}" for p in properties),
               str(pibuddy), "run", "--config", f"/run/credentials/{SANDBOX_UNIT}.service/config.yaml"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + scaled(60)
        state = ""
        while state != "active" and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # Type=notify: "activating" until PiBuddy sends READY=1
            state = systemctl("show", "--property=ActiveState", "--value", SANDBOX_UNIT).stdout.strip()
        assert state == "active", log_path.read_text(encoding="utf-8", errors="replace")
        assert ota_issues_credentials(ota_port)
        status = subprocess.run([*root, str(pibuddy), "status", "--config", str(client_config)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0, status.stderr
        assert re.search(r"^\s+gateway\s+running", status.stdout, re.MULTILINE), status.stdout
        assert systemctl("stop", SANDBOX_UNIT).returncode == 0  # SIGTERM, then TimeoutStopSec=
        assert process.wait(timeout=60) == 0, log_path.read_text(encoding="utf-8", errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        cleanup()
    assert_clean_log(log_path.read_text(encoding="utf-8", errors="replace"))


def test_installs_into_multi_user_target() -> None:
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["Wants"]
