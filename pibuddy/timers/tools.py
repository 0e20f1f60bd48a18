"""Timers as tools: for the LLM (through the xiaozhi server), MCP clients and the local brain."""

from __future__ import annotations

from typing import Any

from pibuddy.errors import InvalidArguments
from pibuddy.timers.book import TimerError, describe, title
from pibuddy.timers.service import TimerService
from pibuddy.tools.arguments import boolean, integer, string
from pibuddy.tools.registry import Tool, tool

_NAME = string(description="What the user called the timer (pasta, eggs); empty for an unnamed timer.", default="")


def timer_tools(timers: TimerService) -> list[Tool]:
    @tool("timer_start", "Start a countdown timer on PiBuddy. When it ends PiBuddy rings and says its name until "
          "someone says the wake word or presses the button. Give the duration as hours, minutes and seconds.",
          params={"hours": integer(0, 24, default=0), "minutes": integer(0, 1440, default=0),
                  "seconds": integer(0, 86400, default=0), "name": _NAME})
    async def start(arguments: dict[str, Any]) -> str:
        seconds = arguments["hours"] * 3600 + arguments["minutes"] * 60 + arguments["seconds"]
        try:
            timer = timers.start_timer(seconds, arguments["name"])
        except TimerError as exc:
            raise InvalidArguments(str(exc)) from None
        return f"{title(timer).capitalize()} is set for {describe(timer.seconds)}."

    @tool("timer_cancel", "Cancel a timer by its name (empty: the one ringing, or the only one), or all timers.",
          params={"name": _NAME, "all": boolean(default=False, description="Cancel every timer.")})
    async def cancel(arguments: dict[str, Any]) -> str:
        try:
            gone = timers.cancel_timer(arguments["name"] or None, every=arguments["all"])
        except TimerError as exc:
            raise InvalidArguments(str(exc)) from None
        if not gone:
            return "No timer was running."
        return f"Cancelled {' and '.join(title(t) for t in gone)}."

    @tool("timer_status", "How much time is left on the timers (or on the named one).", params={"name": _NAME})
    async def status(arguments: dict[str, Any]) -> str:
        running = timers.timers()
        if arguments["name"]:
            try:
                wanted = timers.book.find(arguments["name"]).id
            except TimerError as exc:
                return str(exc)
            running = [t for t in running if t.id == wanted]
        if not running:
            return "No timer is running."
        return " ".join(f"{'The ' + t.name + ' timer' if t.name else 'The timer'} "
                        + ("is ringing." if t.ringing else f"has {describe(t.remaining)} left.") for t in running)

    return [start, cancel, status]
