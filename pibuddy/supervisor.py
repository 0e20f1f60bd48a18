"""Runs PiBuddy's services in one asyncio process and keeps them running.

Each service is started, served and, if it crashes, stopped and restarted after a capped exponential
backoff with jitter, while the others keep running. systemd hears READY=1 once every service has had its
first start, WATCHDOG=1 from the event loop, STATUS= lines and STOPPING=1. SIGTERM/SIGINT stop
everything within `_STOP_TIMEOUT_SECONDS`, at any moment, even during a start.

A cancelled service may swallow its cancellation: on Python 3.11, `asyncio.wait_for` returns its result instead
of raising when the cancel arrives as the awaited operation completes, and aiomqtt awaits every publish so (a
SIGTERM while the Home Assistant MQTT service published its discovery left `pibuddy run` serving for ever). So
a runner re-raises a cancellation its service swallowed, and shutdown cancels again until the runners end.

Reconnect loops live here, not inside every client: a client's `serve()` raises `ConnectionLost` and
the supervisor brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.backoff import Backoff
from pibuddy.errors import PiBuddyError
from pibuddy.events import (
    ActiveBrain,
    EventBus,
    RestartRequested,
    ServiceHealth,
    ServicesHealth,
    ServiceStatus,
    StateChanged,
)
from pibuddy.heap import release_free_heap
from pibuddy.systemd import Notifier

_LOGGER = logging.getLogger(__name__)
_STOP_TIMEOUT_SECONDS: Final = 4.5
_SERVICE_STOP_TIMEOUT_SECONDS: Final = 3.0
# For the runners to end once cancelled; each service's stop() then still has its full time.
_CANCEL_SECONDS: Final = _STOP_TIMEOUT_SECONDS - _SERVICE_STOP_TIMEOUT_SECONDS
_CANCEL_GRACE_SECONDS: Final = 0.5  # a service's clean-up on cancel (a goodbye, a close) is not cut short before
_RECANCEL_SECONDS: Final = 0.1
_READY_WAIT_SECONDS: Final = 20.0  # well inside systemd's default 90 s start timeout
STATUS_REFRESH_SECONDS: Final = 10.0  # how often STATUS= looks at health() between events


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    detail: str = ""


class Service(ABC):
    """A long-running part of PiBuddy: the device client, the gateway, a driver's event stream."""

    name: str = "service"
    backoff: Backoff | None = None
    """The service's own restart schedule (set per instance), if the supervisor's default does not fit."""

    @abstractmethod
    async def start(self) -> None:
        """Bring the service up and return once it serves. Raising counts as a failed start."""

    async def serve(self) -> None:
        """Run until cancelled. Returning or raising counts as a crash. Default: nothing to do."""
        await asyncio.Event().wait()

    @abstractmethod
    async def stop(self) -> None:
        """Release everything the service holds. Must be safe to call after a failed start."""

    def health(self) -> Health:
        return Health(True, "running")

    async def wait_before_retry(self, delay: float) -> None:
        """Wait out the backoff before the next start; a service may end the wait early (a user asking for it)."""
        await asyncio.sleep(delay)


