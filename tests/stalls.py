"""How long other threads had to wait while a block ran (a GIL held by C code starves the microphone's callback)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


@contextlib.contextmanager
def thread_waits() -> Iterator[list[float]]:
    """Yields a list that holds, once the block ends, each gap between a 10 ms ticker thread's wake-ups."""
    gaps: list[float] = []
    running = threading.Event()
    running.set()

    def tick() -> None:
        last = time.monotonic()
        while running.is_set():
            time.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        yield gaps
    finally:
        running.clear()
        ticker.join()
