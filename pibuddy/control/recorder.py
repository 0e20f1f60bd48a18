"""Turns and actions from the event bus into the history, with each turn's per-stage latency.

A turn opens at WAKE (or at LISTEN_START when a conversation continues without a wake word) and closes at
END; stage times are taken when the event was published (`TurnProgress.at`), so the recorder's own delay
does not count. Actions during a turn belong to it; others are history entries of their own.

A turn whose text the local brain handed to OpenClaw (a `Transcript` during it) is answered by "openclaw": it
stays open past the local brain's END until OpenClaw's reply and END (its `TurnProgress`, brain "openclaw"),
in the order the texts were handed over, and OpenClaw's tool calls meanwhile belong to it. One that gets no
answer within `hand_off_seconds` (the operator session was down) is closed without a reply.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from pibuddy.control.history import ActionRecord, History, TurnRecord
from pibuddy.events import BRAIN_OPENCLAW, ActionTaken, TurnProgress, TurnStage

_LOGGER = logging.getLogger(__name__)
PI: Final = "pi"
_PI_TURN_SOURCES: Final = frozenset({"xiaozhi", "local-brain"})  # whose calls belong to the Pi's own turn


@dataclass(slots=True)
class _OpenTurn:
    started: float
    """Monotonic seconds of the turn's zero."""
    started_wall: float
    brain: str
    microphone: str
    latency_ms: dict[str, float] = field(default_factory=dict)
    heard: list[str] = field(default_factory=list)
    reply: list[str] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    handed_off: bool = False
    """The local brain passed what was heard to OpenClaw, which answers."""
    waiting_since: float = 0.0
    """Monotonic seconds the local brain's part ended (a handed-off turn waits for OpenClaw from then)."""


class TurnRecorder:
    """Feed it `TurnProgress`, `ActionTaken` and hand-offs (`Transcript`); finished turns and lone actions go to
    `history`.

    Args:
        history: where entries go.
        wall_clock: Unix time now (tests pass their own).
        monotonic: the clock `TurnProgress.at` uses.
        hand_off_seconds: how long a turn handed to OpenClaw waits for its answer.
    """

    def __init__(self, history: History, *, wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, hand_off_seconds: float = 120.0) -> None:
        self._history = history
        self._wall = wall_clock
        self._monotonic = monotonic
        self._hand_off_seconds = hand_off_seconds
        self._turns: dict[str, _OpenTurn] = {}  # by microphone: gateway devices talk at the same time
        self._waiting: deque[_OpenTurn] = deque()  # handed to OpenClaw, oldest first (it answers in order)
        self.last_heard = ""
        self.last_reply = ""

    def progress(self, event: TurnProgress) -> None:
        if event.brain == BRAIN_OPENCLAW:
            self._answered(event)
            return
        turn = self._turns.get(event.microphone)
        if event.stage is TurnStage.WAKE or (event.stage is TurnStage.LISTEN_START and turn is None):
            if turn is not None:  # a new wake while the last turn never ended (a barge-in): no END stage
                self._end(turn, event.at, reached=False)
            turn = self._open(event)
        if turn is None:
            return  # a stage without a turn (the recorder started mid-turn): nothing to time it from
        if not turn.handed_off:
            turn.brain = event.brain
        if event.stage is TurnStage.END:
            self._end(turn, event.at)
            return
        self._stage(turn, event)

    def handed_off(self, microphone: str = PI) -> None:
        """The local brain passed what it heard on `microphone` to OpenClaw (a `Transcript`)."""
        turn = self._turns.get(microphone)
        if turn is not None:
            turn.handed_off = True
            turn.brain = BRAIN_OPENCLAW

    def action(self, event: ActionTaken) -> ActionRecord:
        record = ActionRecord(self._wall(), event.source, event.name, dict(event.arguments), event.result,
                              event.is_error, round(event.seconds * 1000, 1))
        turn = self._turns.get(PI) if event.source in _PI_TURN_SOURCES else None
        if event.source == BRAIN_OPENCLAW and self._waiting:
            turn = self._waiting[0]
        if turn is not None:
            turn.actions.append(record)
        else:
            self._history.add(record)
        return record

    def next_expiry(self) -> float | None:
        """Monotonic seconds when the oldest turn waiting for OpenClaw gives up, if one waits."""
        return self._waiting[0].waiting_since + self._hand_off_seconds if self._waiting else None

    def expire(self) -> None:
        """Close the turns that waited for OpenClaw's answer longer than `hand_off_seconds`."""
        now = self._monotonic()
        while self._waiting and now - self._waiting[0].waiting_since >= self._hand_off_seconds:
            turn = self._waiting.popleft()
            _LOGGER.warning("OpenClaw gave no answer to %r within %.0f s", " ".join(turn.heard),
                            self._hand_off_seconds)
            self._close(turn)

    def _answered(self, event: TurnProgress) -> None:
        """OpenClaw's reply or end, for the oldest turn handed to it."""
        if not self._waiting:
            turn = self._turns.get(event.microphone)
            if turn is None or not turn.handed_off:
                return  # nobody handed this over (or it expired): nothing to attach it to
            self._turns.pop(event.microphone)  # answered before the local brain's part ended
            self._waiting.append(turn)
        turn = self._waiting[0]
        if event.stage is TurnStage.END:
            turn.latency_ms[TurnStage.END.value] = round((event.at - turn.started) * 1000, 1)
            self._close(self._waiting.popleft())
        else:
            self._stage(turn, event)

    def _stage(self, turn: _OpenTurn, event: TurnProgress) -> None:
        match event.stage:
            case TurnStage.HEARD:
                turn.heard.append(event.text)
                self.last_heard = event.text
            case TurnStage.REPLY:
                turn.reply.append(event.text)
                self.last_reply = " ".join(turn.reply)
        if event.stage is not TurnStage.REPLY:
            turn.latency_ms.setdefault(event.stage.value, round((event.at - turn.started) * 1000, 1))

    def _open(self, event: TurnProgress) -> _OpenTurn:
        wall = self._wall() - (self._monotonic() - event.at)
        turn = _OpenTurn(event.at, wall, event.brain, event.microphone)
        self._turns[event.microphone] = turn
        return turn

    def _end(self, turn: _OpenTurn, at: float, *, reached: bool = True) -> None:
        """The local part of `turn` is over (`reached`: at its END stage): it closes, or waits for OpenClaw's
        answer."""
        del self._turns[turn.microphone]
        if turn.handed_off:
            turn.waiting_since = at
            self._waiting.append(turn)
            return
        if reached:
            turn.latency_ms.setdefault(TurnStage.END.value, round((at - turn.started) * 1000, 1))
        self._close(turn)

    def _close(self, turn: _OpenTurn) -> None:
        record = TurnRecord(turn.started_wall, turn.microphone, turn.brain, " ".join(turn.heard),
                            " ".join(turn.reply), turn.latency_ms, tuple(turn.actions))
        self._history.add(record)
        _LOGGER.info("turn by %s: heard %r, %s", record.brain, record.heard,
                     ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in record.latency_ms.items()))
