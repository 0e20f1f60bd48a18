"""`Control`: the one service-side object that reads and steers the running buddy.

The CLI (over the control socket), the web page and Home Assistant's MQTT entities all go through it:

    control.snapshot()                        # Snapshot: state, last heard/reply, brain, link, volume, mute ...
    async for snapshot in control.changes():  # a new Snapshot whenever any of that changes
    await control.set_volume(40, source="web")
    await control.set_muted(True, source="cli")
    await control.announce("Dinner is ready", device="all", source="cli")
    control.history(20)                       # the newest turns and actions
    await control.call_tool("timer_start", {"minutes": 8}, source="mcp-stdio")
    control.restart("upstream", source="web")

Every command is published on the event bus as an `ActionTaken` (so it lands in the history with its source)
and acts through the bus or the component that owns the thing: the audio pipeline owns the mute (it gets a
`Command`), the mixer the volume (`VolumeChanged` follows), the supervisor restarts (`RestartRequested`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from pibuddy.control.history import History, HistoryEntry
from pibuddy.control.model import AssistantState, ControlError, GatewayDevice, Snapshot, TimerStatus, UpstreamStatus
from pibuddy.control.recorder import TurnRecorder
from pibuddy.errors import PiBuddyError
from pibuddy.events import (
    ActionTaken,
    ActiveBrain,
    Command,
    CommandName,
    DeviceState,
    Event,
    EventBus,
    GatewayDevicesChanged,
    Muted,
    RestartRequested,
    Say,
    ServicesHealth,
    StateChanged,
    Subscription,
    TimersChanged,
    Transcript,
    TurnProgress,
    UpstreamLink,
    VolumeChanged,
)

_LOGGER = logging.getLogger(__name__)
_MUTE_CONFIRM_SECONDS: Final = 2.0
_MAX_ANNOUNCEMENT: Final = 500
_VOLUME_POLL_SECONDS: Final = 10.0
ALL_DEVICES: Final = "all"
_ACTIVE: Final = {DeviceState.LISTENING: AssistantState.LISTENING, DeviceState.THINKING: AssistantState.THINKING,
                  DeviceState.SPEAKING: AssistantState.SPEAKING}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Recorded(Event):
    """The recorder took a turn's stage: the last heard or said may have changed. Offered to `changes()` only,
    after the recorder has it (a `TurnProgress` seen by `changes()` itself could come before)."""


_RECORDED: Final = _Recorded()
_CHANGES: Final = (StateChanged, Muted, UpstreamLink, ActiveBrain, VolumeChanged, _Recorded, TimersChanged,
                   GatewayDevicesChanged, ServicesHealth)
"""What a snapshot is made of changes only with one of these: `changes()` wakes for nothing else."""


class VolumeControl(Protocol):
    """The speaker's mixer (`tools.volume.SystemVolume`)."""

    async def get_volume(self) -> int: ...

    async def set_volume(self, percent: int) -> None: ...


class GatewayView(Protocol):
    """What the control layer needs of the gateway (`gateway.service.GatewayService`)."""

    def devices(self) -> list[GatewayDevice]: ...

    def alert(self, device: str, text: str) -> str:
        """Show `text` on the device (client id or MAC, any case); returns its MAC. Raises ControlError for a
        device that is not connected."""


class ToolOutcome(Protocol):
    """A tool's answer (`tools.registry.ToolResult`)."""

    @property
    def text(self) -> str: ...

    @property
    def is_error(self) -> bool: ...


class ListedTool(Protocol):
    """A tool as the registry lists it (`tools.registry.Tool`)."""

    def to_mcp(self) -> dict[str, Any]: ...


class ToolCaller(Protocol):
    """The tool registry (`tools.registry.ToolRegistry`): it records and logs each call with its source."""

    def list(self) -> Sequence[ListedTool]: ...

    async def call(self, name: str, arguments: Mapping[str, Any] | None = None, *,
                   source: str = ...) -> ToolOutcome: ...


class TimerView(Protocol):
    """What the control layer needs of the timers (`timers.service.TimerService`)."""

    def timers(self) -> list[TimerStatus]: ...


