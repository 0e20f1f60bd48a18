"""release_free_heap: the freed middle of a fragmented C heap goes back to the OS."""

from __future__ import annotations

import subprocess
import sys

_PROGRAM = """
from pibuddy.heap import release_free_heap

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

blocks = [bytes(2000) for _ in range(40_000)]  # ~80 MB from malloc (above pymalloc's 512-byte limit)
kept = blocks[::100]  # pinned all along the heap, so glibc cannot shrink it from its top
del blocks
before = rss_mb()
assert release_free_heap()
print(before - rss_mb())
"""


def test_freed_heap_pages_are_returned() -> None:
    released = float(subprocess.run([sys.executable, "-c", _PROGRAM], check=True, capture_output=True, text=True,
                                    timeout=60).stdout)
    assert released > 40, f"only {released:.1f} MB returned"
