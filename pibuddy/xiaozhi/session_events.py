"""What a `Session` reports: typed events, drained with `Session.events_received()`.

Events about a received message carry the whole message, so nothing is lost (`glyph_push` on an `stt`
or a `sentence_start` stays in `message.extra`); the common fields have properties.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.xiaozhi.const import Role
from pibuddy.xiaozhi.messages import (
    Abort,
    Alert,
    AudioParams,
    Custom,
    Error,
    Goodbye,
    Hello,
    Iot,
    Listen,
    Llm,
    Mcp,
    Message,
    Ping,
    Pong,
    Stt,
    System,
    Tts,
    TtsState,
    UdpTimeout,
    UnknownMessage,
)
from pibuddy.xiaozhi.states import State


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """Base of every session event."""


@dataclass(frozen=True, slots=True)
class SessionStateChanged(SessionEvent):
    old: State
    new: State


@dataclass(frozen=True, slots=True)
class HelloTimedOut(SessionEvent):
    """The server's hello did not come in time; the device is idle again."""


@dataclass(frozen=True, slots=True)
class ChannelTimedOut(SessionEvent):
    """Nothing came from the server for the channel timeout; the channel is abandoned without goodbye."""


@dataclass(frozen=True, slots=True)
class HelloReceived(SessionEvent):
    """SERVER role: a device asks for a channel; answer with `accept_hello()` or `reject_hello()`."""

    message: Hello


@dataclass(frozen=True, slots=True)
class ServerHelloReceived(SessionEvent):
    """DEVICE role: the channel is open; `downlink` is how to decode the server's audio."""

    message: Hello
    downlink: AudioParams

    @property
    def session_id(self) -> str:
        return self.message.session_id or ""


@dataclass(frozen=True, slots=True)
class GoodbyeReceived(SessionEvent):
    """The peer closed the channel (goodbye, or udp_timeout from a device)."""

    message: Message


@dataclass(frozen=True, slots=True)
class GoodbyeIgnored(SessionEvent):
    """DEVICE role: a goodbye for another session (or none) was not acted on (§5.2)."""

    message: Message


@dataclass(frozen=True, slots=True)
class ListenReceived(SessionEvent):
    message: Listen


@dataclass(frozen=True, slots=True)
class AbortReceived(SessionEvent):
    message: Abort


@dataclass(frozen=True, slots=True)
class TtsStarted(SessionEvent):
    message: Tts


@dataclass(frozen=True, slots=True)
class TtsStopped(SessionEvent):
    message: Tts


@dataclass(frozen=True, slots=True)
class SentenceStarted(SessionEvent):
    message: Tts

    @property
    def text(self) -> str:
        return self.message.text or ""


@dataclass(frozen=True, slots=True)
class SentenceEnded(SessionEvent):
    message: Tts


@dataclass(frozen=True, slots=True)
class SttReceived(SessionEvent):
    message: Stt

    @property
    def text(self) -> str | None:
        return self.message.text


@dataclass(frozen=True, slots=True)
class LlmEmotion(SessionEvent):
    message: Llm

    @property
    def emotion(self) -> str | None:
        return self.message.emotion


@dataclass(frozen=True, slots=True)
class McpReceived(SessionEvent):
    """A JSON-RPC object: requests for the device's MCP server, or a device's answers."""

    message: Mcp

    @property
    def payload(self) -> Mapping[str, Any]:
        return self.message.payload


@dataclass(frozen=True, slots=True)
class AlertReceived(SessionEvent):
    message: Alert


@dataclass(frozen=True, slots=True)
class SystemCommand(SessionEvent):
    message: System

    @property
    def command(self) -> str | None:
        return self.message.command


@dataclass(frozen=True, slots=True)
class CustomReceived(SessionEvent):
    message: Custom


@dataclass(frozen=True, slots=True)
class ErrorReceived(SessionEvent):
    """The firmware ignores these; while connecting we take one as a rejected hello."""

    message: Error


@dataclass(frozen=True, slots=True)
class IotReceived(SessionEvent):
    message: Iot


@dataclass(frozen=True, slots=True)
class PingReceived(SessionEvent):
    message: Ping


@dataclass(frozen=True, slots=True)
class PongReceived(SessionEvent):
    message: Pong


@dataclass(frozen=True, slots=True)
class UnknownReceived(SessionEvent):
    """A message type we do not know; log it once and move on (a relay forwards `message`)."""

    message: UnknownMessage


_EVENT_CLASSES: Final[dict[type[Message], Callable[[Any], SessionEvent]]] = {
    Listen: ListenReceived,
    Abort: AbortReceived,
    Goodbye: GoodbyeReceived,
    UdpTimeout: GoodbyeReceived,
    Stt: SttReceived,
    Llm: LlmEmotion,
    Mcp: McpReceived,
    Alert: AlertReceived,
    System: SystemCommand,
    Custom: CustomReceived,
    Error: ErrorReceived,
    Iot: IotReceived,
    Ping: PingReceived,
    Pong: PongReceived,
    UnknownMessage: UnknownReceived,
}
_TTS_EVENTS: Final[dict[TtsState, Callable[[Tts], SessionEvent]]] = {
    TtsState.START: TtsStarted,
    TtsState.STOP: TtsStopped,
    TtsState.SENTENCE_START: SentenceStarted,
    TtsState.SENTENCE_END: SentenceEnded,
}


def event_for(message: Message, receiver: Role) -> SessionEvent:
    """The event a received message becomes (a hello's depends on who receives it)."""
    if isinstance(message, Hello):
        if receiver is Role.DEVICE:
            return ServerHelloReceived(message, AudioParams.downlink(message.audio_params))
        return HelloReceived(message)
    if isinstance(message, Tts):
        return _TTS_EVENTS[message.state](message)
    return _EVENT_CLASSES[type(message)](message)
