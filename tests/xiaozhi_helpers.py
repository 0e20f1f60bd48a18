"""A DEVICE session wired to a SERVER session in memory (after h11's tests/helpers.py ConnectionPair)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pibuddy.xiaozhi import (
    AudioFrame,
    AudioTransport,
    ListenMode,
    Message,
    Role,
    Session,
    SessionEvent,
    UdpParams,
    WsProtocolVersion,
    make_nonce,
    parse_message,
)

KEY = bytes(range(16))
SSRC = 0x12345678
UDP = UdpParams(server="127.0.0.1", port=8884, key=KEY, nonce=make_nonce(SSRC))

Intent = Callable[[Session], Any]


class SessionPair:
    """`send(role, msgs)` makes one side send, carries its JSON to the other side and returns its events."""

    def __init__(
        self,
        *,
        transport: AudioTransport = AudioTransport.UDP,
        listen_mode: ListenMode = ListenMode.AUTO,
        ws_version: WsProtocolVersion = WsProtocolVersion.V1,
    ) -> None:
        self.transport = transport
        self.device = Session(Role.DEVICE, transport=transport, listen_mode=listen_mode, ws_version=ws_version)
        self.server = Session(Role.SERVER, transport=transport, ws_version=ws_version)
        self.now = 0.0
        self.sender_events: list[SessionEvent] = []
        """What the sending side itself reported during the last `send` (its own state changes)."""

    def session(self, role: Role) -> Session:
        return self.device if role is Role.DEVICE else self.server

    def peer(self, role: Role) -> Session:
        return self.server if role is Role.DEVICE else self.device

    def send(
        self,
        role: Role,
        msgs: Message | Sequence[Message] | Intent,
        expect: Literal["match"] | Sequence[str] | None = "match",
    ) -> list[SessionEvent]:
        """Send `msgs` (messages, or an intent called on `role`'s session) and deliver them to the peer.

        expect="match": the peer parsed exactly the messages sent (session ids aside, which the sender
        stamps); a sequence of strings: the exact JSON texts on the wire; None: no check.
        Returns the events the peer reported; the sender's own land in `sender_events`.
        """
        sender, receiver = self.session(role), self.peer(role)
        sent: list[Message] | None = None
        if callable(msgs):
            msgs(sender)
        else:
            sent = [msgs] if isinstance(msgs, Message) else list(msgs)
            for message in sent:
                sender.send(message)
        wire = sender.messages_to_send()
        self.sender_events = sender.events_received()
        if expect == "match":
            assert sent is not None, "expect='match' needs messages, not an intent"
            assert [_comparable(parse_message(text)) for text in wire] == [_comparable(m) for m in sent]
        elif expect is not None:
            assert wire == list(expect)
        for text in wire:
            receiver.receive_json(text, self.now)
        return receiver.events_received()

    def open(self, session_id: str | None = "S1", **accept: Any) -> None:
        """Run the hello exchange and drop the events it produced."""
        self.send(Role.DEVICE, lambda s: s.open_channel(self.now), expect=None)
        udp = UDP if self.transport is AudioTransport.UDP else None
        self.send(Role.SERVER, lambda s: s.accept_hello(session_id, udp=udp, **accept), expect=None)
        self.device.events_received()
        self.server.events_received()

    def audio(self, role: Role, payload: bytes, timestamp: int = 0) -> AudioFrame | None:
        """`role` sends one Opus frame; returns what the peer's session lets through."""
        data = self.session(role).send_audio(payload, timestamp)
        return self.peer(role).receive_audio(data, self.now)


def _comparable(message: Message) -> dict[str, Any]:
    wire = message.to_dict()
    wire.pop("session_id", None)
    return wire
