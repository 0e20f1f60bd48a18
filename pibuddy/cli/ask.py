"""What the control commands (status, volume, mute, announce, history) share: asking the running service,
and printing turns and actions as one line each."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any, Final

from pibuddy.cli.common import load_or_exit

EXIT_NOT_RUNNING: Final = 3
EXIT_REFUSED: Final = 1
_STAGES: Final = (("hello", "hello"), ("listen_start", "listen"), ("heard", "heard"),
                  ("first_audio", "first audio"), ("end", "end"))


class Failed(Exception):
    """The request did not go through; `code` is the exit status, the line is already printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def ask(args: argparse.Namespace, op: str, **params: Any) -> Any:
    """The running service's answer to `op`, or Failed after printing one line saying why."""
    config = load_or_exit(args)
    from pibuddy.control.client import ControlRefused, NotRunning, request  # noqa: PLC0415
    from pibuddy.control.paths import client_socket_paths  # noqa: PLC0415

    try:
        return request(client_socket_paths(config), op, **params)
    except NotRunning as exc:
        print(f"pibuddy: {exc}", file=sys.stderr)
        raise Failed(EXIT_NOT_RUNNING) from None
    except ControlRefused as exc:
        print(f"pibuddy: {exc}", file=sys.stderr)
        raise Failed(EXIT_REFUSED) from None


def entry_line(entry: dict[str, Any]) -> str:
    """One history entry on one line: when, who, what was heard and said, and the latencies."""
    when = dt.datetime.fromtimestamp(entry.get("at", 0)).strftime("%m-%d %H:%M:%S")
    if entry.get("kind") == "turn":
        latency = entry.get("latency_ms", {})
        stages = ", ".join(f"{label} {latency[key]:.0f} ms" for key, label in _STAGES if key in latency)
        line = (f"{when}  turn  {entry.get('microphone')} -> {entry.get('brain')}: heard {entry.get('heard')!r}, "
                f"said {entry.get('reply')!r} ({stages or 'no stages'})")
        calls = "".join(f"\n                  {action_line(a)}" for a in entry.get("actions", []))
        return line + calls
    return f"{when}  {action_line(entry)}"


def action_line(action: dict[str, Any]) -> str:
    outcome = "failed: " if action.get("is_error") else ""
    return (f"{action.get('source')}: {action.get('name')} {action.get('arguments')} -> {outcome}"
            f"{action.get('result')} ({action.get('ms', 0):.0f} ms)")
