"""The supervisor: restarts a crashing service with backoff while the others keep running, stops cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import pytest

from pibuddy.backoff import Backoff
from pibuddy.errors import ConnectionLost
from pibuddy.events import DeviceState, EventBus, ServiceStatus, StateChanged, WakeDetected
from pibuddy.supervisor import Health, Service, Supervisor
from pibuddy.systemd import Notifier
from tests.polling import eventually


class Ticker(Service):
    """A healthy service that counts while it serves."""

    name = "ticker"

    def __init__(self) -> None:
        self.ticks = 0
        self.stopped = 0

    async def start(self) -> None:
        pass

    async def serve(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.stopped += 1


class Crasher(Service):
    """Crashes shortly after each start."""

    name = "crasher"

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.stops = 0

    async def start(self) -> None:
        self.starts.append(asyncio.get_running_loop().time())

    async def serve(self) -> None:
        await asyncio.sleep(0.01)
        raise ConnectionError("peer went away")

    async def stop(self) -> None:
        self.stops += 1


class FailsToStart(Service):
    name = "broken"

    def __init__(self) -> None:
        self.attempts = 0

    async def start(self) -> None:
        self.attempts += 1
        raise OSError("address already in use")

    async def stop(self) -> None:
        pass


def _fast_backoff() -> Backoff:
    return Backoff(initial=0.02, maximum=0.08, rng=random.Random(1))


async def test_crashing_service_restarts_with_growing_delays_while_another_keeps_running() -> None:
    ticker, crasher = Ticker(), Crasher()
    bus = EventBus()
    statuses = bus.subscribe(maxsize=256)
    supervisor = Supervisor([ticker, crasher], bus=bus, backoff_factory=_fast_backoff)
    task = asyncio.create_task(supervisor.run())
    async with asyncio.timeout(5):
        while len(crasher.starts) < 5:  # noqa: ASYNC110 (polling a plain counter)
            await asyncio.sleep(0.01)
    ticks_mid = ticker.ticks
    await asyncio.sleep(0.1)
    assert ticker.ticks > ticks_mid, "the healthy service must keep running while the other crashes"
    assert ticker.stopped == 0
    assert crasher.stops >= 4, "a crashed service is stopped (cleaned up) before it is restarted"
    gaps = [b - a for a, b in zip(crasher.starts, crasher.starts[1:], strict=False)]
    assert gaps[0] >= 0.01 + 0.01  # serve time + at least half the first delay
    assert max(gaps) < 0.5, "delays are capped"
    supervisor.request_stop()
    await asyncio.wait_for(task, 5)
    assert ticker.stopped == 1
    seen = []
    while not statuses.queue.empty():
        event = statuses.queue.get_nowait()
        if isinstance(event, ServiceStatus) and event.service == "crasher":
            seen.append(event.status)
    assert "restarting" in seen
    assert "running" in seen


async def test_failed_start_does_not_block_readiness_or_the_others() -> None:
    broken, ticker = FailsToStart(), Ticker()
    supervisor = Supervisor([broken, ticker], bus=EventBus(), backoff_factory=_fast_backoff)
    task = asyncio.create_task(supervisor.run())
    async with asyncio.timeout(5):
        while broken.attempts < 3 or ticker.ticks < 3:  # noqa: ASYNC110 (polling plain counters)
            await asyncio.sleep(0.01)
    health = supervisor.health()
    assert health["ticker"].ok
    assert not health["broken"].ok
    supervisor.request_stop()
    await asyncio.wait_for(task, 5)


def test_backoff_grows_caps_jitters_and_resets_after_a_healthy_run() -> None:
    backoff = Backoff(initial=1, maximum=8, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays), "jitter spreads the retries"
    assert backoff.next_delay(healthy_for=120) <= 1


@pytest.mark.parametrize("count", [3])
async def test_event_bus_snapshot_and_bounded_queues(count: int) -> None:
    bus = EventBus()
    bus.set_state(DeviceState.IDLE)
    bus.publish(WakeDetected("hey"))  # not sticky: late subscribers do not see it
    bus.set_state(DeviceState.LISTENING)
    late = bus.subscribe(maxsize=count)
    first = late.queue.get_nowait()
    assert first == StateChanged(DeviceState.IDLE, DeviceState.LISTENING)
    assert late.queue.empty()
    for _ in range(count + 2):
        bus.publish(WakeDetected("hey"))
    assert late.queue.qsize() == count
    assert late.dropped == 2
    bus.set_state(DeviceState.LISTENING)  # no change, no event
    assert late.queue.qsize() == count


async def test_a_service_may_bring_its_own_restart_schedule() -> None:
    crasher = Crasher()
    crasher.backoff = Backoff(initial=0.3, maximum=0.3, rng=random.Random(2))  # slower than the default below
    supervisor = Supervisor([crasher], bus=EventBus(), backoff_factory=_fast_backoff)
    task = asyncio.create_task(supervisor.run())
    async with asyncio.timeout(5):
        while len(crasher.starts) < 2:  # noqa: ASYNC110 (polling a plain counter)
            await asyncio.sleep(0.01)
    supervisor.request_stop()
    await asyncio.wait_for(task, 5)
    first_gap = crasher.starts[1] - crasher.starts[0]
    assert first_gap >= 0.15, "the service's own delay (0.15-0.3 s), not the default's 0.01-0.02 s"


class HangsOnStart(Service):
    name = "hangs"

    async def start(self) -> None:
        await asyncio.Event().wait()

    async def stop(self) -> None:
        pass


async def test_a_start_that_hangs_does_not_hold_back_readiness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pibuddy.supervisor._READY_WAIT_SECONDS", 0.2)
    ready = asyncio.Event()

    class Recorder(Notifier):
        def ready(self) -> None:
            ready.set()

    supervisor = Supervisor([HangsOnStart(), Ticker()], bus=EventBus(), notifier=Recorder({}))
    task = asyncio.create_task(supervisor.run())
    await asyncio.wait_for(ready.wait(), 5)
    supervisor.request_stop()
    await asyncio.wait_for(task, 5)


class Degraded(Ticker):
    """Runs, but is not well (as the BLE driver while Bluetooth is away)."""

    name = "degraded"
    healthy = True

    def health(self) -> Health:
        return Health(self.healthy, "" if self.healthy else "Bluetooth is unavailable")


class BrokenHealth(Ticker):
    name = "broken-health"

    def health(self) -> Health:
        raise RuntimeError("oops")


async def test_systemd_status_shows_which_running_service_is_not_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pibuddy.supervisor.STATUS_REFRESH_SECONDS", 0.05)
    lines: list[str] = []

    class Recorder(Notifier):
        def status(self, text: str) -> None:
            lines.append(text)

    degraded = Degraded()
    supervisor = Supervisor([degraded, BrokenHealth()], bus=EventBus(), notifier=Recorder({}))
    task = asyncio.create_task(supervisor.run())
    try:
        await eventually(lambda: bool(lines) and "degraded running;" in lines[-1])
        assert "broken-health running, not ok (health() failed: RuntimeError: oops)" in lines[-1]
        degraded.healthy = False  # no event says so: the periodic refresh must notice
        await eventually(lambda: "degraded running, not ok (Bluetooth is unavailable)" in lines[-1])
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(task, 5)


class LinkDown(Ticker):
    """A service whose peer is away: PiBuddy's own error, with a message for the user."""

    name = "linkdown"

    async def serve(self) -> None:
        raise ConnectionLost("cannot reach the xiaozhi OTA server at https://example.invalid (DNS)")


