"""Small foundation pieces: secret masking in logs and the state dir's file modes."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pibuddy.config import Config, DeviceConfig, load_config
from pibuddy.config import core as config_core
from pibuddy.events import ActivationCode, DeviceState, EventBus, StateChanged
from pibuddy.logsetup import SecretFilter
from pibuddy.statedir import StateDir


def test_secret_filter_masks_values_in_formatted_messages(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.secret")
    logger.addFilter(SecretFilter(["s3cr3t-token", "ab"]))
    try:
        with caplog.at_level(logging.INFO, logger="test.secret"):
            logger.info("connecting with token %s to %s", "s3cr3t-token", "about")
    finally:
        logger.filters.clear()
    assert caplog.messages == ["connecting with token *** to about"]  # too-short secrets are not masked


def test_log_lines_survive_portaudio_pointing_stderr_at_dev_null_in_another_thread() -> None:
    """sounddevice's PortAudio start does dup2(/dev/null, 2) in a worker thread; the loop's lines went there."""
    code = """if True:
        import logging, os, sys, threading
        from pibuddy.logsetup import setup_logging
        setup_logging("INFO")
        log = logging.getLogger("pibuddy.test")
        log.info("before")
        muted, redirected, restore = threading.Event(), threading.Event(), threading.Event()
        def portaudio_start():  # what sounddevice._initialize() does around Pa_Initialize()
            saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            redirected.set()
            restore.wait(5)
            os.dup2(saved, 2)
        worker = threading.Thread(target=portaudio_start)
        worker.start()
        redirected.wait(5)
        log.info("during")
        restore.set()
        worker.join()
        log.info("after")
    """
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert [line.rsplit(" ", 1)[-1] for line in result.stderr.splitlines()] == ["before", "during", "after"]


def test_state_dir_files_are_private_and_written_atomically(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    path = state.write_json("identity.json", {"uuid": "x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o700
    assert state.read_json("identity.json") == {"uuid": "x"}
    (state.path / "broken.json").write_text("{not json")
    assert state.read_json("broken.json") is None
    assert state.read_json("missing.json") is None
    assert sorted(p.name for p in state.path.iterdir()) == ["broken.json", "identity.json"]  # no temp files left


def test_a_void_activation_code_is_not_replayed_but_the_state_is() -> None:
    bus = EventBus()
    bus.set_state(DeviceState.ACTIVATING, "code pending")
    bus.publish(ActivationCode("123456", "enter it at xiaozhi.me"))
    late = bus.subscribe()
    assert late.queue.get_nowait() == StateChanged(DeviceState.STARTING, DeviceState.ACTIVATING, "code pending")
    assert late.queue.empty(), "a late subscriber must not be shown a code that may already be used"


def test_the_variables_setup_and_test_scripts_read_do_not_break_the_config() -> None:
    """A user who exported PIBUDDY_VOSK_MIRROR for setup.sh runs `pibuddy check` in the same shell next."""
    repo = Path(__file__).resolve().parent.parent
    documents = [repo / "setup.sh", repo / "README.md", *repo.joinpath("scripts").glob("*.sh")]
    names = {"PIBUDDY_TEST_VOSK_MODEL"} | {
        name for document in documents
        for name in re.findall(r"\bPIBUDDY_[A-Z][A-Z0-9_]*[A-Z0-9]\b", document.read_text(encoding="utf-8"))}
    steering = {name for name in names if name.split("_")[1].lower() not in Config.model_fields}
    assert {"PIBUDDY_PYTHON", "PIBUDDY_VOSK_MIRROR", "PIBUDDY_TEST_CACHE"} <= steering
    config = load_config(None, {name: "/somewhere" for name in steering})
    assert config == load_config(None, {})


def test_the_service_users_own_commands_find_the_service_state_dir(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`sudo -u pibuddy pibuddy activate` has no STATE_DIRECTORY and a home of /var/lib/pibuddy: it must still
    use /var/lib/pibuddy, not /var/lib/pibuddy/.local/state/pibuddy (another identity)."""
    service_dir = tmp_path / "var-lib-pibuddy"
    service_dir.mkdir()
    service_uid = 4242 if os.geteuid() == 0 else os.geteuid()
    if os.geteuid() == 0:
        os.chown(service_dir, service_uid, service_uid)
    monkeypatch.setattr(config_core, "SYSTEM_STATE_DIR", service_dir)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(os, "geteuid", lambda: service_uid)
    assert DeviceConfig().resolved_state_dir == service_dir
    monkeypatch.setattr(os, "geteuid", lambda: service_uid + 1)  # any other user keeps their own
    assert DeviceConfig().resolved_state_dir == tmp_path / "xdg" / "pibuddy"
