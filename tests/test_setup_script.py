"""setup.sh, scripts/test.sh and .ci/run, run for real.

Only the outermost edges are replaced, and only in temp copies: apt/dpkg (tests must not install Debian
packages), an old Python (none is installed here), and the commands test.sh drives. The idempotence and
--service tests run the real setup.sh against this checkout's .venv, the service one into a PIBUDDY_ROOT
prefix so this machine's users and /etc stay untouched.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.model_mirror import CN_MODEL, Mirror, vosk_zip

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "setup.sh"
SHELL_SCRIPTS = [SETUP, REPO / "scripts" / "test.sh", REPO / "scripts" / "arm64-check.sh", REPO / ".ci" / "run"]
UNIT_TEMPLATE = REPO / "systemd" / "pibuddy.service"

is_root = os.geteuid() == 0


def run(args: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIBUDDY_")}
    env.update(extra)
    return env


def write_executable(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return path


# ---- setup.sh: syntax, lint, options --------------------------------------------------------------------


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_script_is_executable_bash_with_valid_syntax(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script} is not executable"
    result = run(["bash", "-n", str(script)])
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (setup.sh --dev)")
def test_shellcheck_is_clean() -> None:
    result = run(["shellcheck", *map(str, SHELL_SCRIPTS)])
    assert result.returncode == 0, result.stdout


def test_help_mentions_every_option_the_script_accepts() -> None:
    patterns = re.findall(r"^\s+(--[a-z-]+(?: \| -[a-z-]+)*)\)", SETUP.read_text(encoding="utf-8"), re.MULTILINE)
    accepted = [option for pattern in patterns for option in pattern.split(" | ")]
    assert set(accepted) >= {"--dev", "--service", "--no-apt", "--vosk-model", "--piper-voice"}
    result = run([str(SETUP), "--help"])
    assert result.returncode == 0
    environment = ["PIBUDDY_PYTHON", "PIBUDDY_ROOT", "PIBUDDY_MODELS_DIR", "PIBUDDY_VOSK_MIRROR",
                   "PIBUDDY_PIPER_MIRROR"]
    for option in [*accepted, "--help", *environment]:
        assert option in result.stdout, f"--help does not mention {option}"


def test_unknown_option_is_refused() -> None:
    result = run([str(SETUP), "--frobnicate"])
    assert result.returncode == 2
    assert "--frobnicate" in result.stderr
    assert "--help" in result.stderr
    result = run([str(SETUP), "--vosk-model"])
    assert result.returncode == 1
    assert "--vosk-model needs a value" in result.stderr


# ---- setup.sh apt and Python steps, on a temp copy with fake apt/dpkg -----------------------------------


class FakeSystem:
    """A copy of setup.sh beside no .venv, with dpkg-query, apt-get and sudo replaced on PATH."""

    def __init__(self, root: Path) -> None:
        self.repo = root / "repo"
        self.repo.mkdir()
        shutil.copy2(SETUP, self.repo / "setup.sh")
        self.bin = root / "bin"
        self.apt_log = root / "apt.log"
        self.dpkg_log = root / "dpkg.log"
        # dpkg-query -W -f=FORMAT pkg...: every package installed except $FAKE_MISSING (removed, config kept).
        write_executable(self.bin / "dpkg-query", f"""echo "$*" >> {self.dpkg_log}
shift 2
for p in "$@"; do
    if [ "$p" = "$FAKE_MISSING" ]; then echo "$p config-files"; else echo "$p installed"; fi
done
""")
        write_executable(self.bin / "apt-get", f"""echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> {self.apt_log}
