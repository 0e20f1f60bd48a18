"""systemd/pibuddy.service: systemd itself accepts it, and it keeps the directives PiBuddy relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pibuddy.config import load_config
from pibuddy.control.paths import SOCKET_NAME, client_socket_paths, service_socket_path

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


_SYSTEMD_IS_INIT = Path("/run/systemd/system").is_dir() and shutil.which("systemd-run") is not None


@pytest.mark.skipif(not _SYSTEMD_IS_INIT, reason="systemd is not the init system here (a container): "
                    "systemd-run cannot start a transient unit; the directives are checked statically above")
def test_pibuddy_starts_under_the_units_sandbox() -> None:
    """`pibuddy check`'s imports and a socket under every sandboxing directive of the unit, via systemd-run."""
    sandbox = {key: values for key, values in parse_unit(UNIT.read_text(encoding="utf-8"))["Service"].items()
               if key not in ("Type", "NotifyAccess", "WatchdogSec", "ExecStart", "Restart", "RestartSec",
                              "TimeoutStopSec", "User", "Group", "StateDirectory", "StateDirectoryMode",
                              "ConfigurationDirectory", "Environment", "ProtectHome")}
    properties = [f"--property={key}={value}" for key, values in sandbox.items() for value in values]
    script = ("import socket, resource; import pibuddy.wiring.services; "
              "from pibuddy.listener import raise_open_file_limit; raise_open_file_limit(); "
              "s = socket.create_server(('127.0.0.1', 0)); print('ok', s.getsockname()[1] > 0)")
    result = subprocess.run(["systemd-run", "--wait", "--pipe", "--quiet", *properties, sys.executable, "-c",
                             script], capture_output=True, text=True, timeout=120, check=False)
    assert result.stdout.strip() == "ok True", result.stderr


def test_installs_into_multi_user_target() -> None:
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "network-online.target" in unit["Unit"]["Wants"]
