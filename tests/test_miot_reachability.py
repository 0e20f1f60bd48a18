"""The LAN-reachability memory as a pure schedule: how long a failed device's LAN is skipped, and what
clears it."""

from __future__ import annotations

from pibuddy.drivers.miot.reachability import LanReachability
from pibuddy.errors import DeviceUnreachable, TokenInvalid

OFFLINE = DeviceUnreachable("desk lamp does not answer")
WRONG_TOKEN = TokenInvalid("desk lamp ignores commands")


def test_failures_are_skipped_for_a_doubling_capped_while() -> None:
    memory = LanReachability(first=10, maximum=30)
    delays = [memory.failed("lamp", OFFLINE, now=0) for _ in range(4)]
    assert 5 <= delays[0] <= 10
    assert 10 <= delays[1] <= 20
    assert all(15 <= d <= 30 for d in delays[2:])
    assert memory.skipped("lamp", now=delays[-1] - 0.01) is OFFLINE
    assert memory.skipped("lamp", now=delays[-1]) is None  # due for another try
    assert memory.skipped("fan", now=0) is None


def test_an_answer_clears_the_memory_and_restarts_the_schedule() -> None:
    memory = LanReachability(first=10, maximum=600)
    memory.failed("lamp", OFFLINE, now=0)
    memory.failed("lamp", OFFLINE, now=0)
    memory.answered("lamp")
    assert memory.skipped("lamp", now=0) is None
    assert memory.failed("lamp", OFFLINE, now=0) <= 10


def test_a_hello_reply_clears_offline_but_not_a_wrong_token() -> None:
    memory = LanReachability()
    memory.failed("lamp", OFFLINE, now=0)
    memory.failed("fan", WRONG_TOKEN, now=0)
    memory.answered_hello("lamp")
    memory.answered_hello("fan")
    assert memory.skipped("lamp", now=1) is None
    assert memory.skipped("fan", now=1) is WRONG_TOKEN
