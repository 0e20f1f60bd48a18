"""The history of turns and actions: bounded in memory, appended to history.jsonl in the state dir, capped.

One JSON object per line. The file is rewritten with the newest `capacity` entries once it holds twice as
many, so it stays small on an SD card without a rewrite per entry; texts are cut to `_MAX_TEXT` characters
before they are stored. A line that cannot be read (a torn write at power loss) is skipped with one warning.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pibuddy.statedir import StateDir, StatePermissionError

_LOGGER = logging.getLogger(__name__)
HISTORY_FILE: Final = "history.jsonl"
_MAX_TEXT: Final = 500


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 1] + "…"


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A tool call or household command (volume, mute, announce) and its outcome."""

    at: float
    """Unix time it finished."""
    source: str
    name: str
    arguments: dict[str, Any]
    result: str
    is_error: bool
    ms: float
    """How long it took, in milliseconds."""
    kind: str = field(default="action", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "result", _cut(self.result))


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One conversation turn: from the wake word (or the next listen in a continued conversation) to the
    end of the reply."""

    at: float
    """Unix time the turn started."""
    microphone: str
    """"pi", or the gateway device's MAC."""
    brain: str
    """Who answered: "xiaozhi", "local" or "openclaw"."""
    heard: str
    reply: str
    latency_ms: dict[str, float]
    """Milliseconds from the turn's start to each stage reached (`events.TurnStage` values)."""
    actions: tuple[ActionRecord, ...] = ()
    kind: str = field(default="turn", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "heard", _cut(self.heard))
        object.__setattr__(self, "reply", _cut(self.reply))


HistoryEntry = TurnRecord | ActionRecord


def entry_to_json(entry: HistoryEntry) -> dict[str, Any]:
    return dataclasses.asdict(entry)


def entry_from_json(data: Any) -> HistoryEntry:
    """An entry from its JSON form; raises ValueError (or KeyError/TypeError) for anything else."""
    if not isinstance(data, dict):
        raise TypeError("a history entry is a JSON object")
    body = {k: v for k, v in data.items() if k != "kind"}
    match data.get("kind"):
        case "action":
            return ActionRecord(**body)
        case "turn":
            body["actions"] = tuple(ActionRecord(**{k: v for k, v in a.items() if k != "kind"})
                                    for a in body.get("actions", ()))
            return TurnRecord(**body)
    raise ValueError(f"unknown history entry kind {data.get('kind')!r}")


class History:
    """The newest `capacity` entries, oldest first; persisted when a state dir is given.

    Args:
        state_dir: where history.jsonl lives; None keeps the history in memory only.
        capacity: entries kept.
    """

    def __init__(self, state_dir: StateDir | None, *, capacity: int = 200) -> None:
        self._state_dir = state_dir
        self._capacity = capacity
        self._entries: deque[HistoryEntry] = deque(maxlen=capacity)
        self._lines_in_file = 0
        self._torn = False
        self._unsaved = False
        """A save failed and was said; the next failures are not, until one works."""
        self._load()

    def add(self, entry: HistoryEntry) -> None:
        self._entries.append(entry)
        self._append(entry)

    def recent(self, count: int | None = None) -> list[HistoryEntry]:
        """The newest `count` entries (all when None), oldest first."""
        entries = list(self._entries)
        return entries if count is None else entries[max(len(entries) - count, 0):]

    @property
    def path(self) -> Path | None:
        return self._state_dir.path / HISTORY_FILE if self._state_dir is not None else None

    def _load(self) -> None:
        if self._state_dir is None:
            return
        try:
            text = self._state_dir.read_text(HISTORY_FILE)
        except OSError as exc:  # StatePermissionError's text says how to fix the owner
            _LOGGER.warning("cannot read the history (%s); starting a new one", exc)
            return
        if text is None:
            return
        lines = text.splitlines()
        bad = 0
        for line in lines:
            try:
                self._entries.append(entry_from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                bad += 1
        if bad:
            _LOGGER.warning("history: skipped %d unreadable line(s) in %s", bad, self.path)
        self._lines_in_file = len(lines)
        self._torn = bool(text) and not text.endswith("\n")  # the next line must not be glued to a torn one

    def _append(self, entry: HistoryEntry) -> None:
        if self._state_dir is None:
            return
        try:
            self._save(self._state_dir, entry)
        except OSError as exc:
            if not self._unsaved:  # said once, not once per turn, until a save works again
                _LOGGER.warning("cannot save the history (%s): it is kept in memory only", exc)
            self._unsaved = True
        else:
            self._unsaved = False

    def _save(self, state_dir: StateDir, entry: HistoryEntry) -> None:
        if self._lines_in_file + 1 >= 2 * self._capacity:
            state_dir.write_text(HISTORY_FILE, "".join(
                json.dumps(entry_to_json(e), ensure_ascii=False, separators=(",", ":")) + "\n" for e in self._entries))
            self._lines_in_file = len(self._entries)
            return
        path = state_dir.ensure() / HISTORY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # what was said is private
        except PermissionError:
            raise StatePermissionError(path, state_dir.path, "write") from None
        line = json.dumps(entry_to_json(entry), ensure_ascii=False, separators=(",", ":"))
        with os.fdopen(fd, "a", encoding="utf-8") as file:
            file.write(("\n" if self._torn else "") + line + "\n")
        self._torn = False
        self._lines_in_file += 1
