"""The device client: drives a DEVICE-role `Session` over a channel, with audio and the MCP server.

`async with DeviceClient(...) as client:` connects (MQTT: the control link; WebSocket: nothing yet) and
`await client.run()` returns only by raising `ConnectionLost` when the control link drops — the
supervisor restarts the service with backoff. Conversations start from the event bus (`WakeDetected` from
the wake-word engine, `Command`s from buttons) or from the intent methods.

Bad input from the server is handled in one place each: a bad control message is logged (one line, the
reason) and dropped; a bad audio packet is counted and logged at most once per interval. Neither ends
the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, Self

from pibuddy.audio.contract import UPLINK_CLOSED, AudioPort, Uplink
from pibuddy.device_client.channels import Channel
from pibuddy.drops import DropCounter
from pibuddy.errors import ConnectionLost
from pibuddy.events import (
    BRAIN_UPSTREAM,
    BUTTON,
    Command,
    CommandName,
    DeviceState,
    ErrorOccurred,
    EventBus,
    Muted,
    Say,
    Subscription,
    TurnProgress,
    TurnStage,
    UpstreamLink,
    WakeDetected,
    WakeHandedOver,
    answers_wakes,
)
from pibuddy.tools.mcp import McpServer
from pibuddy.xiaozhi import (
    AlertReceived,
    ChannelTimedOut,
    ErrorReceived,
    HelloTimedOut,
    ListenMode,
    LocalProtocolError,
    McpReceived,
    ProtocolError,
    RemoteProtocolError,
    Role,
    SentenceStarted,
    ServerHelloReceived,
    Session,
    SessionStateChanged,
    State,
    SttReceived,
    SystemCommand,
    TtsStarted,
    TtsStopped,
    UnknownReceived,
)
from pibuddy.xiaozhi.const import CHANNEL_TIMEOUT_SECONDS, HELLO_TIMEOUT_SECONDS
from pibuddy.xiaozhi.messages import Mcp

_LOGGER = logging.getLogger(__name__)
UNREACHABLE_LINE: Final = "Sorry, I can't reach the server right now."
"""Spoken when a wake or button press finds no server (the error light flashes with it)."""
WAKE_ANSWER_SECONDS: Final = 2.0
"""How long a wake or button press waits for the server (connect and hello) before PiBuddy answers without
it: the line above, or in `auto` mode the local brain. With recognition and speech synthesis after it, the user
hears something within 3 s of the end of speech. The hello timeout proper (10 s, §5.3) still decides when the
link counts as down; a hello that comes later than this just opens a conversation nobody speaks in."""
_DRAIN_TIMEOUT_SECONDS: Final = 10.0  # longest a reply's tail may play before the mic reopens
_TIMER_MAX_SLEEP_SECONDS: Final = 1.0
_MAX_UNKNOWN_KINDS_LOGGED: Final = 32  # each unknown type or tts state is logged once, up to this many
BRAIN: Final = "xiaozhi"  # who answers, as the history names it


def answer_without_server(bus: EventBus, audio: AudioPort, woken_by: str, *, hand_over: bool) -> None:
    """A wake or button press the server did not answer in time: the error light, then in `auto` mode
    (`hand_over`) the local brain answers it (it says it is offline first), otherwise the error tone and
    one spoken line."""
    _LOGGER.warning("the server did not answer %s in time: %s", woken_by,
                    "the local brain answers it" if hand_over else "saying so")
    bus.publish(ErrorOccurred("upstream", "could not start a conversation with the server"))
    if hand_over:
        bus.publish(WakeHandedOver(woken_by))
        return
    audio.error_tone()
    bus.publish(Say(UNREACHABLE_LINE))


_BUS_STATE: Final = {
    State.IDLE: DeviceState.IDLE,
    State.CONNECTING: DeviceState.CONNECTING,
    State.OPEN: DeviceState.IDLE,
    State.LISTENING: DeviceState.LISTENING,
    State.SPEAKING: DeviceState.SPEAKING,
}


class DeviceClient:
    """A xiaozhi device as the server sees it.

    Args:
        channel: MQTT+UDP or WebSocket, unconnected.
        bus: conversation state goes out, wake words and button commands come in.
        audio: the audio pipeline (or `NoAudio`).
        mcp: the device-side MCP server answering the server's tool calls.
        listen_mode: the mode of wake-word turns (auto or realtime; manual ends them at the end of utterance).
        hello_timeout, channel_timeout: seconds (§5.3).
        hand_over: `brain.mode: auto`: a wake the server does not answer in time goes to the local brain.
        answer_within: seconds a wake waits for the server's hello (`WAKE_ANSWER_SECONDS`).
        clock: monotonic seconds; tests may pass their own.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        bus: EventBus,
        audio: AudioPort,
        mcp: McpServer,
        listen_mode: ListenMode = ListenMode.AUTO,
        hello_timeout: float = HELLO_TIMEOUT_SECONDS,
        channel_timeout: float = CHANNEL_TIMEOUT_SECONDS,
        hand_over: bool = False,
        answer_within: float = WAKE_ANSWER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self.session = Session(Role.DEVICE, transport=channel.transport, ws_version=channel.ws_version,
                               listen_mode=listen_mode, hello_timeout=hello_timeout,
                               channel_timeout=channel_timeout)
        self._bus = bus
        self._audio = audio
        self._mcp = mcp
        self._clock = clock
        self._hand_over = hand_over
        self._answer_within = answer_within
        self._turn_mode = self.session.listen_mode  # the mode of the last listen start we sent
        self._send_lock = asyncio.Lock()
        self._state_changed = asyncio.Event()
        self._lost: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._uplink: Uplink | None = None
        """The microphone's uplink while the session wants audio (its sender task runs with it)."""
        self._audio_drops = DropCounter("malformed audio packets from the server", _LOGGER)
        self._unknown_types: set[str] = set()
        self._reply_audio_heard = False  # FIRST_AUDIO is reported once per turn

    # --- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._lost = asyncio.get_running_loop().create_future()
        await self.channel.connect(self)
        self._publish_link(True, self.channel.describe())
        self._bus.set_state(DeviceState.IDLE, "connected")
        commands = self._bus.subscribe()  # now, so nothing published after entering is missed
        for coroutine, name in ((self._run_timer(), "timer"), (self._run_bus_commands(commands), "bus-commands")):
            self._spawn(coroutine, name)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with contextlib.suppress(ConnectionLost, LocalProtocolError):
            await self.close_conversation()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.channel.close()
        self._publish_link(False, "disconnected")
        self._bus.set_state(DeviceState.DISCONNECTED)

    async def run(self) -> None:
        """Serve until the control link drops; raises ConnectionLost."""
        assert self._lost is not None, "use `async with DeviceClient(...)` first"
        await self._lost
        raise ConnectionLost("control link closed")  # pragma: no cover - the future always raises

    # --- intents ---------------------------------------------------------------------------------

    async def wake(self, wake_word: str, *, since: float | None = None) -> bool:
        """The wake word was heard: open a channel if needed, chime, send its audio, start listening (§5.1).

        since: when it was heard (monotonic, default now): the server gets `answer_within` from then.
        """
        if self.session.state is State.SPEAKING:
            self._silence()  # barge-in: silence first, then tell the server
        self._progress(TurnStage.WAKE)
        if self.session.state in (State.IDLE, State.CONNECTING) and not await self._open_channel(wake_word, since):
            self._progress(TurnStage.END)
            return False
        if self.session.state is State.OPEN:  # a new turn (not a barge-in, which stays silent): chime
            self._audio.chime()
            for frame in self._audio.wake_audio():
                await self._send_audio(frame)
        self._turn_mode = self.session.listen_mode
        self.session.wake_word_detected(wake_word)
        await self._act_now()
        return True

    async def start_listening(self, mode: ListenMode = ListenMode.MANUAL, *, since: float | None = None) -> bool:
        """Push-to-talk pressed (or a turn started by other means); `since` as for `wake`."""
        if self.session.state is State.SPEAKING:
            self._silence()
        self._progress(TurnStage.WAKE)
        if self.session.state in (State.IDLE, State.CONNECTING) and not await self._open_channel(BUTTON, since):
            self._progress(TurnStage.END)
            return False
        self._turn_mode = mode
        self.session.start_listening(mode)
        await self._act_now()
        return True

    async def stop_listening(self) -> None:
        """Push-to-talk released."""
        if self.session.state is State.LISTENING:
            self.session.stop_listening()
            await self._act_now()

    async def abort(self) -> None:
        """Stop the reply being spoken."""
        if self.session.state is State.SPEAKING:
            self._silence()
            self.session.abort()
            await self._act_now()

    async def close_conversation(self) -> None:
        """End the conversation (goodbye on MQTT, socket close on WebSocket)."""
        if self.session.state is not State.IDLE:
            self.session.close(send_goodbye=True)
            await self._flush()
            await self._handle_events()

    async def wait_state(self, *states: State) -> State:
        """Wait until the session is in one of `states` (bound it with `asyncio.timeout`)."""
        while self.session.state not in states:
            self._state_changed.clear()
            await self._state_changed.wait()
        return self.session.state

    # --- ChannelSink -----------------------------------------------------------------------------

    async def json_received(self, data: bytes | str) -> None:
        try:
            self.session.receive_json(data, self._clock())
        except RemoteProtocolError as exc:
            preview = data[:80] if isinstance(data, str) else data[:80].decode("utf-8", "replace")
            _LOGGER.warning("dropped a bad message from the server (%s): %r", exc, preview)
            return
        await self._handle_events()
        await self._flush()

    async def audio_received(self, data: bytes) -> None:
        try:
            frame = self.session.receive_audio(data, self._clock())
        except ProtocolError as exc:
            self._audio_drops.count(str(exc))
            return
        if frame is not None:
            self._play(frame.payload)

    def conversation_lost(self, reason: str) -> None:
        _LOGGER.info("conversation link closed: %s", reason)
        self.session.channel_lost()
        self._spawn(self._handle_events(), "conversation-lost")

    def control_lost(self, error: ConnectionLost) -> None:
        _LOGGER.warning("%s", error)
        self.session.channel_lost()
        self._spawn(self._handle_events(), "control-lost")
        if self._lost is not None and not self._lost.done():
            self._lost.set_exception(error)

    # --- internals -------------------------------------------------------------------------------

    async def _open_channel(self, woken_by: str, since: float | None) -> bool:
        """Send hello and wait for the server's, up to `answer_within` after `since`; False when it does not
        come in time, and the user is answered without the server."""
        answer_by = (self._clock() if since is None else since) + self._answer_within
        if await self._channel_opened(answer_by):
            return True
        answer_without_server(self._bus, self._audio, woken_by, hand_over=self._hand_over)
        return False

    async def _channel_opened(self, answer_by: float) -> bool:
        if self.session.state is State.IDLE:
            try:
                await self.channel.begin()
            except ConnectionLost as exc:
                _LOGGER.warning("cannot start a conversation: %s", exc)
                self._bus.set_state(DeviceState.IDLE, str(exc))
                return False
            self.session.open_channel(self._clock())
            await self._handle_events()
            await self._flush()
        try:
            # The session's own hello timeout (driven by the timer task) may end the wait sooner.
            now = self._clock()
            async with asyncio.timeout(max(min((self.session.deadline or now) + 1.0, answer_by) - now, 0.0)):
                await self.wait_state(State.OPEN, State.LISTENING, State.SPEAKING, State.IDLE)
        except TimeoutError:
            _LOGGER.warning("the server did not answer hello within %g s of the wake", self._answer_within)
            return False
        return self.session.state is not State.IDLE

    async def _handle_events(self) -> None:
        for event in self.session.events_received():
            handler = self._HANDLERS.get(type(event))
            if handler is not None:
                await handler(self, event)

    async def _on_state(self, event: SessionStateChanged) -> None:
        self._state_changed.set()
        self._sync_uplink()
        self._bus.set_state(_BUS_STATE[event.new], f"conversation {event.old} -> {event.new}")
        if event.new is State.LISTENING:
            self._reply_audio_heard = False
            self._progress(TurnStage.LISTEN_START)
        if event.new is State.IDLE:
            self._progress(TurnStage.END)
            self._audio.speaking_sentence(None)
            await self.channel.end()

    async def _on_server_hello(self, event: ServerHelloReceived) -> None:
        _LOGGER.info("conversation %s opened over %s", event.session_id or "(no id)", self.channel.describe())
        self._progress(TurnStage.HELLO)
        try:
            await self.channel.open_audio(self.session.udp)
        except ConnectionLost as exc:
            _LOGGER.warning("%s", exc)
            self.session.channel_lost()
            return
        self._audio.start_playback(event.downlink.sample_rate, event.downlink.frame_duration)
        self._publish_link(True, self.channel.describe())

    async def _on_tts_started(self, event: TtsStarted) -> None:
        del event
        for frame in self.session.take_early_audio():
            self._play(frame.payload)

    async def _on_tts_stopped(self, event: TtsStopped) -> None:
        del event
        # The reply is over; what is still buffered keeps the pipeline's "speaking" guard up until it has played.
        self._audio.speaking_sentence(None)
        self._progress(TurnStage.END)
        if self.session.state is State.LISTENING:
            # The session already queued `listen start`; like the firmware, reopen the mic only once the
            # speaker has fallen silent, so the buddy does not listen to itself.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_DRAIN_TIMEOUT_SECONDS):
                    await self._audio.wait_drained()

    async def _on_sentence(self, event: SentenceStarted) -> None:
        _LOGGER.info("buddy: %s", event.message.text)
        self._progress(TurnStage.REPLY, event.message.text or "")
        self._audio.speaking_sentence(event.message.text)

    async def _on_stt(self, event: SttReceived) -> None:
        _LOGGER.info("you: %s", event.text or "(no text)")
        self._progress(TurnStage.HEARD, event.text or "")
        self._bus.set_state(DeviceState.THINKING, "speech recognised")

    async def _on_mcp(self, event: McpReceived) -> None:
        self._spawn(self._answer_mcp(dict(event.message.payload)), "mcp-call")

    async def _answer_mcp(self, payload: dict[str, Any]) -> None:
        reply = await self._mcp.handle(payload)
        if reply is None:
            return
        try:
            self.session.send(Mcp(payload=reply))
        except LocalProtocolError as exc:
            _LOGGER.warning("cannot send the MCP reply: %s", exc)
            return
        await self._flush()

    async def _on_alert(self, event: AlertReceived) -> None:
        _LOGGER.warning("server alert (%s): %s", event.message.status, event.message.message)
        self._bus.publish(Say(event.message.message))

    async def _on_system(self, event: SystemCommand) -> None:
        if event.command is not None:  # without one the firmware ignores the message too
            _LOGGER.warning("the server asked for %r; PiBuddy does not reboot its host on request", event.command)

    async def _on_error(self, event: ErrorReceived) -> None:
        _LOGGER.warning("server error: %s", event.message.message)
        self._bus.publish(ErrorOccurred("upstream", event.message.message or "no reason given"))

    async def _on_hello_timeout(self, event: HelloTimedOut) -> None:
        del event
        _LOGGER.warning("the server did not answer hello in time; back to idle")
        # Reachable for OTA but deaf to hello is down as far as conversations go (the brain router listens).
        self._publish_link(False, "the server did not answer hello")

    async def _on_channel_timeout(self, event: ChannelTimedOut) -> None:
        del event
        _LOGGER.info("no word from the server for a while; the audio channel is closed")

    async def _on_unknown(self, event: UnknownReceived) -> None:
        kind = event.message.describe()
        if kind not in self._unknown_types and len(self._unknown_types) < _MAX_UNKNOWN_KINDS_LOGGED:
            self._unknown_types.add(kind)
            _LOGGER.info("ignoring messages with unknown %s from the server", kind)

    _HANDLERS: Final[dict[type, Callable[[DeviceClient, Any], Coroutine[Any, Any, None]]]] = {
        SessionStateChanged: _on_state,
        ServerHelloReceived: _on_server_hello,
        TtsStarted: _on_tts_started,
        TtsStopped: _on_tts_stopped,
        SentenceStarted: _on_sentence,
        SttReceived: _on_stt,
        McpReceived: _on_mcp,
        AlertReceived: _on_alert,
        SystemCommand: _on_system,
        ErrorReceived: _on_error,
        HelloTimedOut: _on_hello_timeout,
        ChannelTimedOut: _on_channel_timeout,
        UnknownReceived: _on_unknown,
    }

    async def _act_now(self) -> None:
        """After a local intent: send what it queued, then act on the state it moved to at once, not at the
        next server message or timer tick (the mic must open right after `listen start`)."""
        await self._flush()
        await self._handle_events()
        self._sync_uplink()  # also when the state stayed (a wake while listening starts an auto turn)

    def _sync_uplink(self) -> None:
        """The microphone's uplink is open exactly while the session wants audio; one sender per uplink."""
        if not self.session.should_send_audio:
            if self._uplink is not None:
                self._uplink = None
                self._audio.close_uplink()
            return
        uplink = self._audio.open_uplink(end_on_silence=self._turn_mode is ListenMode.MANUAL)
        if uplink is not self._uplink:
            self._uplink = uplink
            self._spawn(self._send_uplink(uplink), "uplink")

    async def _flush(self) -> None:
        """Send what the session queued, in order, even when several tasks flush at once."""
        async with self._send_lock:
            for text in self.session.messages_to_send():
                try:
                    await self.channel.send_json(text)
                except LocalProtocolError as exc:
                    _LOGGER.warning("not sent: %s", exc)
                except ConnectionLost as exc:
                    _LOGGER.warning("message not sent, link down: %s", exc)
                    return

    def _play(self, opus: bytes) -> None:
        if not self._reply_audio_heard:
            self._reply_audio_heard = True
            self._progress(TurnStage.FIRST_AUDIO)
        self._audio.play(opus)

    def _progress(self, stage: TurnStage, text: str = "") -> None:
        self._bus.publish(TurnProgress(stage, BRAIN, text))

    def _silence(self) -> None:
        """Barge-in: stop the speaker at once and forget the sentence it was saying."""
        self._audio.stop_playback()
        self._audio.speaking_sentence(None)

    async def _send_audio(self, opus: bytes) -> None:
        with contextlib.suppress(ConnectionLost):
            await self.channel.send_audio(self.session.send_audio(opus))

    async def _send_uplink(self, uplink: Uplink) -> None:
        async for frame in uplink:
            if self.session.should_send_audio:
                await self._send_audio(frame)
        if self._uplink is not uplink:  # closed or replaced by this client
            return
        self._uplink = None
        self._audio.close_uplink()
        if uplink.end_reason != UPLINK_CLOSED:  # manual turns: the user stopped talking (or the VAD cap)
            _LOGGER.info("end of utterance (%s): listen stop", uplink.end_reason)
            await self.stop_listening()

    async def _run_timer(self) -> None:
        while True:
            now = self._clock()
            deadline = self.session.deadline
            await asyncio.sleep(_TIMER_MAX_SLEEP_SECONDS if deadline is None
                                else min(max(deadline - now, 0.0), _TIMER_MAX_SLEEP_SECONDS))
            self.session.tick(self._clock())
            await self._handle_events()

    async def _run_bus_commands(self, subscription: Subscription) -> None:
        with subscription as events:
            async for event in events:
                await self._act_on(event)

    async def _act_on(self, event: object, since: float | None = None) -> None:
        try:
            await self._on_bus_event(event, since)
        except (LocalProtocolError, ConnectionLost) as exc:
            _LOGGER.warning("could not act on %s: %s", event, exc)

    def answer_later(self, event: WakeDetected | Command, since: float) -> None:
        """Act on a wake or button press that came (at `since`) before this client was connected (it triggered
        the connect)."""
        self._spawn(self._act_on(event, since), "earlier-wake")

    async def _on_bus_event(self, event: object, since: float | None = None) -> None:
        match event:
            case WakeDetected(wake_word=word) if self._answers_wakes():
                await self.wake(word, since=since)
            case Command(name=CommandName.LISTEN_START) if self._answers_wakes() and not self._muted():
                await self.start_listening(ListenMode.MANUAL, since=since)
            case Command(name=CommandName.LISTEN_STOP):
                await self.stop_listening()
            case Command(name=CommandName.ABORT):
                await self.abort()

    def _publish_link(self, connected: bool, detail: str) -> None:
        latest = self._bus.latest(UpstreamLink)
        if not isinstance(latest, UpstreamLink) or latest.connected is not connected:
            self._bus.publish(UpstreamLink(connected, self.channel.transport.value, detail))

    def _answers_wakes(self) -> bool:
        return answers_wakes(self._bus, BRAIN_UPSTREAM)

    def _muted(self) -> bool:
        muted = self._bus.latest(Muted)
        return isinstance(muted, Muted) and muted.muted

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            _LOGGER.error("device client task %s failed: %r", task.get_name(), error, exc_info=error)
            if self._lost is not None and not self._lost.done():
                self._lost.set_exception(ConnectionLost(f"internal error in {task.get_name()}: {error!r}"))