case " $* " in *" install "*) exit 100 ;; esac
""")
        write_executable(self.bin / "sudo", 'exec "$@"\n')
        # dpkg --print-architecture: $FAKE_ARCH.
        write_executable(self.bin / "dpkg", 'echo "$FAKE_ARCH"\n')
        # Answers like a Python 3.9: fails the version check, reports itself on --version.
        self.old_python = write_executable(
            self.bin / "python3.9", 'if [ "$1" = --version ]; then echo "Python 3.9.2"; exit 0; fi\nexit 1\n'
        )
        # Passes the version check but makes no venv, so a run ends at the venv step, after apt.
        self.new_python = write_executable(
            self.bin / "python3.11", 'case "$*" in *"-m venv"*) exit 1 ;; esac\necho "Python 3.11.2"\n'
        )

    def run(self, *args: str, missing: str = "", arch: str = "amd64",
            old_python: bool = False) -> subprocess.CompletedProcess[str]:
        python = self.old_python if old_python else self.new_python
        env = base_env(PATH=f"{self.bin}:{os.environ['PATH']}", FAKE_MISSING=missing, FAKE_ARCH=arch,
                       PIBUDDY_PYTHON=str(python))
        return run([str(self.repo / "setup.sh"), *args], env=env, cwd=self.repo)

    def apt_calls(self) -> list[str]:
        return self.apt_log.read_text().splitlines() if self.apt_log.exists() else []


@pytest.fixture
def fake_system(tmp_path: Path) -> FakeSystem:
    return FakeSystem(tmp_path)


def test_apt_is_skipped_when_every_package_is_installed(fake_system: FakeSystem) -> None:
    result = fake_system.run("--dev")
    assert "already installed" in result.stdout
    assert fake_system.apt_calls() == []
    assert "mosquitto" in fake_system.dpkg_log.read_text().split(), "--dev must ask for the test peers"


def test_apt_installs_exactly_the_missing_packages(fake_system: FakeSystem) -> None:
    result = fake_system.run("--dev", missing="mosquitto")
    assert result.returncode == 100, "a failing apt-get must stop setup.sh with its status"
    update, install = fake_system.apt_calls()
    assert update.startswith("DEBIAN_FRONTEND=noninteractive ")
    assert update.endswith(" update")
    assert install.endswith(" install -y --no-install-recommends mosquitto")


def test_without_dev_the_test_peers_are_not_wanted(fake_system: FakeSystem) -> None:
    fake_system.run(missing="mosquitto")
    assert fake_system.apt_calls() == []
    assert "mosquitto" not in fake_system.dpkg_log.read_text().split()


def test_a_too_old_python_is_refused_clearly_before_apt_installs_anything(fake_system: FakeSystem) -> None:
    result = fake_system.run("--dev", missing="mosquitto", old_python=True)
    assert result.returncode == 1
    assert "needs Python >= 3.11" in result.stderr
    assert "Python 3.9.2" in result.stderr
    assert "Debian packages" not in result.stdout
    assert fake_system.apt_calls() == []
    assert not (fake_system.repo / ".venv").exists()


@pytest.mark.parametrize("arch", ["armhf", "armel"])
def test_32_bit_arm_is_refused_with_the_reason_before_anything_is_installed(fake_system: FakeSystem,
                                                                            arch: str) -> None:
    result = fake_system.run("--dev", missing="mosquitto", arch=arch)
    assert result.returncode == 1
    assert f"32-bit ARM system ({arch})" in result.stderr
    assert "Raspberry Pi OS (64-bit)" in result.stderr
    assert fake_system.apt_calls() == []
    assert not (fake_system.repo / ".venv").exists()


def test_arm64_passes_the_architecture_check(fake_system: FakeSystem) -> None:
    result = fake_system.run("--dev", arch="arm64")
    assert "already installed" in result.stdout, result.stderr


# ---- setup.sh against this checkout ---------------------------------------------------------------------


def test_second_run_changes_nothing() -> None:
    """The first run may update .venv (if pyproject.toml changed); the second must find nothing to do."""
    first = run([str(SETUP), "--dev", "--no-apt"], env=base_env(), timeout=900)
    assert first.returncode == 0, first.stderr
    second = run([str(SETUP), "--dev", "--no-apt"], env=base_env())
    assert second.returncode == 0, second.stderr
    assert "skipped (--no-apt)" in second.stdout
    assert "up to date" in second.stdout
    assert "nothing changed" in second.stdout


async def test_vosk_model_option_fetches_the_model_once_and_says_which_keys_use_it(mirror: Mirror,
                                                                                   tmp_path: Path) -> None:
    mirror.files[f"mirror/{CN_MODEL}.zip"] = vosk_zip()
    env = base_env(PIBUDDY_MODELS_DIR=str(tmp_path), PIBUDDY_VOSK_MIRROR=mirror.url)
    command = [str(SETUP), "--no-apt", "--vosk-model", "zh-CN"]
    first = await asyncio.to_thread(run, command, env=env, timeout=900)
    assert first.returncode == 0, first.stderr
    assert f"brain.vosk_model_path: {tmp_path / CN_MODEL}" in first.stdout
    assert (tmp_path / CN_MODEL / "am").is_dir()
    second = await asyncio.to_thread(run, command, env=env)
    assert second.returncode == 0, second.stderr
    assert "already there" in second.stdout
    assert "nothing changed" in second.stdout
    assert mirror.requests == [f"mirror/{CN_MODEL}.zip"]
    mirror.files.clear()
    failed = await asyncio.to_thread(run, [str(SETUP), "--no-apt", "--vosk-model", "vosk-model-gone-0.1"], env=env)
    assert failed.returncode == 1
    assert "HTTP 404" in failed.stderr
    assert "could not fetch the model" in failed.stderr


@pytest.mark.skipif(not is_root or shutil.which("runuser") is None, reason="needs root and runuser")
def test_service_needs_root() -> None:
    result = run(["runuser", "-u", "nobody", "--", str(SETUP), "--service", "--no-apt"], cwd=Path("/"))
    assert result.returncode == 1
    assert "--service needs root" in result.stderr


def write_prefix_accounts(root: Path, groups: dict[str, int]) -> None:
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (etc / "group").write_text("root:x:0:\n" + "".join(f"{name}:x:{gid}:\n" for name, gid in groups.items()))
    (etc / "gshadow").write_text("root:*::\n" + "".join(f"{name}:!::\n" for name in groups))
    for name in ("shadow", "gshadow"):
        (etc / name).chmod(0o600)


def account(root: Path, database: str, name: str) -> list[str]:
    for line in (root / "etc" / database).read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    raise AssertionError(f"{name} not in {database}")


def members(root: Path, group: str) -> list[str]:
    return [m for m in account(root, "group", group)[3].split(",") if m]


@pytest.mark.skipif(not is_root or shutil.which("useradd") is None or shutil.which("systemctl") is None,
                    reason="needs root, useradd and systemctl")
def test_service_install_into_a_prefix_and_rerun(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_prefix_accounts(root, {"audio": 29, "video": 44, "gpio": 997})  # no bluetooth, spi, i2c yet
    env = base_env(PIBUDDY_ROOT=str(root))

    result = run([str(SETUP), "--service", "--dev", "--no-apt"], env=env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr

    user = account(root, "passwd", "pibuddy")
    uid, gid = int(user[2]), int(user[3])
    assert user[5:] == ["/var/lib/pibuddy", "/usr/sbin/nologin"]
    assert [g for g in ("audio", "video", "gpio") if "pibuddy" not in members(root, g)] == []

    config = root / "etc/pibuddy/config.yaml"
    info = config.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, gid)
    assert config.read_bytes() == (REPO / "config.yaml").read_bytes()

    state = (root / "var/lib/pibuddy").stat()
    assert (stat.S_IMODE(state.st_mode), state.st_uid, state.st_gid) == (0o700, uid, gid)

    unit = (root / "etc/systemd/system/pibuddy.service").read_text()
    exec_start = f"ExecStart={REPO}/.venv/bin/pibuddy run --config /etc/pibuddy/config.yaml"
    assert unit.splitlines() == [
        exec_start if line.startswith("ExecStart=") else line for line in UNIT_TEMPLATE.read_text().splitlines()
    ]
    assert (root / "etc/systemd/system/multi-user.target.wants/pibuddy.service").is_symlink()
    assert (root / "etc/sysctl.d/60-pibuddy.conf").read_text() == "net.core.rmem_max = 4194304\n"
    if shutil.which("systemd-analyze"):
        verify = run(["systemd-analyze", "verify", "--man=no", str(root / "etc/systemd/system/pibuddy.service")])
        assert verify.returncode == 0, verify.stderr
        assert "pibuddy.service" not in verify.stderr

    # The admin edits the config; a rerun keeps it and changes nothing.
    config.write_text("# mine\n")
    again = run([str(SETUP), "--service", "--dev", "--no-apt"], env=env)
    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert config.read_text() == "# mine\n"

    # A group that appears later (bluez installed) is granted on the next run.
    with (root / "etc/group").open("a") as group_file:
        group_file.write("bluetooth:x:998:\n")
    with (root / "etc/gshadow").open("a") as gshadow_file:
        gshadow_file.write("bluetooth:!::\n")
    third = run([str(SETUP), "--service", "--dev", "--no-apt"], env=env)
    assert third.returncode == 0, third.stderr
    assert "added to groups: bluetooth" in third.stdout
    assert members(root, "bluetooth") == ["pibuddy"]


# ---- scripts/test.sh and .ci/run, in a temp layout --------------------------------------------------------


class ScriptLayout:
    """A checkout-shaped temp dir: the real test.sh and .ci/run; setup.sh and the checkers record their arguments."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "scripts").mkdir()
        shutil.copy2(REPO / "scripts" / "test.sh", root / "scripts" / "test.sh")
        (root / ".ci").mkdir()
        shutil.copy2(REPO / ".ci" / "run", root / ".ci" / "run")
        for package in ("pibuddy", "tests"):
            (root / package).mkdir()
        write_executable(root / "setup.sh", 'echo "$*" > setup.args\nexit "${FAKE_SETUP_RC:-0}"\n')
        write_executable(root / ".venv/bin/ruff", 'echo "$*" > ruff.args\n')
        write_executable(root / ".venv/bin/mypy", 'echo "$*" > mypy.args\n')
        write_executable(root / ".venv/bin/lint-imports", 'echo "$*" > lint-imports.args\n')
        (root / "tests" / "peers").mkdir()
        (root / "tests" / "peers" / "prepare.py").write_text('open("prepare.args", "w").close()\n', encoding="utf-8")
        write_executable(root / ".venv/bin/python", f'exec {sys.executable} "$@"\n')

    def add_test(self, body: str) -> None:
        (self.root / "tests" / "test_sample.py").write_text(body, encoding="utf-8")

    def run(self, command: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        env = base_env(HOME=str(self.root / "home"), **extra_env)
        return run([str(self.root / command), *args], env=env, cwd=self.root, timeout=300)


@pytest.fixture
def layout(tmp_path: Path) -> ScriptLayout:
    return ScriptLayout(tmp_path)


def test_test_sh_sets_up_lints_and_runs_pytest_with_a_cache_and_timeout(layout: ScriptLayout) -> None:
    cache = layout.root / "home" / ".cache" / "pibuddy-tests"
    layout.add_test(f"""
import os

def test_environment(request):
    assert os.environ["PIBUDDY_TEST_CACHE"] == {str(cache)!r}
    assert os.path.isdir(os.environ["PIBUDDY_TEST_CACHE"])
    assert float(request.config.getini("timeout")) == 120
""")
    result = layout.run("scripts/test.sh", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert (layout.root / "setup.args").read_text().split() == ["--dev"]
    assert (layout.root / "ruff.args").read_text().split() == ["check", "pibuddy", "tests", "scripts"]
    assert (layout.root / "mypy.args").exists(), "the type check runs (its settings are in pyproject.toml)"
    assert (layout.root / "lint-imports.args").exists(), "the import-direction check runs"


def test_test_sh_fails_when_no_tests_are_collected(layout: ScriptLayout) -> None:
    result = layout.run("scripts/test.sh", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 5
    assert "collected no tests" in result.stderr


def test_test_sh_fails_on_a_failing_test(layout: ScriptLayout) -> None:
    layout.add_test("def test_fails():\n    assert 1 == 2\n")
    result = layout.run("scripts/test.sh", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 1
    assert "1 failed" in result.stdout


def test_test_sh_stops_when_setup_fails(layout: ScriptLayout) -> None:
    layout.add_test("def test_passes():\n    pass\n")
    result = layout.run("scripts/test.sh", FAKE_SETUP_RC="3")
    assert result.returncode == 3
    assert not (layout.root / "ruff.args").exists()


def test_ci_run_calls_test_sh_from_the_root_and_propagates_its_status(layout: ScriptLayout) -> None:
    write_executable(layout.root / "scripts" / "test.sh", 'pwd > test.cwd\necho "$*" > test.args\nexit 7\n')
    result = run([str(layout.root / ".ci" / "run"), "-x"], cwd=Path("/"), env=base_env())
    assert result.returncode == 7
    assert (layout.root / "test.cwd").read_text().strip() == str(layout.root)
    assert (layout.root / "test.args").read_text().strip() == "-x"


@pytest.mark.parametrize(("args", "test_rc"), [((), 0), ((), 7), (("-k", "config"), 0)])
def test_ci_run_never_starts_the_arm64_check(layout: ScriptLayout, args: tuple[str, ...], test_rc: int) -> None:
    """The arm64 check from a cold cache (every CI machine) takes over an hour: it is run by hand, not by CI."""
    write_executable(layout.root / "scripts" / "test.sh", f"exit {test_rc}\n")
    write_executable(layout.root / "scripts" / "arm64-check.sh", "pwd > arm64.cwd\nexit 4\n")
    result = run([str(layout.root / ".ci" / "run"), *args], cwd=Path("/"), env=base_env())
    assert result.returncode == test_rc
    assert not (layout.root / "arm64.cwd").exists()


# ---- setup.sh on a Raspberry Pi: hints from the model and config.txt, which stays untouched ---------------

PI_CONFIG_TXT = """# For more options and information see http://rptl.io/configtxt
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on
dtparam=audio=on
camera_auto_detect=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2

[all]
dtparam=i2c_arm=on
"""

NO_CAPTURE = "**** List of CAPTURE Hardware Devices ****\n"
ONE_CAPTURE = NO_CAPTURE + "card 1: Device [USB PnP Sound Device], device 0: USB Audio [USB Audio]\n"


@pytest.mark.parametrize("capture", [NO_CAPTURE, ONE_CAPTURE], ids=["no-microphone", "usb-microphone"])
def test_on_a_pi_setup_prints_hints_from_config_txt_and_never_edits_it(tmp_path: Path, capture: str) -> None:
    root = tmp_path / "root"
    write_executable(tmp_path / "bin" / "arecord", f"cat <<'EOF'\n{capture}EOF\n")
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    (root / "etc").mkdir()
    (root / "etc/group").write_text("audio:x:29:nobody\ngpio:x:997:\nspi:x:999:\n")
    config = root / "boot/firmware/config.txt"
    config.parent.mkdir(parents=True)
    config.write_text(PI_CONFIG_TXT)
    before = config.stat()
    env = base_env(PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", PIBUDDY_ROOT=str(root), SUDO_USER="nobody")
    result = run([str(SETUP), "--no-apt"], env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "==> Raspberry Pi: Raspberry Pi 4 Model B Rev 1.4\n" in out
    # nobody is in audio but not in gpio or spi; there is no i2c group in this prefix.
    assert "sudo usermod -aG gpio,spi nobody (then log in again)" in out
    assert "overlays: vc4-kms-v3d;" in out
    spi_hint = "SPI is off; LED rings on SPI (APA102, as on ReSpeaker HATs) need it: sudo raspi-config nonint do_spi 0"
    assert f"{spi_hint}\n" in out
    assert "I2C is off" not in out, "dtparam=i2c_arm=on is set under [all]"
    assert ("dtoverlay=googlevoicehat-soundcard" in out) == (capture == NO_CAPTURE)
    assert ("dtoverlay=wm8960-soundcard" in out) == (capture == NO_CAPTURE)
    assert config.read_text() == PI_CONFIG_TXT
    assert config.stat().st_mtime_ns == before.st_mtime_ns


def test_off_a_pi_there_are_no_pi_hints(tmp_path: Path) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Hardkernel ODROID-N2\0")
    result = run([str(SETUP), "--no-apt"], env=base_env(PIBUDDY_ROOT=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert "Raspberry Pi" not in result.stdout
