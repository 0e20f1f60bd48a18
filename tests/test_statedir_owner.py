"""The state dir as the service user sees it after a CLI ran with sudo: still readable, or a clear error.

The service user is simulated by `nobody` (uid 65534) owning the state dir; the process drops to that
effective uid only around the read, as the service would be.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pibuddy.device_client.identity import IDENTITY_FILE, load_identity
from pibuddy.statedir import StateDir, StatePermissionError

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown and to switch uid")


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """A state dir owned by the service user, under a parent it can traverse (pytest's tmp dirs are 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="pibuddy-state-"))
    parent.chmod(0o755)
    state = parent / "pibuddy"
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)
    yield state
    shutil.rmtree(parent)


@contextmanager
def as_service_user() -> Iterator[None]:
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_files_written_as_root_keep_the_dirs_owner(service_dir: Path) -> None:
    state = StateDir(service_dir)
    state.write_text("gateway_signature_key", "Key-1234x\n")  # e.g. `sudo pibuddy gateway credentials`
    state.write_json("openclaw_tokens.json", {"roles": {}})
    for name in ("gateway_signature_key", "openclaw_tokens.json"):
        info = (service_dir / name).stat()
        assert (info.st_uid, info.st_gid) == (NOBODY, NOBODY)
        assert stat.S_IMODE(info.st_mode) == 0o600
    with as_service_user():
        assert state.read_text("gateway_signature_key") == "Key-1234x\n"
        assert state.read_json("openclaw_tokens.json") == {"roles": {}}


def test_new_subdirs_written_as_root_keep_the_owner_too(service_dir: Path) -> None:
    specs = StateDir(service_dir / "miot_specs" / "v2")
    specs.write_text("spec.json", "{}")
    for path in (service_dir / "miot_specs", specs.path, specs.path / "spec.json"):
        assert path.stat().st_uid == NOBODY
    with as_service_user():
        assert specs.read_text("spec.json") == "{}"


def test_a_root_owned_file_gives_a_clear_error_naming_file_and_fix(service_dir: Path) -> None:
    locked = service_dir / "openclaw_identity.json"
    locked.write_text("{}")  # what an older PiBuddy left behind under sudo
    locked.chmod(0o600)
    with as_service_user(), pytest.raises(StatePermissionError) as caught:
        StateDir(service_dir).read_text("openclaw_identity.json")
    message = str(caught.value)
    assert f"cannot read {locked}" in message
    assert f"sudo chown -R nobody: {service_dir}" in message
    assert isinstance(caught.value, PermissionError)  # callers that handle OSError keep working


def test_an_unwritable_state_dir_gives_the_same_clear_error(service_dir: Path) -> None:
    os.chown(service_dir, 0, 0)
    with as_service_user(), pytest.raises(StatePermissionError, match=r"cannot write .*sudo chown -R nobody: "):
        StateDir(service_dir).write_text("status.json", "{}")


def test_the_device_identity_passes_the_clear_error_on_unchanged(service_dir: Path) -> None:
    locked = service_dir / IDENTITY_FILE
    locked.write_text("{}")
    locked.chmod(0o600)
    with as_service_user(), pytest.raises(StatePermissionError) as caught:
        load_identity(StateDir(service_dir))
    assert str(caught.value).count("cannot read") == 1, "one message, not one wrapped in another"
    assert f"sudo chown -R nobody: {service_dir}" in str(caught.value)
