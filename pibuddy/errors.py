"""The root of PiBuddy's exception tree and the errors shared by several packages.

Foreign exceptions (OSError, httpx, aiomqtt, miio ...) are converted into these exactly once,
at the driver or transport boundary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class PiBuddyError(Exception):
    """Root of every error PiBuddy raises on purpose."""

    log_level: ClassVar[int] = logging.WARNING
    """How loud the supervisor says it the first time (ERROR: the user must change something)."""


class ConfigError(PiBuddyError):
    """The configuration file is missing, unreadable or invalid.

    `problems` holds one human-readable line per problem, each naming the key path.
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ConnectionLost(PiBuddyError):
    """A link to a peer dropped; raised out of iterators instead of ending them quietly."""


class Failure(StrEnum):
    """What a failed call means to the person who asked, said in one short sentence (`pibuddy.brain.excuses`);
    the error's message, with the detail, is for the log and the LLM."""

    UNREACHABLE = "unreachable"
    """It cannot be reached: nothing answers at its address, the network or the adapter is down."""
    REFUSED = "refused"
    """It refused PiBuddy's token or login."""
    NO_RESPONSE = "no_response"
    """It was reached, or asked, and said nothing in time."""
    NOT_SET_UP = "not_set_up"
    """PiBuddy has no token or login for it."""


class Party(StrEnum):
    """A service between PiBuddy and a device, named when it, not the device, is what failed."""

    HOME_ASSISTANT = "homeassistant"
    MI_CLOUD = "mi_cloud"
    BLUETOOTH = "bluetooth"


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a call failed, for the person who asked: `failure` of `party`, else of `device` (its name), else of
    the device the command was for."""

    failure: Failure
    party: Party | None = None
    device: str | None = None


class DriverError(PiBuddyError):
    """A driver could not do what a tool asked. `code` is a stable machine-readable reason.

    Args:
        message: the detail, for the log and the LLM ("desk lamp does not answer at 192.168.1.7: ...").
        party: the service that failed, when it is not the device (Home Assistant, the Mi cloud, Bluetooth).
        device: the device's name, when it is the device that failed.
    """

    code: str = "driver_error"
    failure: ClassVar[Failure | None] = None
    """What this error means to the person who asked; None: only its message says."""
    default_party: ClassVar[Party | None] = None
    """The party when none is given, for a leaf always about one service (the Mi cloud's session)."""

    def __init__(self, message: str, *, code: str | None = None, party: Party | None = None,
                 device: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.party = party or self.default_party
        self.device = device

    @property
    def cause(self) -> Cause | None:
        return None if self.failure is None else Cause(self.failure, self.party, self.device)


class DeviceUnreachable(DriverError):
    code = "device_unreachable"
    failure = Failure.UNREACHABLE


class DeviceNotResponding(DeviceUnreachable):
    """Reached (or asked) but silent: a device that does not answer, a service that does not answer in time."""

    code = "device_not_responding"
    failure = Failure.NO_RESPONSE


class AuthFailed(DriverError):
    code = "auth_failed"
    failure = Failure.REFUSED


class NotSetUp(AuthFailed):
    """No token or login is configured for it."""

    code = "not_set_up"
    failure = Failure.NOT_SET_UP


class TokenInvalid(DriverError):
    code = "token_invalid"
    failure = Failure.REFUSED


class NotFound(DriverError):
    code = "not_found"


class InvalidArguments(DriverError):
    code = "invalid_arguments"
