"""The downlink jitter buffer: Opus packets wait here until the decoder needs them (pure, style habit 7).

It is a FIFO (the session hands packets over in order; the WebSocket path has no sequence numbers) that
decides *when* to release packets, given `now` and how much decoded audio the speaker still has queued:

- BUFFERING: hold everything until `target_seconds` plus one frame of audio is available, then play.
- PLAYING: release packets whenever the speaker holds less than that, so the speaker still has
  `target_seconds` of audio when the next packet is due: a packet may arrive that late without a gap.
- An underrun (the speaker ran dry while more audio is expected) goes back to BUFFERING with a larger
  target, up to `max_target_seconds`; every `stable_seconds` without one shrinks it by a frame again.
- `end()` (tts stop) releases everything at once; when the speaker is dry the stream is over.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

_GROW_FACTOR: Final = 1.5
_STABLE_SECONDS: Final = 10.0


class Phase(StrEnum):
    BUFFERING = "buffering"
    PLAYING = "playing"


@dataclass
class JitterBuffer:
    frame_seconds: float = 0.06
    target_seconds: float = 0.12
    max_target_seconds: float = 0.4
    max_packets: int = 40
    phase: Phase = Phase.BUFFERING
    ended: bool = False
    underruns: int = 0
    dropped: int = 0
    _min_target: float = field(default=0.0, init=False)
    _packets: deque[bytes] = field(default_factory=deque, init=False)
    _last_change: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._min_target = self.target_seconds

    @property
    def buffered_seconds(self) -> float:
        return len(self._packets) * self.frame_seconds

    @property
    def _depth(self) -> float:
        return self.target_seconds + self.frame_seconds - 1e-9

    @property
    def empty(self) -> bool:
        return not self._packets

    def push(self, packet: bytes, now: float) -> bool:
        """Queue a packet; False when full (the newest is dropped, like the firmware's decode queue)."""
        del now
        if len(self._packets) >= self.max_packets:
            self.dropped += 1
            return False
        if self.ended:  # a new stream after the previous one was ended but not fully played
            self.ended = False
        self._packets.append(packet)
        return True

    def release(self, now: float, queued_seconds: float) -> list[bytes]:
        """Packets to decode now, given the seconds of decoded audio the speaker still holds."""
        if self.phase is Phase.BUFFERING:
            if not self._packets or (self.buffered_seconds + queued_seconds < self._depth and not self.ended):
                return []
            self.phase = Phase.PLAYING
            self._last_change = now
        if not self._packets:
            if queued_seconds <= 0:
                if not self.ended:
                    self._underrun(now)
                self.phase = Phase.BUFFERING
            return []
        released: list[bytes] = []
        while self._packets and (self.ended or queued_seconds + len(released) * self.frame_seconds < self._depth):
            released.append(self._packets.popleft())
        self._maybe_shrink(now)
        return released

    def end(self) -> None:
        """No more packets are coming for this stream: play out what is here without waiting."""
        self.ended = True

    def clear(self) -> None:
        """Barge-in: forget every packet and start over (the adapted target is kept)."""
        self._packets.clear()
        self.phase = Phase.BUFFERING
        self.ended = False

    def _underrun(self, now: float) -> None:
        self.underruns += 1
        self.target_seconds = min(self.max_target_seconds, self.target_seconds * _GROW_FACTOR)
        self._last_change = now

    def _maybe_shrink(self, now: float) -> None:
        if self.target_seconds > self._min_target and now - self._last_change >= _STABLE_SECONDS:
            self.target_seconds = max(self._min_target, self.target_seconds - self.frame_seconds)
            self._last_change = now
