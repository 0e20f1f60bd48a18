"""A small in-process event bus: state changes, wake, errors -> logs, LEDs, metrics.

Publishers call `bus.publish(event)` on the event loop (or `publish_threadsafe` from another thread).
Each subscriber owns a bounded queue; when it is full the oldest event is dropped and counted, so a slow
LED driver can never stall the audio path. A new subscriber first receives a snapshot: the latest event
of every "sticky" kind (the device state, the upstream link), so it never has to ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Final

from pibuddy.drops import DropCounter

_LOGGER = logging.getLogger(__name__)
_DEFAULT_QUEUE_SIZE: Final = 64


class DeviceState(StrEnum):
    """What the buddy is doing, as LEDs and STATUS= lines show it."""

    STARTING = "starting"
    IDLE = "idle"
    CONNECTING = "connecting"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    ACTIVATING = "activating"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every bus event. `sticky` kinds are replayed to late subscribers."""

    sticky: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    sticky: ClassVar[bool] = True
    old: DeviceState
    new: DeviceState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class WakeDetected(Event):
    wake_word: str
    score: float = 1.0
    """Engine score in [0, 1] (1.0 from yes/no engines)."""
    loudness_dbfs: float = 0.0
    """RMS level of the last second of microphone audio, dB relative to full scale."""


@dataclass(frozen=True, slots=True)
class ActivationCode(Event):
    """The server wants the user to bind this device with a 6-digit code.

    Not sticky: once activated the code is void, and a late subscriber must not be shown it. Whether a code is
    pending is the ACTIVATING state, which is sticky.
    """

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class UpstreamLink(Event):
    """Whether the upstream xiaozhi server is reachable, and over which transport."""

    sticky: ClassVar[bool] = True
    connected: bool
    transport: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ActiveBrain(Event):
    """Who answers the next wake: "upstream" (the xiaozhi server) or "local" (pibuddy.brain); and why."""

    sticky: ClassVar[bool] = True
    brain: str
    reason: str = ""


BRAIN_UPSTREAM: Final = "upstream"
BRAIN_LOCAL: Final = "local"
BRAIN_OPENCLAW: Final = "openclaw"
"""Who answered a turn (`TurnProgress.brain`) that the local brain handed to OpenClaw; never an `ActiveBrain`."""


def answers_wakes(bus: EventBus, brain: str) -> bool:
    """Whether `brain` (BRAIN_UPSTREAM or BRAIN_LOCAL) should act on a wake now: the server also when no
    router published anything."""
    active = bus.latest(ActiveBrain)
    current = active.brain if isinstance(active, ActiveBrain) else BRAIN_UPSTREAM
    return current == brain


@dataclass(frozen=True, slots=True)
class ServiceStatus(Event):
    """A supervised service changed its lifecycle state (running, restarting, failed, stopped)."""

    service: str
    status: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ErrorOccurred(Event):
    """Something the user asked for failed (a wake that found no server, an error from the server); the
    lights flash it. Not a state: what PiBuddy does next shows as soon as it happens."""

    source: str
    message: str


@dataclass(frozen=True, slots=True)
class WakeHandedOver(Event):
    """`brain.mode: auto`: the server did not answer this wake (or button press) in time, so the local brain
    answers it, from the audio held since the wake (`AudioPort.open_uplink(since_wake=True)`)."""

    woken_by: str
    """The wake word, or `BUTTON`."""


BUTTON: Final = "the button"
"""What woke PiBuddy when it was a button press (push-to-talk), as logs and `WakeHandedOver` name it."""


@dataclass(frozen=True, slots=True)
class Say(Event):
    """Something PiBuddy wants spoken to the user (activation codes, pairing hints, announcements)."""

    text: str
    chime: bool = False
    """Ring the chime first (announcements, a timer that ends)."""


@dataclass(frozen=True, slots=True)
class Transcript(Event):
    """A final transcript of what the user said, from a local speech recogniser (for a local brain)."""

    text: str


class CommandName(StrEnum):
    LISTEN_START = "listen_start"
    """Start listening for a command now (a button press: the device client's manual mode, a local turn)."""
    LISTEN_STOP = "listen_stop"
    ABORT = "abort"
    TOGGLE_MUTE = "toggle_mute"
    """Mute or unmute the microphone (the audio pipeline owns the mute)."""
    MUTE = "mute"
    UNMUTE = "unmute"
    OPEN_PAIRING = "open_pairing"
    """Let the gateway accept new devices for `gateway.pairing_minutes` (a button's long press)."""


@dataclass(frozen=True, slots=True)
class Command(Event):
    """A user command from a peripheral (button press), for the conversation and the audio pipeline to act on."""

    name: str
    """A `CommandName` value."""