async def test_a_peer_that_is_away_is_a_warning_then_quiet_and_a_bug_is_an_error_with_its_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    crasher, link = Crasher(), LinkDown()
    supervisor = Supervisor([crasher, link], bus=EventBus(), backoff_factory=_fast_backoff)
    with caplog.at_level(logging.INFO, logger="pibuddy.supervisor"):
        task = asyncio.create_task(supervisor.run())
        await eventually(lambda: len([r for r in caplog.records if "linkdown" in r.getMessage()]) >= 4)
        supervisor.request_stop()
        await asyncio.wait_for(task, 5)
    link_lines = [r for r in caplog.records
                  if r.getMessage().startswith("service linkdown") and "is running" not in r.getMessage()]
    assert link_lines[0].levelno == logging.WARNING
    assert "cannot reach the xiaozhi OTA server" in link_lines[0].getMessage()
    assert {r.levelno for r in link_lines[1:]} == {logging.INFO}, "the same reason again is not a new warning"
    assert all(r.exc_info is None for r in link_lines)
    bug = next(r for r in caplog.records if r.getMessage().startswith("service crasher crashed"))
    assert bug.levelno == logging.ERROR
    assert bug.exc_info is not None, "a bug's traceback goes to the journal"


class Exits(Service):
    """Raises what uvicorn and a stray Ctrl-C handler raise: exceptions that end a process, not a service."""

    def __init__(self, error: BaseException) -> None:
        self.name = f"raises-{type(error).__name__}"
        self.error = error
        self.serves = 0

    async def start(self) -> None:
        pass

    async def serve(self) -> None:
        self.serves += 1
        raise self.error

    async def stop(self) -> None:
        pass


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt()])
async def test_an_exception_that_ends_processes_only_fails_its_service(
        error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    exits, ticker = Exits(error), Ticker()
    supervisor = Supervisor([exits, ticker], bus=EventBus(), backoff_factory=_fast_backoff)
    task = asyncio.create_task(supervisor.run())
    await eventually(lambda: exits.serves >= 3)
    assert not task.done(), "the supervisor keeps running"
    ticks = ticker.ticks
    await eventually(lambda: ticker.ticks > ticks)
    supervisor.request_stop()
    await asyncio.wait_for(task, 5)
    crashes = [r for r in caplog.records if r.levelno == logging.ERROR and exits.name in r.getMessage()]
    assert crashes
    assert type(error).__name__ in crashes[0].getMessage()


async def test_a_failure_the_user_must_fix_is_one_error_then_info_and_the_service_is_failed(
        caplog: pytest.LogCaptureFixture) -> None:
    from pibuddy.ports import PortInUse  # noqa: PLC0415

    class PortTaken(FailsToStart):
        async def start(self) -> None:
            self.attempts += 1
            raise PortInUse(port=1883, kind="tcp", setting="gateway.mqtt_port", holder="mosquitto (pid 7)")

    caplog.set_level(logging.INFO, "pibuddy.supervisor")
    taken = PortTaken()
    supervisor = Supervisor([taken], bus=EventBus(), backoff_factory=_fast_backoff)
    task = asyncio.create_task(supervisor.run())
    await eventually(lambda: taken.attempts >= 4)
    assert supervisor.health()["broken"] == Health(False, "failed")
    supervisor.request_stop()
    await asyncio.wait_for(task, 5)
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "pibuddy.supervisor"
             and "1883" in r.getMessage()]
    assert [level for level, _ in lines[:3]] == [logging.ERROR, logging.INFO, logging.INFO]
    assert "TCP port 1883 is already in use by mosquitto (pid 7); stop that program or set gateway.mqtt_port" in (
        lines[0][1])
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.INFO)


