"""The root of PiBuddy's exception tree and the errors shared by several packages.

Foreign exceptions (OSError, httpx, aiomqtt, miio ...) are converted into these exactly once,
at the driver or transport boundary.
"""

from __future__ import annotations

import logging
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


class DriverError(PiBuddyError):
    """A driver could not do what a tool asked. `code` is a stable machine-readable reason."""

    code: str = "driver_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message


class DeviceUnreachable(DriverError):
    code = "device_unreachable"


class AuthFailed(DriverError):
    code = "auth_failed"


class TokenInvalid(DriverError):
    code = "token_invalid"


class NotFound(DriverError):
    code = "not_found"


class InvalidArguments(DriverError):
    code = "invalid_arguments"