@dataclass(frozen=True, slots=True)
class Muted(Event):
    """Whether the microphone is muted; the audio pipeline, which owns the mute, publishes it."""

    sticky: ClassVar[bool] = True
    muted: bool


@dataclass(frozen=True, slots=True)
class VolumeChanged(Event):
    """The speaker volume in percent, as last read or set (by a tool, the CLI, the web page)."""

    sticky: ClassVar[bool] = True
    percent: int


class TurnStage(StrEnum):
    """The milestones of one conversation turn, in order; the history keeps their latencies."""

    WAKE = "wake"
    """The wake word or the button (the turn's zero)."""
    HELLO = "hello"
    """The server answered hello (the audio channel is open); upstream turns only."""
    LISTEN_START = "listen_start"
    """The microphone streams to whoever answers."""
    HEARD = "heard"
    """Speech recognised (`text`)."""
    REPLY = "reply"
    """A sentence of the reply (`text`); several per turn."""
    FIRST_AUDIO = "first_audio"
    """The first reply audio reached the speaker."""
    END = "end"
    """The reply is over, or the turn was abandoned."""


@dataclass(frozen=True, slots=True)
class TurnProgress(Event):
    """A conversation turn reached `stage`; published by whoever runs the turn (device client, local brain)."""

    stage: TurnStage
    brain: str
    """Who answers: "xiaozhi", "local" or "openclaw"."""
    text: str = ""
    microphone: str = "pi"
    """Where the user spoke: "pi", or a gateway device's MAC."""
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class ActionTaken(Event):
    """A tool call or a household command (volume, mute, announce), from any surface, with its outcome."""

    source: str
    """Who asked: "xiaozhi", "mcp-stdio", "mcp-http", "mcp-endpoint", "openclaw", "local-brain", "cli", "web",
    "gateway-device", "timer"."""
    name: str
    arguments: Mapping[str, object]
    result: str
    is_error: bool
    seconds: float
    """How long it took."""


@dataclass(frozen=True, slots=True)
class RestartRequested(Event):
    """Someone (the CLI, the web page) asks the supervisor to restart one service."""

    service: str


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    name: str
    status: str
    """running, starting, restarting, failed, stopped."""
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ServicesHealth(Event):
    """Every supervised service's status and health, published by the supervisor when it changes."""

    sticky: ClassVar[bool] = True
    services: tuple[ServiceHealth, ...]


@dataclass(frozen=True, slots=True)
class TimersChanged(Event):
    """A timer was set, ended, rang, was stopped or cancelled; read the timers for what is running."""


@dataclass(frozen=True, slots=True)
class GatewayDevicesChanged(Event):
    """A device connected to the gateway or left it, or its conversation opened or closed; read the gateway for
    the list."""


@dataclass(eq=False)
class Subscription:
    """A subscriber's bounded queue; iterate it with `async for`."""

    bus: EventBus
    queue: asyncio.Queue[Event]
    drops: DropCounter = field(default_factory=lambda: DropCounter("events for a slow subscriber", _LOGGER))

    @property
    def dropped(self) -> int:
        return self.drops.total

    def offer(self, event: Event) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # drop the oldest: the newest state is what matters
            self.drops.count()
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self.bus.unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Fan-out of typed events to bounded subscriber queues, with a snapshot of sticky state."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []
        self._latest: dict[type[Event], Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self, maxsize: int = _DEFAULT_QUEUE_SIZE) -> Subscription:
        """A new subscription, pre-filled with the latest event of every sticky kind."""
        subscription = Subscription(self, asyncio.Queue(maxsize))
        for event in self._latest.values():
            subscription.offer(event)
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def latest(self, kind: type[Event]) -> Event | None:
        """The last sticky event of `kind`, if any."""
        return self._latest.get(kind)

    @property
    def state(self) -> DeviceState:
        event = self._latest.get(StateChanged)
        return event.new if isinstance(event, StateChanged) else DeviceState.STARTING

    def publish(self, event: Event) -> None:
        """Deliver `event` to every subscriber. Must run on the event loop thread."""
        if self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
        if event.sticky:
            self._latest[type(event)] = event
        for subscription in self._subscribers:
            subscription.offer(event)

    def set_state(self, new: DeviceState, reason: str = "") -> None:
        """Publish a `StateChanged` if the state really changes."""
        old = self.state
        if new != old:
            self.publish(StateChanged(old, new, reason))

    def publish_threadsafe(self, event: Event) -> None:
        """The one way for a foreign thread (audio callback, GPIO) to put an event on the bus."""
        if self._loop is None:
            raise RuntimeError("publish_threadsafe before the bus saw its event loop")
        self._loop.call_soon_threadsafe(self.publish, event)

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