class Control:
    """Args:
    bus: the event bus (state in, commands out).
    history: the turns and actions (the recorder fills it while `serve()` runs).
    volume: the speaker's mixer; None when there is none.
    gateway: the gateway, when it runs.
    timers: the timers, when they run.
    tools: the tool registry, for `call_tool`.
    speaker: whether PiBuddy has a speaker of its own (audio enabled) to announce on.
    hand_off_seconds: how long a turn handed to OpenClaw waits in the recorder for OpenClaw's answer.
    """

    def __init__(self, bus: EventBus, *, history: History, volume: VolumeControl | None = None,
                 gateway: GatewayView | None = None, timers: TimerView | None = None,
                 tools: ToolCaller | None = None, speaker: bool = True, hand_off_seconds: float = 120.0) -> None:
        self._bus = bus
        self._history = history
        self._recorder = TurnRecorder(history, hand_off_seconds=hand_off_seconds)
        self._volume = volume
        self._gateway = gateway
        self._timers = timers
        self._tools = tools
        self._speaker = speaker
        self._watchers: set[Subscription] = set()
        """The subscriptions of running `changes()`, told when the recorder moved."""

    # --- reading ----------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        bus = self._bus
        muted = _latest(bus, Muted)
        link = _latest(bus, UpstreamLink)
        brain = _latest(bus, ActiveBrain)
        volume = _latest(bus, VolumeChanged)
        services = _latest(bus, ServicesHealth)
        is_muted = muted is not None and muted.muted
        upstream = UpstreamStatus(link.connected, link.transport, link.detail) if link is not None else None
        return Snapshot(
            state=_assistant_state(bus.state, is_muted, upstream),
            device_state=bus.state.value,
            brain=brain.brain if brain is not None else "upstream",
            upstream=upstream,
            muted=is_muted,
            volume=volume.percent if volume is not None else None,
            last_heard=self._recorder.last_heard,
            last_reply=self._recorder.last_reply,
            gateway_devices=tuple(self._gateway.devices()) if self._gateway is not None else (),
            timers=tuple(self._timers.timers()) if self._timers is not None else (),
            services=services.services if services is not None else (),
        )

    async def changes(self) -> AsyncIterator[Snapshot]:
        """The current snapshot, then a new one each time it differs, looked at only when an event says
        something in it changed (no polling: a timer's time left is not a change, its end is). Consecutive
        snapshots are never equal. The last heard and said follow once `serve()` recorded them."""
        last: Snapshot | None = None
        with self._bus.subscribe() as events:
            self._watchers.add(events)
            try:
                while True:
                    snapshot = self.snapshot()
                    if snapshot != last:
                        last = snapshot
                        yield snapshot
                    while not isinstance(await events.get(), _CHANGES):
                        pass
            finally:
                self._watchers.discard(events)

    def history(self, count: int | None = None) -> list[HistoryEntry]:
        """The newest `count` turns and actions (all kept when None), oldest first."""
        return self._history.recent(count)

    async def volume(self) -> int:
        """The speaker volume now, read from the mixer (and published when it changed behind our back)."""
        volume = self._need_volume()
        percent = await volume.get_volume()
        latest = _latest(self._bus, VolumeChanged)
        if latest is None or latest.percent != percent:
            self._bus.publish(VolumeChanged(percent))
        return percent

    # --- commands ---------------------------------------------------------------------------------

    async def set_volume(self, percent: int, *, source: str) -> int:
        if not 0 <= percent <= 100:
            raise ControlError(f"volume must be 0 to 100, not {percent}")
        volume = self._need_volume()

        async def act() -> int:
            await volume.set_volume(percent)
            return await self.volume()

        return await self._record(source, "set_volume", {"volume": percent}, act)

    async def set_muted(self, muted: bool, *, source: str) -> bool:
        """Mute or unmute the microphone; returns once the audio pipeline confirms."""
        current = _latest(self._bus, Muted)
        if current is None:
            raise ControlError("PiBuddy has no microphone to mute (audio.enabled is false)")

        async def act() -> bool:
            if current.muted == muted:
                return muted
            with self._bus.subscribe() as events:
                self._bus.publish(Command(CommandName.MUTE if muted else CommandName.UNMUTE))
                async with asyncio.timeout(_MUTE_CONFIRM_SECONDS):
                    while True:
                        event = await events.get()
                        if isinstance(event, Muted) and event.muted == muted:
                            return muted

        try:
            return await self._record(source, "mute" if muted else "unmute", {}, act)
        except TimeoutError:
            raise ControlError("the audio pipeline did not confirm the mute switch (is the audio service "
                               "running? see `pibuddy status`)") from None

    async def announce(self, text: str, *, device: str | None = None, source: str) -> list[str]:
        """Say `text` on the Pi (device None), or show it on a gateway device (its MAC or client id) or on
        all of them ("all"). Returns where it went."""
        text = " ".join(text.split())
        if not text:
            raise ControlError("nothing to announce: the text is empty")
        if len(text) > _MAX_ANNOUNCEMENT:
            raise ControlError(f"an announcement is at most {_MAX_ANNOUNCEMENT} characters")

        async def act() -> list[str]:
            if device is None:
                if not self._speaker:
                    raise ControlError("PiBuddy has no speaker to announce on (audio.enabled is false)")
                self._bus.publish(Say(text, chime=True))
                return ["pi"]
            if self._gateway is None:
                raise ControlError("the gateway is not running, so there are no devices to announce on")
            targets = [d.mac for d in self._gateway.devices()] if device == ALL_DEVICES else [device]
            if not targets:
                raise ControlError("no gateway device is connected")
            return [self._gateway.alert(target, text) for target in targets]

        arguments = {"text": text} | ({"device": device} if device else {})
        return await self._record(source, "announce", arguments, act)

    def list_tools(self) -> list[dict[str, Any]]:
        """The service's tools as MCP's `tools/list` lists them (`pibuddy mcp` serves these)."""
        return [t.to_mcp() for t in self._tools.list()] if self._tools is not None else []

    async def call_tool(self, name: str, arguments: Mapping[str, Any], *, source: str) -> ToolOutcome:
        """Call one of the service's tools (its drivers are connected); the registry records the call."""
        if self._tools is None:
            raise ControlError("this PiBuddy offers no tools")
        return await self._tools.call(name, arguments, source=source)

    async def restart(self, service: str, *, source: str) -> None:
        """Ask the supervisor to restart `service` (a name from the snapshot's services)."""
        names = [s.name for s in self.snapshot().services]
        if service not in names:
            raise ControlError(f"no service {service!r}; the services are: {', '.join(names) or 'none yet'}")

        async def act() -> str:
            self._bus.publish(RestartRequested(service))
            return "restarting"

        await self._record(source, "restart", {"service": service}, act)

    # --- running ----------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Record turns and actions from the bus into the history, and follow the mixer, forever."""
        with self._bus.subscribe(maxsize=256) as events:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._follow_volume(), name="control-volume")
                while True:
                    expiry = self._recorder.next_expiry()  # a turn handed to OpenClaw may wait in vain
                    try:
                        async with asyncio.timeout(None if expiry is None else max(expiry - time.monotonic(), 0)):
                            event = await events.get()
                    except TimeoutError:
                        self._recorder.expire()
                        continue
                    match event:
                        case TurnProgress():
                            self._recorder.progress(event)
                            for watcher in self._watchers:
                                watcher.offer(_RECORDED)
                        case ActionTaken():
                            self._recorder.action(event)
                        case Transcript():
                            self._recorder.handed_off()

    async def _follow_volume(self) -> None:
        """Read the mixer now and every `_VOLUME_POLL_SECONDS`: another program (alsamixer, the desktop) may
        move it, and the snapshot should say what the speaker really does."""
        if self._volume is None:
            return
        while True:
            try:
                await self.volume()
            except PiBuddyError as exc:  # no mixer at all: nothing to follow (said once, by the mixer)
                _LOGGER.debug("the volume is not followed: %s", exc)
                return
            await asyncio.sleep(_VOLUME_POLL_SECONDS)

    async def _record(self, source: str, name: str, arguments: Mapping[str, object],
                      act: Callable[[], Awaitable[T]]) -> T:
        """Run a command, log it in one line and publish it as an `ActionTaken` (also when it fails)."""
        started = time.monotonic()
        try:
            result = await act()
        except (PiBuddyError, TimeoutError) as exc:
            self._publish_action(ActionTaken(source, name, arguments, str(exc) or type(exc).__name__, True,
                                             time.monotonic() - started))
            raise
        self._publish_action(ActionTaken(source, name, arguments, str(result), False, time.monotonic() - started))
        return result

    def _publish_action(self, action: ActionTaken) -> None:
        _LOGGER.info("%s by %s %s -> %s%s (%.0f ms)", action.name, action.source, dict(action.arguments),
                     "error: " if action.is_error else "", action.result, action.seconds * 1000)
        self._bus.publish(action)

    def _need_volume(self) -> VolumeControl:
        if self._volume is None:
            raise ControlError("PiBuddy has no volume control here")
        return self._volume


E = TypeVar("E", bound=Event)


def _latest(bus: EventBus, kind: type[E]) -> E | None:
    event = bus.latest(kind)
    return event if isinstance(event, kind) else None


def _assistant_state(state: DeviceState, muted: bool, upstream: UpstreamStatus | None) -> AssistantState:
    if muted:
        return AssistantState.MUTED
    if state in _ACTIVE:
        return _ACTIVE[state]
    if state is DeviceState.DISCONNECTED or (upstream is not None and not upstream.connected):
        return AssistantState.OFFLINE
    return AssistantState.IDLE
