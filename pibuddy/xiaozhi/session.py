"""The sans-I/O xiaozhi conversation: JSON text and audio bytes in, events and bytes out.

A `Session` plays one end (`Role.DEVICE` or `Role.SERVER`) of the conversations over one control link.
It reads no clock and no socket: transports feed it what arrived (`receive_json`, `receive_audio`), call
`tick(now)` by `deadline`, and flush `messages_to_send()`; the application drains `events_received()`
and calls intents. Every state change goes through the table `TRANSITIONS` (in `states.py`).

Audio crypto happens here (in `self.audio`, an `AudioChannel`) rather than in the transport, because
each hello renews what it depends on: the key, the outgoing sequence (1, 2, ... after each hello) and
the incoming sequence rule. The transport only moves bytes.

Errors: a bad or out-of-place message raises a `RemoteProtocolError` and changes nothing, so the
transport logs one line and carries on. There is no "discard" state: every message is self-delimited
(one MQTT publish, one WebSocket message, one datagram), so a bad one cannot desynchronise what follows,
and the firmware too ignores what it cannot use. Whether to close the link is the transport's call
(`error.hint`). An intent the current state forbids raises `LocalProtocolError`, also without effect.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from enum import Enum
from typing import Any, Final, Literal

from pibuddy.xiaozhi.audio_channel import AudioChannel
from pibuddy.xiaozhi.const import (
    CHANNEL_TIMEOUT_SECONDS,
    HELLO_TIMEOUT_SECONDS,
    HELLO_VERSION_MQTT,
    UPLINK_FRAME_DURATION_MS,
    UPLINK_SAMPLE_RATE,
    AudioTransport,
    Role,
)
from pibuddy.xiaozhi.errors import InvalidMessage, LocalProtocolError, UnexpectedMessage
from pibuddy.xiaozhi.framing import AudioFrame, WsProtocolVersion
from pibuddy.xiaozhi.messages import (
    ABORT_REASON_WAKE_WORD,
    Abort,
    AudioParams,
    Error,
    Goodbye,
    Hello,
    Listen,
    ListenMode,
    ListenState,
    Message,
    parse_message,
)
from pibuddy.xiaozhi.session_events import (
    ChannelTimedOut,
    GoodbyeIgnored,
    HelloTimedOut,
    SessionEvent,
    SessionStateChanged,
    event_for,
)
from pibuddy.xiaozhi.states import TRANSITIONS, Input, State, classify
from pibuddy.xiaozhi.udp_codec import UdpParams

UPLINK_AUDIO: Final = AudioParams(UPLINK_SAMPLE_RATE, UPLINK_FRAME_DURATION_MS)
HELLO_REJECTED_TEXT: Final = "处理 hello 消息失败"  # what the gateway publishes when a hello fails (§3.4)
_OPEN_STATES: Final = frozenset({State.OPEN, State.LISTENING, State.SPEAKING})
_EARLY_AUDIO_FRAMES: Final = 8  # the server sends 5 frames at once after tts start; 8 leaves room


class _Echo(Enum):
    DEVICE_AUDIO_PARAMS = "the device's own audio_params"


DEVICE_AUDIO_PARAMS: Final = _Echo.DEVICE_AUDIO_PARAMS
"""`accept_hello`'s default: answer with the device's own audio parameters, as xiaozhi-server does."""


class Session:
    """One end of the xiaozhi conversations over one control link (MQTT connection or WebSocket)."""

    def __init__(
        self,
        role: Role,
        *,
        transport: AudioTransport = AudioTransport.UDP,
        ws_version: WsProtocolVersion = WsProtocolVersion.V1,
        listen_mode: ListenMode = ListenMode.AUTO,
        hello_timeout: float = HELLO_TIMEOUT_SECONDS,
        channel_timeout: float = CHANNEL_TIMEOUT_SECONDS,
    ) -> None:
        """Args:
        role: which end this session plays.
        transport: `udp` (MQTT control + encrypted UDP audio) or `websocket` (both on one socket).
        ws_version: binary framing of WebSocket audio (ignored for udp).
        listen_mode: the device's mode for wake-word turns: auto, or realtime when AEC is on.
        hello_timeout, channel_timeout: seconds, DEVICE role only (§5.3).
        """
        self.role = role
        self.transport = AudioTransport(transport)
        self.listen_mode = ListenMode(listen_mode)
        self.state = State.IDLE
        self.session_id: str | None = None
        """The server's session id from the last hello; the device sends "" before the first."""
        self.peer_hello: Hello | None = None
        self.audio = AudioChannel(role, self.transport, WsProtocolVersion(ws_version))
        self.audio_discarded = 0
        """Audio that arrived outside a conversation, or on a device that was not speaking."""
        self._early_audio: deque[AudioFrame] = deque(maxlen=_EARLY_AUDIO_FRAMES)
        self._peer = Role.SERVER if role is Role.DEVICE else Role.DEVICE
        self._hello_timeout = hello_timeout
        self._channel_timeout = channel_timeout
        self._mode = self.listen_mode  # the current turn's mode, from the last listen start
        self._hello_deadline: float | None = None
        self._last_incoming: float | None = None
        self._events: list[SessionEvent] = []
        self._outbox: list[str] = []

    # --- bytes in, events and bytes out -------------------------------------------------------

    def receive_json(self, data: str | bytes, now: float) -> None:
        """Take one control message from the peer; raises a RemoteProtocolError and changes nothing if bad."""
        self.receive(parse_message(data), now)

    def receive(self, message: Message, now: float) -> None:
        """`receive_json` for a message the caller has parsed already (the gateway reads each one to route it)."""
        if self._peer not in message.SENDERS:
            raise UnexpectedMessage(f"a {self._peer} does not send {message.TYPE!r}")
        if isinstance(message, Goodbye) and not self._goodbye_applies(message):
            self._last_incoming = now
            self._events.append(GoodbyeIgnored(message))
            return
        kind = classify(message, self._peer, self.state, self._mode)
        target = None if kind is None else self._target(kind, local=False)
        if kind is Input.SERVER_HELLO and isinstance(message, Hello):
            self._check_server_hello(message)
        self._last_incoming = now
        self._events.append(event_for(message, self.role))
        if kind is None or target is None:  # a message that does not move the conversation
            return
        old = self.state
        self._apply(kind, target, message)
        if kind is Input.TTS_STOP and old is State.SPEAKING and self._resumes_with_listen_start():
            # The firmware's mic pipeline was stopped while speaking; it announces the new turn.
            self._send(Listen(state=ListenState.START, mode=self._mode))

    def receive_audio(self, data: bytes, now: float) -> AudioFrame | None:
        """Take one datagram (udp) or binary WebSocket message; returns the frame to play or forward.

        None means dropped by rule: outside a conversation, stale sequence (§4.3), or (DEVICE) not
        speaking. Malformed input raises `MalformedPacket`.
        """
        if self.state not in _OPEN_STATES:
            self.audio_discarded += 1
            return None
        frame = self.audio.decode(data)
        if frame is None:
            return None
        self._last_incoming = now
        if self.role is Role.DEVICE and self.state is not State.SPEAKING:
            if self.state is State.LISTENING:
                # UDP may overtake the `tts start` that the control link (a broker hop) still carries;
                # the firmware loses those first frames. Keep a few for `take_early_audio()`.
                if len(self._early_audio) == self._early_audio.maxlen:
                    self.audio_discarded += 1
                self._early_audio.append(frame)
            else:
                self.audio_discarded += 1
            return None
        return frame

    def take_early_audio(self) -> list[AudioFrame]:
        """DEVICE: frames that arrived while listening just before `tts start`; play them first."""
        frames = list(self._early_audio)
        self._early_audio.clear()
        return frames

    def send_audio(self, payload: bytes, timestamp: int = 0) -> bytes:
        """Wrap one Opus frame for the wire: a sealed datagram (udp) or a framed WebSocket message.

        Allowed in any open state (the wake-word audio goes out before `wake_word_detected`); the mic
        pipeline should follow `should_send_audio`.
        """
        if self.state not in _OPEN_STATES:
            raise LocalProtocolError(f"no audio channel while {self.state}")
        return self.audio.encode(payload, timestamp)

    @property
    def udp(self) -> UdpParams | None:
        """Where and how the current UDP channel sends: the transport connects its socket to it."""
        return self.audio.udp

    @property
    def should_send_audio(self) -> bool:
        """DEVICE: stream the mic (listening, or speaking in realtime mode). SERVER: speaking."""
        if self.role is Role.SERVER:
            return self.state is State.SPEAKING
        return self.state is State.LISTENING or (
            self.state is State.SPEAKING and self._mode is ListenMode.REALTIME
        )

    def events_received(self) -> list[SessionEvent]:
        events, self._events = self._events, []
        return events

    def messages_to_send(self) -> list[str]:
        messages, self._outbox = self._outbox, []
        return messages

    # --- time ---------------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When `tick` next has something to do (DEVICE role only), or None."""
        if self.role is Role.SERVER:
            return None
        if self.state is State.CONNECTING:
            return self._hello_deadline
        if self.state in _OPEN_STATES and self._last_incoming is not None:
            return self._last_incoming + self._channel_timeout
        return None

    def tick(self, now: float) -> None:
        """Fire the hello timeout (10 s) or the channel timeout (120 s without incoming data)."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return
        event: SessionEvent
        if self.state is State.CONNECTING:
            kind, event = Input.HELLO_TIMEOUT, HelloTimedOut()
        else:
            kind, event = Input.CHANNEL_TIMEOUT, ChannelTimedOut()
        self._events.append(event)
        self._apply(kind, self._target(kind, local=True), None)

    # --- intents ------------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Send any message this role may send now (relays, MCP, the server's tts/stt/llm)."""
        if isinstance(message, Hello):
            raise LocalProtocolError("send hello with open_channel() or accept_hello()")
        self._send(message)

    def open_channel(
        self,
        now: float,
        *,
        features: dict[str, object] | None = None,
        audio_params: AudioParams = UPLINK_AUDIO,
        extra: dict[str, object] | None = None,
    ) -> None:
        """DEVICE: send hello (features default to {"mcp": true}; `extra` e.g. text_font) and wait."""
        self._require(Role.DEVICE, "open_channel")
        # Over WebSocket the firmware's hello carries its binary protocol version (the Protocol-Version header).
        version = HELLO_VERSION_MQTT if self.transport is AudioTransport.UDP else int(self.audio.ws_version)
        hello = Hello(version=version, transport=self.transport, features=features or {"mcp": True},
                      audio_params=audio_params.to_dict(), extra=extra or {})
        self._send(hello)
        self._hello_deadline = now + self._hello_timeout

    def wake_word_detected(self, text: str) -> None:
        """DEVICE: the wake word was heard. Open the channel and send its audio first (§5.1).

        In an open channel this sends `listen detect`; while listening or speaking it aborts with reason
        wake_word_detected instead. Either way a new turn starts in the default mode.
        """
        self._require(Role.DEVICE, "wake_word_detected")
        if self.state in (State.LISTENING, State.SPEAKING):
            self._send(Abort(reason=ABORT_REASON_WAKE_WORD))
        elif self.state is State.OPEN:
            self._send(Listen(state=ListenState.DETECT, text=text))
        else:
            raise LocalProtocolError(f"wake word while {self.state}: open the channel first")
        self._send(Listen(state=ListenState.START, mode=self.listen_mode))

    def start_listening(self, mode: ListenMode | None = None) -> None:
        """DEVICE: start a turn (manual for push-to-talk); interrupts speaking first, as the firmware does."""
        self._require(Role.DEVICE, "start_listening")
        if self.state is State.SPEAKING:
            self._send(Abort())
        self._send(Listen(state=ListenState.START, mode=mode or self.listen_mode))

    def stop_listening(self) -> None:
        """DEVICE: end a push-to-talk turn."""
        self._require(Role.DEVICE, "stop_listening")
        self._send(Listen(state=ListenState.STOP))

    def abort(self, reason: str | None = None) -> None:
        """DEVICE: ask the server to stop speaking."""
        self._send(Abort(reason=reason))

    def close(self, send_goodbye: bool = True) -> None:
        """Close the channel. Goodbye exists only on MQTT; a WebSocket transport closes its socket."""
        if self.state is State.IDLE:
            return
        if send_goodbye and self.transport is AudioTransport.UDP:
            self._send(Goodbye())
        else:
            self._apply(Input.GOODBYE, State.IDLE, None)

    def channel_lost(self) -> None:
        """The transport's link dropped: the channel is gone, no goodbye."""
        self._apply(Input.CHANNEL_LOST, State.IDLE, None)

    def accept_hello(
        self, session_id: str | None, *, udp: UdpParams | None = None,
        audio_params: Mapping[str, Any] | Literal[_Echo.DEVICE_AUDIO_PARAMS] | None = DEVICE_AUDIO_PARAMS,
    ) -> None:
        """SERVER: answer the device's hello.

        `session_id` None: a hello without one, as the reference gateway relays a platform's that had none.
        `audio_params`: the device's own by default (as xiaozhi-server); a gateway passes the chat server's,
        and None leaves them out (a server hello without them).
        """
        self._require(Role.SERVER, "accept_hello")
        if self.transport is AudioTransport.UDP and udp is None:
            raise LocalProtocolError("a udp channel needs udp parameters in the server hello")
        device = self.peer_hello
        hello = Hello(
            version=device.version if device else HELLO_VERSION_MQTT,
            session_id=session_id,
            transport=self.transport,
            udp=udp,
            audio_params=(device.audio_params if device else None) if audio_params is DEVICE_AUDIO_PARAMS
            else audio_params,
        )
        self._send(hello)

    def reject_hello(self, message: str = HELLO_REJECTED_TEXT) -> None:
        """SERVER: the hello cannot be served (the gateway could not reach a chat server)."""
        self._require(Role.SERVER, "reject_hello")
        if self.state is not State.CONNECTING:
            raise LocalProtocolError(f"no hello to reject while {self.state}")
        self._send(Error(message=message))

    # --- internals ----------------------------------------------------------------------------

    def _send(self, message: Message) -> None:
        if self.role not in message.SENDERS:
            raise LocalProtocolError(f"a {self.role} does not send {message.TYPE!r}")
        if message.session_id is None and not isinstance(message, Hello):
            session_id = self.session_id if self.role is Role.SERVER else (self.session_id or "")
            if session_id is not None:
                message = replace(message, session_id=session_id)
        kind = classify(message, self.role, self.state, self._mode)
        target = None if kind is None else self._target(kind, local=True)
        self._outbox.append(message.to_json())
        if kind is not None and target is not None:  # None: a message that does not move the conversation
            self._apply(kind, target, message)

    def _target(self, kind: Input, *, local: bool) -> State:
        target = TRANSITIONS[self.state].get(kind)
        if target is None:
            error = LocalProtocolError if local else UnexpectedMessage
            raise error(f"{kind} is not allowed while {self.state}")
        return target

    def _apply(self, kind: Input, target: State, message: Message | None) -> None:
        if kind is Input.SERVER_HELLO and isinstance(message, Hello):
            self.session_id = message.session_id or ""  # the firmware keeps a stale one; "" is clearer
            self.audio.start(message.udp)
            if self.role is Role.DEVICE:
                self.peer_hello = message
        elif kind is Input.HELLO and isinstance(message, Hello):
            # Forget the old session at once, so its late goodbye cannot end the new hello.
            self.session_id = None
            self.audio.stop()
            if self.role is Role.SERVER:
                self.peer_hello = message
        elif kind is Input.LISTEN_START and isinstance(message, Listen) and message.mode is not None:
            self._mode = message.mode
        if target is State.IDLE:
            self.audio.stop()
        if target is State.LISTENING:
            self._early_audio.clear()  # only what precedes the next tts start counts as early
        old, self.state = self.state, target
        if old is not target:
            self._events.append(SessionStateChanged(old, target))

    def _goodbye_applies(self, message: Goodbye) -> bool:
        """Only a SERVER acts on every goodbye; a DEVICE checks the session id (§5.2)."""
        if self.role is Role.SERVER:
            return True
        # Firmware acts only on its own session id (78 PR #2023: a stray goodbye must not end a live
        # conversation). py-xiaozhi also takes a goodbye without one; we do so while connecting, where it
        # is how the official cloud rejects a hello (78#1568), rather than wait 10 s for nothing, and when
        # the server's hello gave no session id: then there is nothing to match, and the reference gateway
        # ends such a session with a goodbye without one (the firmware would wait out its 120 s timer).
        if message.session_id is None:
            return self.state is State.CONNECTING or self.session_id == ""
        return message.session_id == self.session_id

    def _check_server_hello(self, hello: Hello) -> None:
        """The firmware's ParseServerHello: our transport, and for udp a complete `udp` object (§3.4)."""
        if hello.transport != self.transport:
            raise InvalidMessage(f"server hello for transport {hello.transport!r}, expected {self.transport}")
        if self.transport is AudioTransport.UDP and hello.udp is None:
            raise InvalidMessage("server hello without udp parameters")

    def _resumes_with_listen_start(self) -> bool:
        return self.role is Role.DEVICE and self._mode is ListenMode.AUTO

    def _require(self, role: Role, intent: str) -> None:
        if self.role is not role:
            raise LocalProtocolError(f"{intent}() is a {role} intent; this session is a {self.role}")

