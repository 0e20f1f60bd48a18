"""`pibuddy check`'s probe runner: one probe's slow start must not cost another its deadline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pibuddy.config import Config
from pibuddy.probe import Probe, ProbeResult
from pibuddy.wiring import check
from tests.peers.ports import free_port

_DEADLINE_SECONDS = 1.0  # the probes' own deadline here (ample for a refused connection); the runner adds 2 s
_IMPORT_SECONDS = _DEADLINE_SECONDS + 2.5  # how long the slow module takes to import: longer than both


async def test_a_slow_import_in_one_probe_leaves_the_others_their_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen under emulation (a slow core): the upstream row said "probe timed out" for a port that refused the
    # connection at once, because other probes' imports blocked the loop while its deadline ran.
    (tmp_path / "slow_probe_module.py").write_text(f"import time\ntime.sleep({_IMPORT_SECONDS})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_probe_module", raising=False)
    monkeypatch.setattr(check, "_PROBE_TIMEOUT_SECONDS", _DEADLINE_SECONDS)

    async def slow(config: Config) -> ProbeResult:
        import slow_probe_module  # noqa: F401, PLC0415 (the import is the slow part)

        return ProbeResult(True, "loaded")

    port = free_port()  # nothing listens here
    config = Config.model_validate({"upstream": {"ota_url": f"http://127.0.0.1:{port}/xiaozhi/ota/"}})
    upstream = next(p for p in check.PROBES if p.name == "upstream")
    rows = dict(await check.run_probes(config, [upstream, Probe("slow", lambda c: True, slow,
                                                                loads=("slow_probe_module",))]))
    assert rows["slow"] == ProbeResult(True, "loaded")
    assert not rows["upstream"].ok
    assert rows["upstream"].detail.startswith("cannot reach the xiaozhi OTA server")
    assert f"127.0.0.1:{port}" in rows["upstream"].detail
