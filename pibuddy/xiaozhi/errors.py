"""Two-sided protocol errors, in the manner of h11: whose fault it was decides who gets told.

`LocalProtocolError`: our own code asked for something the protocol forbids (a bug on our side).
`RemoteProtocolError`: the peer sent something we cannot accept; the transport logs one line and drops it,
or closes the link, according to its error table.

`hint` is the WebSocket close code the transport may use if it decides to close over this error
(1003 unsupported data, 1007 invalid payload, 1008 policy violation, 1009 too big, 1011 internal error);
transports without close codes (MQTT, UDP) map the class themselves.
"""

from __future__ import annotations

from typing import ClassVar

from pibuddy.errors import PiBuddyError


class ProtocolError(PiBuddyError):
    """Base of both sides' protocol errors; raise one of the subclasses, never this class itself."""

    default_hint: ClassVar[int] = 1002

    def __init__(self, reason: str, *, hint: int | None = None) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError, not ProtocolError")
        super().__init__(reason)
        self.reason = reason
        self.hint = self.default_hint if hint is None else hint


class LocalProtocolError(ProtocolError):
    """Our side tried to send or do something the protocol or the current state does not allow."""

    default_hint = 1011


class RemoteProtocolError(ProtocolError):
    """The peer sent something malformed, oversized or out of place."""


class MalformedPacket(RemoteProtocolError):
    """A binary packet (UDP datagram or WebSocket audio frame) does not parse."""

    default_hint = 1003


class MessageTooLarge(RemoteProtocolError):
    """A JSON message exceeds the size cap; it was rejected before parsing."""

    default_hint = 1009


class BadJson(RemoteProtocolError):
    """A control message is not JSON, or not a JSON object."""

    default_hint = 1007


class InvalidMessage(RemoteProtocolError):
    """A JSON object that is not a valid xiaozhi message: missing or mistyped `type` or fields.

    `message_type` is its `type` when that was a string: a relay forwards what it does not act on anyway.
    """

    default_hint = 1008
    message_type: str | None = None


class UnexpectedMessage(RemoteProtocolError):
    """A valid message that the peer may not send now (wrong direction or illegal in this state)."""

    default_hint = 1008
