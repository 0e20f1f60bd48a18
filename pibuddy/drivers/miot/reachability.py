"""Which devices did not answer on the LAN lately, so calls go straight to the cloud for a while.

A LAN try at a silent device costs every attempt's timeout (3 x 1.5 s) before the cloud is asked. After a
failed try the device's LAN is skipped until a backoff delay has passed (about 30 s, doubling up to 10 min);
the first call after that tries the LAN again. A discovery hello reply clears an "offline" at once (a wrong
token stays wrong until a call proves otherwise). Pure: the caller passes the time in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pibuddy.backoff import Backoff
from pibuddy.errors import DeviceUnreachable, DriverError

_RETRY_FIRST_SECONDS: Final = 30.0
_RETRY_MAX_SECONDS: Final = 600.0


@dataclass(slots=True)
class _Failure:
    error: DriverError
    retry_at: float
    backoff: Backoff


class LanReachability:
    """Per device key: the last LAN failure and when the LAN is worth another try.

    Args:
        first: seconds to skip the LAN after a first failure (jittered into [first/2, first]).
        maximum: the longest skip, reached by doubling after each further failure.
    """

    def __init__(self, *, first: float = _RETRY_FIRST_SECONDS, maximum: float = _RETRY_MAX_SECONDS) -> None:
        self._first, self._maximum = first, maximum
        self._failures: dict[str, _Failure] = {}

    def skipped(self, key: str, now: float) -> DriverError | None:
        """The remembered LAN error while `key`'s LAN is not due for another try, else None."""
        failure = self._failures.get(key)
        return failure.error if failure is not None and now < failure.retry_at else None

    def failed(self, key: str, error: DriverError, now: float) -> float:
        """Remember a failed LAN try; returns the seconds until the LAN is tried again."""
        failure = self._failures.get(key)
        backoff = failure.backoff if failure else Backoff(initial=self._first, maximum=self._maximum)
        delay = backoff.next_delay()
        self._failures[key] = _Failure(error, now + delay, backoff)
        return delay

    def answered(self, key: str) -> None:
        """A LAN call went through: the LAN comes first again."""
        self._failures.pop(key, None)

    def answered_hello(self, key: str) -> None:
        """Discovery heard the device: if it was offline, it is back."""
        failure = self._failures.get(key)
        if failure is not None and isinstance(failure.error, DeviceUnreachable):
            del self._failures[key]
