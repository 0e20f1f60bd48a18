"""The conversation state machine as data: states, the inputs that move them, and the table.

Both ends of a conversation run the same table: what a device sends is what a server receives. An input
missing from a state's row is illegal there; `Session` raises `LocalProtocolError` when our side would
make the move and `UnexpectedMessage` (a `RemoteProtocolError`) when the peer did.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pibuddy.xiaozhi.const import Role
from pibuddy.xiaozhi.messages import (
    Abort,
    Error,
    Goodbye,
    Hello,
    Listen,
    ListenMode,
    ListenState,
    Message,
    Tts,
    TtsState,
    UdpTimeout,
)


class State(StrEnum):
    """Where a conversation stands, the same on both ends of it."""

    IDLE = "idle"
    """No audio channel."""
    CONNECTING = "connecting"
    """The device hello is out, the server's hello is not yet back."""
    OPEN = "open"
    """Channel open, neither listening nor speaking (manual mode between turns)."""
    LISTENING = "listening"
    SPEAKING = "speaking"


class Input(StrEnum):
    """What moves a conversation: a message, sent or received, or something that happened locally."""

    HELLO = "hello"
    """The device's hello."""
    SERVER_HELLO = "server_hello"
    HELLO_REJECTED = "hello_rejected"
    """An `error` message while connecting (the gateway's answer to a failed hello)."""
    LISTEN_START = "listen_start"
    LISTEN_STOP = "listen_stop"
    LISTEN_DETECT = "listen_detect"
    ABORT = "abort"
    TTS_START = "tts_start"
    TTS_STOP = "tts_stop"
    """tts stop in auto or realtime mode: back to listening."""
    TTS_STOP_MANUAL = "tts_stop_manual"
    """tts stop in manual mode: back to idle with the channel kept open."""
    GOODBYE = "goodbye"
    """goodbye or udp_timeout, either way, or a local close without one."""
    HELLO_TIMEOUT = "hello_timeout"
    CHANNEL_TIMEOUT = "channel_timeout"
    CHANNEL_LOST = "channel_lost"
    """The transport's link dropped (WebSocket closed, MQTT disconnected)."""


def _open_moves(stay: State, overrides: dict[Input, State] | None = None) -> dict[Input, State]:
    """The moves all three open states share; `stay` is the state itself."""
    moves = {
        Input.HELLO: State.CONNECTING,  # a new hello replaces the session (the gateway restarts the bridge)
        Input.LISTEN_START: State.LISTENING,
        Input.LISTEN_DETECT: stay,
        Input.ABORT: stay,  # the server answers with tts stop
        Input.TTS_START: State.SPEAKING,
        Input.TTS_STOP: stay,  # firmware acts on tts stop only while speaking
        Input.TTS_STOP_MANUAL: stay,
        Input.GOODBYE: State.IDLE,
        Input.CHANNEL_TIMEOUT: State.IDLE,
        Input.CHANNEL_LOST: State.IDLE,
    }
    return moves | (overrides or {})


TRANSITIONS: Final[dict[State, dict[Input, State]]] = {
    State.IDLE: {
        Input.HELLO: State.CONNECTING,
        Input.GOODBYE: State.IDLE,  # the gateway's echo of our own goodbye
        Input.TTS_STOP: State.IDLE,  # a late tts stop after we closed
        Input.TTS_STOP_MANUAL: State.IDLE,
        Input.CHANNEL_LOST: State.IDLE,
    },
    State.CONNECTING: {
        Input.HELLO: State.CONNECTING,
        Input.SERVER_HELLO: State.OPEN,
        Input.HELLO_REJECTED: State.IDLE,
        Input.HELLO_TIMEOUT: State.IDLE,
        Input.GOODBYE: State.IDLE,
        Input.CHANNEL_LOST: State.IDLE,
    },
    State.OPEN: _open_moves(State.OPEN),
    State.LISTENING: _open_moves(State.LISTENING, {Input.LISTEN_STOP: State.OPEN}),
    State.SPEAKING: _open_moves(
        State.SPEAKING, {Input.TTS_STOP: State.LISTENING, Input.TTS_STOP_MANUAL: State.OPEN}
    ),
}
_LISTEN_INPUTS: Final = {
    ListenState.START: Input.LISTEN_START,
    ListenState.STOP: Input.LISTEN_STOP,
    ListenState.DETECT: Input.LISTEN_DETECT,
}


def classify(message: Message, sender: Role, state: State, mode: ListenMode) -> Input | None:
    """The input a message is, sent by `sender` in `state` during a turn in `mode`; None: it moves nothing."""
    match message:
        case Hello():
            return Input.HELLO if sender is Role.DEVICE else Input.SERVER_HELLO
        case Listen():
            return _LISTEN_INPUTS[message.state]
        case Abort():
            return Input.ABORT
        case Tts(state=TtsState.START):
            return Input.TTS_START
        case Tts(state=TtsState.STOP):
            return Input.TTS_STOP_MANUAL if mode is ListenMode.MANUAL else Input.TTS_STOP
        case Goodbye() | UdpTimeout():
            return Input.GOODBYE
        case Error() if state is State.CONNECTING:
            return Input.HELLO_REJECTED
    return None
