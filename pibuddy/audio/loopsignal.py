"""The one way the PortAudio callback threads reach the event loop (style habit 9)."""

from __future__ import annotations

import asyncio


class LoopSignal:
    """An `asyncio.Event` that a foreign thread may set; the loop side awaits and clears it.

    Data never crosses here: the callback appends to its own bounded deque, then signals. At most one
    wake-up is in flight: a thread that finds one pending skips scheduling another, which is safe because
    the pending one runs after the thread's append, so the consumer still sees that data.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self._pending = False

    def set_threadsafe(self) -> None:
        """From any thread, after publishing data; never blocks. A closed loop (shutdown) makes it a no-op."""
        if self._pending:
            return
        self._pending = True
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:
            self._pending = False

    def _deliver(self) -> None:
        self._pending = False
        self._event.set()

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float | None = None) -> bool:
        """Wait until set (or for at most `seconds`), then clear. True when it was set."""
        try:  # not wait_for: on Python 3.11 it can swallow a cancel that races with the event being set
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True
