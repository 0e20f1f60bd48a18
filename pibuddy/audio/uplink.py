"""One turn of microphone audio going up: Opus packets in a bounded queue, read with `async for`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Final

from pibuddy.audio.contract import UPLINK_CLOSED
from pibuddy.audio.opus import OpusEncoder
from pibuddy.audio.vad.segmenter import EndReason
from pibuddy.drops import DropCounter

_LOGGER = logging.getLogger(__name__)
STOPPED: Final = UPLINK_CLOSED


class UplinkStream:
    """Async iterator of 16 kHz 60 ms Opus packets for one turn.

    Iteration ends after `stop()` or, when the pipeline segments utterances, at the end of the user's
    utterance; `end_reason` then says why (an `EndReason`, or "stopped"). Packets queue up to
    `max_packets` and the oldest are dropped beyond that (the firmware's send queue: 40 frames).
    """

    def __init__(self, encoder: OpusEncoder, *, max_packets: int, end_on_silence: bool) -> None:
        self.end_on_silence = end_on_silence
        self.end_reason: EndReason | str | None = None
        self._encoder = encoder
        self._pending = bytearray()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(max_packets + 1)  # +1: room for the end marker
        self._max_packets = max_packets
        self._drops = DropCounter("uplink audio packets (sender too slow)", _LOGGER)

    @property
    def finished(self) -> bool:
        return self.end_reason is not None

    def feed(self, pcm: bytes) -> None:
        """Add capture PCM; every full 60 ms frame is encoded and queued."""
        if self.finished:
            return
        self._pending += pcm
        frame_bytes = self._encoder.frame_samples * 2
        while len(self._pending) >= frame_bytes:
            packet = self._encoder.encode(bytes(self._pending[:frame_bytes]))
            del self._pending[:frame_bytes]
            if self._queue.qsize() >= self._max_packets:
                self._queue.get_nowait()  # drop the oldest: stale speech is worth less than current
                self._drops.count()
            self._queue.put_nowait(packet)

    def finish(self, reason: EndReason | str) -> None:
        """End the stream; packets already queued are still delivered first."""
        if self.finished:
            return
        self.end_reason = reason
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def stop(self) -> None:
        self.finish(STOPPED)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while (packet := await self._queue.get()) is not None:
            yield packet