class _Runner:
    """One service's start/serve/restart loop."""

    def __init__(self, service: Service, bus: EventBus, backoff: Backoff, clock: Callable[[], float]) -> None:
        self.service = service
        self.status = "starting"
        self.detail = ""
        self.first_attempt_done = asyncio.Event()
        self._bus = bus
        self._backoff = backoff
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._restart_asked = False
        self.stopping = False
        """Set by the supervisor's shutdown before it cancels this runner."""

    def restart(self) -> None:
        """Stop the service and start it again at once (a user asked: no backoff, not logged as a crash)."""
        if self._task is not None and self.status == "running":
            self._restart_asked = True
            self._task.cancel()

    async def run(self) -> None:
        self._task = asyncio.current_task()
        last_reason = ""
        while True:
            started_at = self._clock()
            failure: BaseException | None = None
            try:
                await self.service.start()
                self._raise_swallowed_cancel()
                self._set("running")
                self.first_attempt_done.set()
                await self.service.serve()
                self._raise_swallowed_cancel()
                reason = "stopped serving on its own"
            except asyncio.CancelledError:
                if not self._restart_asked or self._task is None:
                    raise
                self._task.uncancel()
                self._restart_asked = False
                _LOGGER.info("service %s restarting on request", self.service.name)
                self._set("restarting", "on request")
                await _stop_quietly(self.service)
                continue
            except (Exception, SystemExit, KeyboardInterrupt) as exc:
                # SystemExit/KeyboardInterrupt from a service (uvicorn calls sys.exit) would end the process;
                # the supervisor owns SIGTERM/SIGINT, so one raised in here is the service's failure.
                failure = exc
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.first_attempt_done.set()
            await _stop_quietly(self.service)
            delay = self._backoff.next_delay(healthy_for=self._clock() - started_at)
            self._log_failure(failure, reason, repeated=reason == last_reason, delay=delay)
            last_reason = reason
            self._set("failed" if _needs_the_user(failure) else "restarting", f"in {delay:.0f}s after {reason}")
            await self.service.wait_before_retry(delay)

    def _raise_swallowed_cancel(self) -> None:
        """Raise the stop or restart that cancelled the service's code if that code swallowed it. (The runner's
        own flags tell, not Task.cancelling(): a 3.11 TaskGroup leaves that raised after one of its tasks failed.)"""
        if self.stopping or self._restart_asked:
            raise asyncio.CancelledError

    def _log_failure(self, failure: BaseException | None, reason: str, *, repeated: bool, delay: float) -> None:
        """A PiBuddyError is a condition with a message for the user (a server down, a port taken): said once at
        its own level, then only an info line while it repeats. Anything else is a bug: an error with its
        traceback."""
        name = self.service.name
        if isinstance(failure, PiBuddyError):
            if repeated:
                _LOGGER.info("service %s still failing (%s); retrying in %.1f s", name, failure, delay)
            else:
                _LOGGER.log(failure.log_level, "service %s: %s; retrying in %.1f s", name, failure, delay)
            _LOGGER.debug("service %s failed", name, exc_info=failure)
        else:
            _LOGGER.error("service %s crashed (%s); restarting in %.1f s", name, reason, delay, exc_info=failure)

    def _set(self, status: str, detail: str = "") -> None:
        self.status, self.detail = status, detail
        if status == "running":
            _LOGGER.info("service %s is running", self.service.name)
        self._bus.publish(ServiceStatus(self.service.name, status, detail))


def _needs_the_user(failure: BaseException | None) -> bool:
    """A failure no retry will mend until the user acts (a port taken, a full disk): the service is "failed"."""
    return isinstance(failure, PiBuddyError) and failure.log_level >= logging.ERROR


def _health_of(service: Service) -> Health:
    try:
        return service.health()
    except Exception as exc:  # a status line must not take the supervisor down
        return Health(False, f"health() failed: {type(exc).__name__}: {exc}")


async def _stop_quietly(service: Service) -> None:
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as the
    # inner call finishes, and the runner would then loop on after shutdown cancelled it.
    try:
        async with asyncio.timeout(_SERVICE_STOP_TIMEOUT_SECONDS):
            await service.stop()
    except (Exception, SystemExit, KeyboardInterrupt):
        _LOGGER.warning("service %s did not stop cleanly", service.name, exc_info=True)