class SwallowsCancelInStart(Service):
    """A start() that returns when cancelled, as aiomqtt's publish does on Python 3.11 when the cancel arrives as
    the broker's ack does (asyncio.wait_for then returns the result): seen leaving `pibuddy run` up after SIGTERM."""

    name = "swallows-in-start"

    def __init__(self) -> None:
        self.starting = asyncio.Event()
        self.serves = 0
        self.stops = 0

    async def start(self) -> None:
        self.starting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return

    async def serve(self) -> None:
        self.serves += 1
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stops += 1


async def test_a_stop_during_a_start_that_swallows_the_cancel_ends_the_service_without_serving() -> None:
    notified: list[str] = []

    class Recorder(Notifier):
        def ready(self) -> None:
            notified.append("READY=1")

        def stopping(self) -> None:
            notified.append("STOPPING=1")

    service, ticker = SwallowsCancelInStart(), Ticker()
    bus = EventBus()
    with bus.subscribe() as events:
        supervisor = Supervisor([service, ticker], bus=bus, notifier=Recorder({}))
        task = asyncio.create_task(supervisor.run())
        await asyncio.wait_for(service.starting.wait(), 5)
        supervisor.request_stop()
        await asyncio.wait_for(task, 5)
        statuses = []
        while not events.queue.empty():
            event = events.queue.get_nowait()
            if isinstance(event, ServiceStatus):
                statuses.append((event.service, event.status))
    assert service.serves == 0, "a service asked to stop while starting does not go on to serve"
    assert (service.name, "running") not in statuses
    assert service.stops == 1
    assert notified == ["STOPPING=1"], "a stop during start-up is no READY=1"


class SwallowsCancels(Service):
    """A serve() that goes on after `swallow` cancellations (an awaited library call that returned instead)."""

    def __init__(self, swallow: int) -> None:
        self.name = f"swallows-{swallow}"
        self.swallow = swallow
        self.cancels = 0
        self.stops = 0

    async def start(self) -> None:
        pass

    async def serve(self) -> None:
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancels += 1
                if self.cancels > self.swallow:
                    raise

    async def stop(self) -> None:
        self.stops += 1


async def test_a_serve_that_swallowed_a_cancel_is_cancelled_again(caplog: pytest.LogCaptureFixture) -> None:
    service = SwallowsCancels(swallow=2)
    supervisor = Supervisor([service], bus=EventBus())
    task = asyncio.create_task(supervisor.run())
    await eventually(lambda: supervisor.health()[service.name].ok)
    supervisor.request_stop()
    await asyncio.wait_for(task, 5)
    assert service.cancels == 3
    assert service.stops == 1
    assert not [r for r in caplog.records if "did not end when cancelled" in r.getMessage()]


async def test_a_service_that_ignores_cancellation_is_stopped_anyway(caplog: pytest.LogCaptureFixture) -> None:
    service, ticker = SwallowsCancels(swallow=1_000_000), Ticker()
    supervisor = Supervisor([service, ticker], bus=EventBus())
    task = asyncio.create_task(supervisor.run())
    await eventually(lambda: supervisor.health()[service.name].ok)
    supervisor.request_stop()
    await asyncio.wait_for(task, 10)  # the supervisor gives up on it after 1.5 s of its 4.5 s to stop
    assert service.cancels > 1, "cancelled again while it ignored the first"
    assert (service.stops, ticker.stopped) == (1, 1), "every service's stop() still ran"
    [warning] = [r for r in caplog.records if "did not end when cancelled" in r.getMessage()]
    assert warning.getMessage() == "service swallows-1000000 did not end when cancelled; stopping it anyway"
    [left] = [t for t in asyncio.all_tasks() if t.get_name() == service.name]
    service.swallow = 0
    left.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(left, 5)
