"""Turns and actions from the event bus into the history, with each turn's per-stage latency.

A turn opens at WAKE (or at LISTEN_START when a conversation continues without a wake word) and closes at
END; stage times are taken when the event was published (`TurnProgress.at`), so the recorder's own delay
does not count. Actions during a turn belong to it; others are history entries of their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from pibuddy.control.history import ActionRecord, History, TurnRecord
from pibuddy.events import ActionTaken, TurnProgress, TurnStage

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


class TurnRecorder:
    """Feed it `TurnProgress` and `ActionTaken` events; finished turns and lone actions go to `history`.

    Args:
        history: where entries go.
        wall_clock: Unix time now (tests pass their own).
        monotonic: the clock `TurnProgress.at` uses.
    """

    def __init__(self, history: History, *, wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._history = history
        self._wall = wall_clock
        self._monotonic = monotonic
        self._turns: dict[str, _OpenTurn] = {}  # by microphone: gateway devices talk at the same time
        self.last_heard = ""
        self.last_reply = ""

    def progress(self, event: TurnProgress) -> None:
        turn = self._turns.get(event.microphone)
        if event.stage is TurnStage.WAKE or (event.stage is TurnStage.LISTEN_START and turn is None):
            if turn is not None:  # a new wake while the last turn never ended (a barge-in)
                self._close(turn)
            turn = self._open(event)
        if turn is None:
            return  # a stage without a turn (the recorder started mid-turn): nothing to time it from
        match event.stage:
            case TurnStage.HEARD:
                turn.heard.append(event.text)
                self.last_heard = event.text
            case TurnStage.REPLY:
                turn.reply.append(event.text)
                self.last_reply = " ".join(turn.reply)
        if event.stage is not TurnStage.REPLY:
            turn.latency_ms.setdefault(event.stage.value, round((event.at - turn.started) * 1000, 1))
        turn.brain = event.brain
        if event.stage is TurnStage.END:
            self._close(turn)

    def action(self, event: ActionTaken) -> ActionRecord:
        record = ActionRecord(self._wall(), event.source, event.name, dict(event.arguments), event.result,
                              event.is_error, round(event.seconds * 1000, 1))
        turn = self._turns.get(PI) if event.source in _PI_TURN_SOURCES else None
        if turn is not None:
            turn.actions.append(record)
        else:
            self._history.add(record)
        return record

    def _open(self, event: TurnProgress) -> _OpenTurn:
        wall = self._wall() - (self._monotonic() - event.at)
        turn = _OpenTurn(event.at, wall, event.brain, event.microphone)
        self._turns[event.microphone] = turn
        return turn

    def _close(self, turn: _OpenTurn) -> None:
        del self._turns[turn.microphone]
        record = TurnRecord(turn.started_wall, turn.microphone, turn.brain, " ".join(turn.heard),
                            " ".join(turn.reply), turn.latency_ms, tuple(turn.actions))
        self._history.add(record)
        _LOGGER.info("turn by %s: heard %r, %s", record.brain, record.heard,
                     ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in record.latency_ms.items()))
