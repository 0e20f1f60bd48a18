"""What building the local brain's recogniser for a household costs: wall time, the longest another thread had to
wait meanwhile (the microphone's callback is reopened as dead after 2 s without a call), and the RSS it keeps.

    .venv/bin/python bench/recogniser_build.py [--record]

The household is the recorded Home Assistant snapshot the tests use; each figure is the median of --runs fresh
processes (RSS after gc and malloc_trim, against the process with the brain's modules imported).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _results import append_section  # noqa: E402


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 1e6


def _trimmed_rss_mb() -> float:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss_mb()


def measure_once() -> dict[str, float]:
    """In this process: build the recogniser for the household once."""
    from pibuddy.brain.asr.sphinx import PocketsphinxAsr, load_intents  # noqa: PLC0415
    from pibuddy.brain.vocabulary import from_homeassistant  # noqa: PLC0415
    from pibuddy.drivers.homeassistant.index import Index  # noqa: PLC0415
    from tests.peers.fixtures_homeassistant import SNAPSHOT  # noqa: PLC0415
    from tests.stalls import thread_waits  # noqa: PLC0415

    household = from_homeassistant(Index.from_snapshot(SNAPSHOT))
    load_intents("en")
    before = _trimmed_rss_mb()
    with thread_waits() as gaps:
        started = time.monotonic()
        engine = PocketsphinxAsr("en")
        engine.prepare()
        engine.set_vocabulary(household)
        built = time.monotonic() - started
    return {"build_s": built, "longest_wait_s": max(gaps), "rss_mb": _trimmed_rss_mb() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)  # a child process's measurement
    args = parser.parse_args()
    if args.once:
        print(json.dumps(measure_once()))
        return
    runs = [json.loads(subprocess.run([sys.executable, __file__, "--once"], capture_output=True, text=True,
                                      check=True, cwd=REPO, timeout=300).stdout) for _ in range(args.runs)]
    figures = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    line = (f"recogniser for the test household, median of {args.runs} processes: built in "
            f"{figures['build_s']:.2f} s, another thread waited at most {figures['longest_wait_s']:.3f} s, "
            f"RSS +{figures['rss_mb']:.1f} MB")
    print(line)
    if args.record:
        append_section("local brain recogniser build", __file__, [line + "."])


if __name__ == "__main__":
    main()
