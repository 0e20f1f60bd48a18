"""The control layer in process: the history (bounded, persisted, capped, torn lines skipped), the turn
recorder's latencies, `Control`'s commands and snapshots, and the control socket's answers to bad clients."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from pibuddy.config import load_config
from pibuddy.control import ActionRecord, AssistantState, Control, ControlError, GatewayDevice, History, TurnRecord
from pibuddy.control.history import HISTORY_FILE
from pibuddy.control.recorder import TurnRecorder
from pibuddy.control.server import ControlService, ControlSocketInUse
from pibuddy.errors import ConfigError
from pibuddy.events import (
    ActionTaken,
    Command,
    CommandName,
    DeviceState,
    EventBus,
    Muted,
    RestartRequested,
    Say,
    ServicesHealth,
    TurnProgress,
    TurnStage,
    UpstreamLink,
    VolumeChanged,
)
from pibuddy.statedir import StateDir
from pibuddy.supervisor import Health, Service, Supervisor
from pibuddy.timers.service import TimerService
from tests.ha_mqtt_helpers import DeviceList
from tests.polling import eventually


def _action(n: int) -> ActionRecord:
    return ActionRecord(1000.0 + n, "cli", "set_volume", {"volume": n}, "ok", False, 1.0)


def test_history_keeps_the_newest_entries_across_a_restart_and_caps_its_file(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    history = History(state, capacity=10)
    for n in range(35):
        history.add(_action(n))
    assert [e.arguments["volume"] for e in history.recent(3)] == [32, 33, 34]
    lines = (tmp_path / "state" / HISTORY_FILE).read_text().splitlines()
    assert len(lines) < 20, "the file is rewritten with the newest entries once it holds twice the capacity"
    assert (tmp_path / "state" / HISTORY_FILE).stat().st_mode & 0o777 == 0o600
    reloaded = History(state, capacity=10)
    assert reloaded.recent() == history.recent()


def test_a_torn_history_line_is_skipped_and_the_rest_is_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    state = StateDir(tmp_path)
    History(state, capacity=10).add(_action(1))
    with (tmp_path / HISTORY_FILE).open("a") as file:
        file.write('[1, 2]\n{"kind": "turn", "at": 1')  # garbage, and a power cut mid-write
    History(state, capacity=10).add(_action(2))
    reloaded = History(state, capacity=10)
    assert [e.arguments["volume"] for e in reloaded.recent()] == [1, 2]
    assert "skipped 2 unreadable line(s)" in caplog.text


def test_recorder_times_each_stage_from_the_wake_and_keeps_the_turns_tool_calls() -> None:
    history = History(None)
    recorder = TurnRecorder(history, wall_clock=lambda: 5000.0, monotonic=lambda: 100.0)
    for stage, at, text in [(TurnStage.WAKE, 10.0, ""), (TurnStage.HELLO, 10.12, ""),
                            (TurnStage.LISTEN_START, 10.13, ""), (TurnStage.HEARD, 12.0, "lights on"),
                            (TurnStage.REPLY, 12.5, "Done."), (TurnStage.FIRST_AUDIO, 12.6, ""),
                            (TurnStage.REPLY, 13.0, "Anything else?")]:
        recorder.progress(TurnProgress(stage, "xiaozhi", text, at=at))
    recorder.action(ActionTaken("xiaozhi", "ha_control_device", {"target": "lights"}, "on", False, 0.2))
    recorder.action(ActionTaken("mcp-http", "gpio_switch", {"name": "fan"}, "off", False, 0.01))
    recorder.progress(TurnProgress(TurnStage.END, "xiaozhi", at=14.0))
    lone, turn = history.recent()
    assert isinstance(lone, ActionRecord)
    assert lone.source == "mcp-http", "another surface's call is its own entry"
    assert isinstance(turn, TurnRecord)
    assert turn.latency_ms == {"wake": 0.0, "hello": 120.0, "listen_start": 130.0, "heard": 2000.0,
                               "first_audio": 2600.0, "end": 4000.0}
    assert (turn.heard, turn.reply) == ("lights on", "Done. Anything else?")
    assert [a.name for a in turn.actions] == ["ha_control_device"]
    assert turn.at == 5000.0 - (100.0 - 10.0), "the wall time of the wake, not of the end"
    assert (recorder.last_heard, recorder.last_reply) == ("lights on", "Done. Anything else?")


def test_a_turn_handed_to_openclaw_is_openclaws_with_its_answer_and_calls_and_one_unanswered_expires(
        caplog: pytest.LogCaptureFixture) -> None:
    history = History(None)
    now = [100.0]
    recorder = TurnRecorder(history, wall_clock=lambda: 5000.0, monotonic=lambda: now[0], hand_off_seconds=60)

    def local_turn(start: float, heard: str) -> None:
        """What the local brain publishes for text it hands over: no reply of its own, its END at once."""
        for stage, at, text in [(TurnStage.WAKE, start, ""), (TurnStage.LISTEN_START, start + 0.1, ""),
                                (TurnStage.HEARD, start + 2.0, heard)]:
            recorder.progress(TurnProgress(stage, "local", text, at=at))
        recorder.handed_off()  # the Transcript
        recorder.progress(TurnProgress(TurnStage.END, "local", at=start + 2.2))

    local_turn(10.0, "what is the capital of france")
    local_turn(20.0, "tell me a joke")
    assert history.recent() == [], "both wait for OpenClaw"
    assert recorder.next_expiry() == 12.2 + 60
    recorder.action(ActionTaken("openclaw", "timer_status", {}, "No timer is running.", False, 0.01))
    recorder.progress(TurnProgress(TurnStage.REPLY, "openclaw", "Paris.", at=15.0))
    recorder.progress(TurnProgress(TurnStage.END, "openclaw", at=15.0))
    [answered] = history.recent()
    assert isinstance(answered, TurnRecord)
    assert (answered.brain, answered.heard, answered.reply) == ("openclaw", "what is the capital of france", "Paris.")
    assert answered.latency_ms == {"wake": 0.0, "listen_start": 100.0, "heard": 2000.0, "end": 5000.0}
    assert [a.name for a in answered.actions] == ["timer_status"], "OpenClaw's tool call while it answered"
    assert recorder.last_reply == "Paris."

    now[0] = 22.2 + 59.0
    recorder.expire()
    assert len(history.recent()) == 1
    now[0] = 22.2 + 60.0
    with caplog.at_level(logging.WARNING, logger="pibuddy.control"):
        recorder.expire()
    unanswered = history.recent()[-1]
    assert isinstance(unanswered, TurnRecord)
    assert (unanswered.brain, unanswered.heard, unanswered.reply) == ("openclaw", "tell me a joke", "")
    assert "end" not in unanswered.latency_ms
    assert "OpenClaw gave no answer to 'tell me a joke' within 60 s" in caplog.text
    assert recorder.next_expiry() is None
    recorder.progress(TurnProgress(TurnStage.END, "openclaw", at=90.0))  # too late: attached to nothing
    assert len(history.recent()) == 2


class _Mixer:
    def __init__(self) -> None:
        self.percent = 50

    async def get_volume(self) -> int:
        return self.percent

    async def set_volume(self, percent: int) -> None:
        self.percent = percent


async def _mute_owner(bus: EventBus) -> None:
    """What the audio pipeline does with MUTE/UNMUTE commands."""
    with bus.subscribe() as events:
        async for event in events:
            if isinstance(event, Command) and event.name in (CommandName.MUTE, CommandName.UNMUTE):
                bus.publish(Muted(event.name == CommandName.MUTE))


async def test_control_commands_act_through_their_owners_and_are_recorded_with_their_source() -> None:
    bus = EventBus()
    bus.publish(Muted(False))
    mixer = _Mixer()
    control = Control(bus, history=History(None), volume=mixer)
    owner = asyncio.create_task(_mute_owner(bus))
    recording = asyncio.create_task(control.serve())
    await asyncio.sleep(0)  # both subscribe
    with bus.subscribe() as events:
        try:
            assert await control.set_volume(30, source="web") == 30
            assert mixer.percent == 30
            assert await control.set_muted(True, source="cli") is True
            assert control.snapshot().state is AssistantState.MUTED
            assert await control.announce("  dinner   is ready ", source="cli") == ["pi"]
            with pytest.raises(ControlError, match="0 to 100"):
                await control.set_volume(101, source="cli")
            with pytest.raises(ControlError, match="gateway is not running"):
                await control.announce("hi", device="all", source="cli")
            with pytest.raises(ControlError, match="no service 'audio'"):
                await control.restart("audio", source="web")
            await asyncio.sleep(0.01)
        finally:
            owner.cancel()
            recording.cancel()
        seen = [events.queue.get_nowait() for _ in range(events.queue.qsize())]
    assert VolumeChanged(30) in seen
    assert Say("dinner is ready", chime=True) in seen
    assert not any(isinstance(e, RestartRequested) for e in seen)
    assert [(a.source, a.name, a.is_error) for a in control.history() if isinstance(a, ActionRecord)] == [
        ("web", "set_volume", False), ("cli", "mute", False), ("cli", "announce", False),
        ("cli", "announce", True)]


async def test_changes_come_with_events_only_never_from_a_running_timers_countdown() -> None:
    """Home Assistant's states follow `changes()`. A timer set, a device joining the gateway, a turn's heard text
    each give a snapshot at once; a running timer's seconds left give none (its end is published; the old 2 s
    comparison re-sent a snapshot every 2 s while a timer ran)."""
    bus = EventBus()
    timers = TimerService(bus, None)
    gateway = DeviceList(bus)
    control = Control(bus, history=History(None), gateway=gateway, timers=timers)
    recording = asyncio.create_task(control.serve())
    changes = aiter(control.changes())
    try:
        first = await anext(changes)
        assert (first.timers, first.gateway_devices, first.last_heard) == ((), (), "")
        timers.start_timer(300, "pasta")
        assert [t.name for t in (await asyncio.wait_for(anext(changes), 1)).timers] == ["pasta"]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(changes), 2.5)  # the seconds left went down; nothing else changed
        changes = aiter(control.changes())  # a cancelled anext() ends its generator: a new reader
        assert (await anext(changes)).timers[0].remaining < 300
        gateway.connect(GatewayDevice("GID_x@@@aa_bb_cc_dd_ee_03@@@u", "aa:bb:cc:dd:ee:03", "127.0.0.3", False))
        assert len((await asyncio.wait_for(anext(changes), 1)).gateway_devices) == 1
        bus.publish(TurnProgress(TurnStage.WAKE, "local"))
        bus.publish(TurnProgress(TurnStage.HEARD, "local", "set a pasta timer"))
        while (snapshot := await asyncio.wait_for(anext(changes), 1)).last_heard != "set a pasta timer":
            pass
        assert snapshot.last_heard == "set a pasta timer", "once the recorder has it"
    finally:
        recording.cancel()


def test_snapshot_says_offline_when_the_server_link_is_down_and_muted_above_all() -> None:
    bus = EventBus()
    control = Control(bus, history=History(None))
    bus.set_state(DeviceState.IDLE)
    assert control.snapshot().state is AssistantState.IDLE
    bus.publish(UpstreamLink(False, "mqtt", "server down"))
    assert control.snapshot().state is AssistantState.OFFLINE
    bus.set_state(DeviceState.LISTENING)
    assert control.snapshot().state is AssistantState.LISTENING, "the local brain may still listen"
    bus.publish(Muted(True))
    assert control.snapshot().state is AssistantState.MUTED


async def _ask(path: Path, raw: bytes) -> dict[str, object]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return json.loads(answer)


async def test_the_control_socket_answers_bad_clients_with_errors_and_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    service = ControlService(Control(EventBus(), history=History(None)), path)
    await service.start()
    try:
        assert path.stat().st_mode & 0o777 == 0o660
        assert (await _ask(path, b"not json\n"))["ok"] is False
        unknown = await _ask(path, b'{"op": "reboot"}\n')
        assert unknown == {"ok": False, "error": "unknown op 'reboot'; known: status, volume, mute, announce, "
                                                 "history, restart, list_tools, call_tool"}
        assert (await _ask(path, b'{"op": "history", "count": "ten"}\n'))["error"] == "count must be a whole number"
        huge = await _ask(path, b'{"op": "status", "x": "' + b"a" * 100_000 + b'"}\n')
        assert huge["ok"] is False
        assert (await _ask(path, b'{"op": "volume"}\n'))["error"] == "PiBuddy has no volume control here"
        assert (await _ask(path, b'{"op": "history"}\n')) == {"ok": True, "result": {"entries": []}}
        with pytest.raises(ControlSocketInUse):
            await ControlService(Control(EventBus(), history=History(None)), path).start()
    finally:
        await service.stop()
    assert not path.exists()
    stale = ControlService(Control(EventBus(), history=History(None)), path)
    path.touch()  # left behind by a PiBuddy that died: nobody answers on it
    await stale.start()
    await stale.stop()


class _Counting(Service):
    name = "counting"

    def __init__(self) -> None:
        self.starts = 0
        self.stops = 0

    async def start(self) -> None:
        self.starts += 1

    async def stop(self) -> None:
        self.stops += 1


async def test_a_restart_request_on_the_bus_restarts_that_service_at_once_and_is_no_crash(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    service = _Counting()
    supervisor = Supervisor([service], bus=bus)  # the default backoff: a crash would wait a second or more
    with caplog.at_level(logging.INFO, logger="pibuddy"):
        task = asyncio.create_task(supervisor.run())
        try:
            await eventually(lambda: isinstance(health := bus.latest(ServicesHealth), ServicesHealth)
                             and health.services[0].ok)
            await Control(bus, history=History(None)).restart("counting", source="web")
            await eventually(lambda: service.starts == 2 and supervisor.health()["counting"] == Health(True, "running"))
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 5)
    assert (service.starts, service.stops) == (2, 2)
    assert "service counting restarting on request" in caplog.text
    assert "crashed" not in caplog.text


def test_the_page_off_loopback_needs_a_token(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("web: {enabled: true, host: 0.0.0.0}\n")
    with pytest.raises(ConfigError) as failed:
        load_config(config, environ={})
    assert failed.value.problems == ["web.token: required when host is not a loopback address (got None)"]
    assert load_config(config, environ={"PIBUDDY_WEB_TOKEN": "s3cret"}).web.token is not None
