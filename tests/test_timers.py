"""Timers: the bookkeeping, the tools, surviving a restart, and ringing until a wake word or a button."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pibuddy.brain import LocalBrain, Outcome
from pibuddy.brain.vocabulary import Vocabulary
from pibuddy.events import Command, CommandName, EventBus, Say, WakeDetected
from pibuddy.statedir import StateDir
from pibuddy.timers.book import TimerBook, TimerError
from pibuddy.timers.service import TIMERS_FILE, TimerService
from pibuddy.timers.tools import timer_tools
from pibuddy.tools.registry import ToolRegistry
from tests.audio.test_control_run import cli, pibuddy_run
from tests.polling import eventually


def test_the_book_finds_by_name_rings_each_timer_once_and_refuses_nonsense() -> None:
    book = TimerBook()
    pasta = book.start(480, " Pasta ", now=100.0)
    eggs = book.start(300, "eggs", now=100.0)
    assert book.find("pasta") == pasta
    assert book.find(None) == eggs, "unnamed: the next to end"
    assert book.due(399.0) == []
    assert [t.name for t in book.due(400.0)] == ["eggs"]
    assert book.due(401.0) == [], "a ringing timer is reported once"
    assert book.find(None).name == "eggs", "unnamed while one rings: the ringing one"
    with pytest.raises(TimerError, match="no soup timer"):
        book.cancel("soup")
    with pytest.raises(TimerError, match="1 second to 24 hours"):
        book.start(0, "", now=0.0)
    assert [t.name for t in book.silence()] == ["eggs"]
    assert [t.name for t in book.cancel(every=True)] == ["pasta"]


async def test_timer_tools_answer_in_sentences_and_timers_survive_a_restart(tmp_path: Path) -> None:
    now = [1000.0]
    state = StateDir(tmp_path)
    service = TimerService(EventBus(), state, clock=lambda: now[0])
    registry = ToolRegistry()
    for timer_tool in timer_tools(service):
        registry.register(timer_tool)
    started = await registry.call("timer_start", {"minutes": 8, "name": "pasta"})
    assert started.text == "The pasta timer is set for 8 minutes."
    assert (await registry.call("timer_start", {})).is_error, "no duration"
    now[0] += 90
    assert (await registry.call("timer_status", {})).text == "The pasta timer has 6 minutes and 30 seconds left."
    saved = json.loads((tmp_path / TIMERS_FILE).read_text())
    assert saved["timers"][0]["name"] == "pasta"
    reborn = TimerService(EventBus(), state, clock=lambda: now[0])
    await reborn.start()
    assert [(t.name, t.remaining) for t in reborn.timers()] == [("pasta", 390)]
    now[0] += 2 * 3600
    stale = TimerService(EventBus(), state, clock=lambda: now[0])
    await stale.start()
    assert stale.timers() == [], "a timer that ended long before the restart is dropped, not rung"
    cancel = await registry.call("timer_cancel", {"name": "soup"})
    assert (cancel.is_error, cancel.text) == (True, "There is no soup timer (running: pasta).")


@pytest.mark.parametrize("stop", [WakeDetected("okay nabu"), Command(CommandName.LISTEN_START)])
async def test_an_ended_timer_rings_with_the_chime_until_the_wake_word_or_the_button(stop: object) -> None:
    bus = EventBus()
    now = [0.0]
    service = TimerService(bus, None, clock=lambda: now[0])
    service.start_timer(1, "eggs")
    with bus.subscribe() as events:
        serving = asyncio.create_task(service.serve())
        try:
            now[0] = 1.0
            said = await asyncio.wait_for(_next_say(events), 3)
            assert said == Say("The eggs timer is done.", chime=True)
            assert service.timers()[0].ringing
            bus.publish(stop)  # type: ignore[arg-type]
            await eventually(lambda: service.timers() == [])
        finally:
            serving.cancel()


async def _next_say(events: object) -> Say:
    while not isinstance(event := await events.get(), Say):  # type: ignore[attr-defined]
        pass
    return event


async def test_the_issues_timer_phrasings_work_offline_through_the_local_brain(tmp_path: Path) -> None:
    """What `pibuddy say` runs: text -> hassil (the package's templates plus PiBuddy's) -> planner -> timer tools.
    "set a pasta timer for 8 minutes" and a bare "how much time is left" had no template."""
    now = [1000.0]
    service = TimerService(EventBus(), StateDir(tmp_path), clock=lambda: now[0])
    registry = ToolRegistry()
    for timer_tool in timer_tools(service):
        registry.register(timer_tool)
    brain = LocalBrain(registry, [], language="en")
    turns = [
        ("set a timer for five minutes", Outcome.DONE, "Timer set for five minutes",
         ("timer_start", {"minutes": 5, "name": ""}), [("", 300)]),
        ("set a pasta timer for 8 minutes", Outcome.DONE, "Timer set for 8 minutes named pasta",
         ("timer_start", {"minutes": 8, "name": "pasta"}), [("", 270), ("pasta", 480)]),
        ("how much time is left on the pasta timer", Outcome.ANSWERED,
         "The pasta timer has 7 minutes and 30 seconds left.", ("timer_status", {"name": "pasta"}),
         [("", 240), ("pasta", 450)]),
        ("how much time is left", Outcome.ANSWERED,
         "The timer has 3 minutes and 30 seconds left. The pasta timer has 7 minutes left.",
         ("timer_status", {"name": ""}), [("", 210), ("pasta", 420)]),
        ("cancel the pasta timer", Outcome.DONE, "Timer cancelled", ("timer_cancel", {"name": "pasta", "all": False}),
         [("", 180)]),
        ("cancel the timer", Outcome.DONE, "Timer cancelled", ("timer_cancel", {"name": "", "all": False}), []),
    ]
    for text, outcome, said, call, running in turns:
        reply = await brain.handle(text, Vocabulary())
        assert (reply.outcome, reply.text) == (outcome, said), text
        assert [(r.call.tool, dict(r.call.arguments)) for r in reply.calls] == [call], text
        assert [(t.name, t.remaining) for t in service.timers()] == running, text
        now[0] += 30


@pytest.mark.peer
async def test_pibuddy_say_sets_a_named_timer_in_the_running_service(tmp_path: Path,
                                                                   pibuddy_env: dict[str, str]) -> None:
    """Typed text takes a timer's name (the README's answer for the spoken grammar that cannot): `pibuddy say` is a
    process of its own, so its timer must be the running service's, which rings it (it answered 'Unknown tool:
    timer_start': its own registry has no timers)."""
    config = tmp_path / "config.yaml"
    config.write_text("audio: {enabled: false}\nupstream: {enabled: false}\ngateway: {enabled: false}\n"
                      f"control: {{socket: '{tmp_path / 'control.sock'}'}}\n")
    log: list[str] = []
    async with pibuddy_run(config, pibuddy_env, log):
        said = await cli(config, pibuddy_env, "say", "set a pasta timer for 8 minutes")
        status = json.loads((await cli(config, pibuddy_env, "status", "--json")).stdout)
        history = [json.loads(line) for line in (await cli(config, pibuddy_env, "history", "--json")).stdout
                   .splitlines()]
    assert said.returncode == 0, said.stdout + said.stderr
    assert "intent:  HassStartTimer (done)" in said.stdout
    assert "called:  timer_start" in said.stdout
    assert [(t["name"], t["seconds"]) for t in status["timers"]] == [("pasta", 480)]
    assert [(e["source"], e["name"], e["is_error"]) for e in history] == [("cli", "timer_start", False)]