class Supervisor:
    """Starts services, restarts crashed ones, and speaks the systemd notify protocol.

    Args:
        services: what to run.
        bus: the event bus; service lifecycle goes out on it and device state feeds STATUS=.
        notifier: the systemd notifier (a disabled one when not under systemd).
        backoff_factory: the restart schedule for each service (tests pass short ones).
    """

    def __init__(
        self,
        services: list[Service],
        *,
        bus: EventBus,
        notifier: Notifier | None = None,
        backoff_factory: Callable[[], Backoff] = Backoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus = bus
        self._notifier = notifier or Notifier({})
        self._runners = [_Runner(s, bus, s.backoff or backoff_factory(), clock) for s in services]
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_requested = asyncio.Event()

    def request_stop(self) -> None:
        self._stop_requested.set()

    def restart(self, name: str) -> bool:
        """Restart the service called `name` now; False if there is none."""
        for runner in self._runners:
            if runner.service.name == name:
                runner.restart()
                return True
        _LOGGER.warning("cannot restart %r: no such service (services: %s)", name,
                        ", ".join(r.service.name for r in self._runners))
        return False

    def health(self) -> dict[str, Health]:
        """Each service's health; one whose health() raises is reported as not ok, with the error."""
        return {r.service.name: _health_of(r.service) if r.status == "running" else Health(False, r.status)
                for r in self._runners}

    async def run(self) -> None:
        """Run every service until `request_stop()` or SIGTERM/SIGINT, then stop them all."""
        loop = asyncio.get_running_loop()
        self._bus.bind_loop(loop)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        helpers = [asyncio.create_task(self._report_status()), asyncio.create_task(self._watchdog())]
        try:
            self._tasks = [asyncio.create_task(r.run(), name=r.service.name) for r in self._runners]
            await self._wait_first_attempts()
            if not self._stop_requested.is_set():  # a stop asked during start-up goes straight to STOPPING=1
                self._notifier.ready()
                names = ", ".join(r.service.name for r in self._runners) or "none"
                _LOGGER.info("PiBuddy is up (services: %s)", names)
                release_free_heap()  # what start-up freed goes back to the OS now
                self._update_status()
                await self._stop_requested.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await self._shutdown()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    def _on_signal(self, signum: int) -> None:
        _LOGGER.info("received %s, stopping", signal.Signals(signum).name)
        self.request_stop()

    async def _wait_first_attempts(self) -> None:
        """Until every service has tried to start once, or stop was asked, or `_READY_WAIT_SECONDS` passed
        (a start that hangs must not keep systemd from hearing READY=1)."""
        firsts = asyncio.gather(*(r.first_attempt_done.wait() for r in self._runners))
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            waiters: list[asyncio.Future[Any]] = [firsts, stop]
            await asyncio.wait(waiters, timeout=_READY_WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            firsts.cancel()
            stop.cancel()
            await asyncio.gather(firsts, stop, return_exceptions=True)

    async def _shutdown(self) -> None:
        self._notifier.stopping()
        self._notifier.status("stopping")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STOP_TIMEOUT_SECONDS):
                await self._cancel_runners()
                await asyncio.gather(*(_stop_quietly(r.service) for r in self._runners))
        _LOGGER.info("PiBuddy stopped")

    async def _cancel_runners(self) -> None:
        """Cancel every runner; one that has not ended after `_CANCEL_GRACE_SECONDS` is cancelled again every
        `_RECANCEL_SECONDS` (each new cancel lands on the await a swallowed one left it at), for at most
        `_CANCEL_SECONDS`; one still running then is named and left to asyncio.run's final cancel."""
        for runner in self._runners:
            runner.stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CANCEL_SECONDS
        pending, wait = set(self._tasks), _CANCEL_GRACE_SECONDS
        while pending and loop.time() < deadline:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=min(wait, deadline - loop.time()))
            wait = _RECANCEL_SECONDS
        await asyncio.gather(*(task for task in self._tasks if task.done()), return_exceptions=True)
        if pending:
            _LOGGER.warning("service %s did not end when cancelled; stopping it anyway",
                            ", ".join(task.get_name() for task in pending))

    async def _report_status(self) -> None:
        """STATUS= follows lifecycle and state events at once, and services' health() every few seconds
        (health changes are not events: Bluetooth going away is noticed by polling, not announced)."""
        with self._bus.subscribe() as events:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STATUS_REFRESH_SECONDS):
                        event = await events.get()
                        while not isinstance(event, ServiceStatus | StateChanged | ActiveBrain | RestartRequested):
                            event = await events.get()
                        if isinstance(event, RestartRequested):
                            self.restart(event.service)
                self._update_status()

    def _update_status(self) -> None:
        report = ServicesHealth(tuple(self._service_health(r) for r in self._runners))
        if report != self._bus.latest(ServicesHealth):
            self._bus.publish(report)
        parts = [f"state {self._bus.state}"]
        brain = self._bus.latest(ActiveBrain)
        if isinstance(brain, ActiveBrain):
            parts.append(f"brain {brain.brain}")
        for name, health in self.health().items():
            parts.append(f"{name} {self._describe(name, health)}")
        self._notifier.status("; ".join(parts))

    def _service_health(self, runner: _Runner) -> ServiceHealth:
        if runner.status != "running":
            return ServiceHealth(runner.service.name, runner.status, False, runner.detail)
        health = _health_of(runner.service)
        return ServiceHealth(runner.service.name, runner.status, health.ok, health.detail)

    def _describe(self, name: str, health: Health) -> str:
        runner = next(r for r in self._runners if r.service.name == name)
        if runner.status != "running":
            return f"{runner.status} ({runner.detail})" if runner.detail else runner.status
        return "running" if health.ok else f"running, not ok ({health.detail})"

    async def _watchdog(self) -> None:
        """Ping systemd from the event loop itself, so a blocked loop lets the watchdog fire."""
        if self._notifier.watchdog_seconds is None:
            return
        interval = self._notifier.watchdog_seconds / 2
        while True:
            self._notifier.watchdog()
            await asyncio.sleep(interval)
