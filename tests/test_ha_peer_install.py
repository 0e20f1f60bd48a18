"""The Home Assistant test peer's installer: where it caches, and which failures skip rather than fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.peers import cache
from tests.peers import homeassistant as peer


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIBUDDY_TEST_CACHE", str(tmp_path))
    assert cache.cache_root() == tmp_path
    monkeypatch.delenv("PIBUDDY_TEST_CACHE")
    assert cache.cache_root() == Path.home() / ".cache" / "pibuddy-tests"


def test_no_route_to_pypi_means_skip_other_failures_mean_fail() -> None:
    lines: list[str] = []
    offline = [sys.executable, "-c", "print('ERROR: No matching distribution found for homeassistant'); exit(1)"]
    with pytest.raises(peer.InstallImpossible):
        peer._run(offline, lines.append)
    assert lines == ["  ERROR: No matching distribution found for homeassistant"]  # progress shows pip's lines
    with pytest.raises(RuntimeError, match="exit code 3"):
        peer._run([sys.executable, "-c", "print('Collecting x'); exit(3)"], lines.append)


def test_an_interrupted_build_is_redone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIBUDDY_TEST_CACHE", str(tmp_path))
    venv = tmp_path / f"homeassistant-{peer.cache_key('0.0')}"
    (venv / "bin").mkdir(parents=True)  # a half-built venv from a killed run: no completion marker
    built: list[Path] = []

    def fake_build(version: str, target: Path, progress: peer.Progress) -> None:
        assert not (target / "bin").exists(), "the half-built venv must be removed first"
        target.mkdir()
        built.append(target)

    monkeypatch.setattr(peer, "_build", fake_build)
    assert peer.ensure_installed("0.0", progress=lambda line: None) == venv / "bin" / "python"
    assert built == [venv]
    assert peer.ensure_installed("0.0", progress=lambda line: None) == venv / "bin" / "python"
    assert built == [venv], "a complete venv is reused, not rebuilt"


def test_the_cache_is_keyed_by_the_requirement_set(monkeypatch: pytest.MonkeyPatch) -> None:
    before = peer.cache_key("2024.3.3")
    assert before.startswith("2024.3.3-")
    monkeypatch.setattr(peer, "_EXTRA_REQUIREMENTS", (*peer._EXTRA_REQUIREMENTS, "extra==1.0"))
    assert peer.cache_key("2024.3.3") != before, "a venv built without the new requirement must not be reused"
