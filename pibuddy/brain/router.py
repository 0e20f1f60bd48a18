"""Who answers a wake: the xiaozhi server (upstream) or the local brain. Published as a sticky `ActiveBrain`.

`brain.mode: upstream | local` pins the choice. In `auto`, the server answers while its link is up; when the
link has been down (or never came up) for `upstream_deadline` seconds, or no server is configured at all,
the local brain answers; the moment the link is back, the next wake goes upstream again. Short blips
shorter than the deadline never flip the brain.

Every consumer of wake events reads the decision from the bus: the local brain acts on a wake only when
`ActiveBrain.brain == "local"`, the device client only when it is "upstream" (or nothing was published).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pibuddy.config import BrainMode, Config
from pibuddy.events import BRAIN_LOCAL, BRAIN_UPSTREAM, ActiveBrain, EventBus, UpstreamLink
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)

@dataclass
class RouterPolicy:
    """The decision as pure logic: fed link changes and the time, it says which brain is active.

    Args:
        mode: From config.
        upstream_configured: Whether an upstream service runs at all.
        deadline: Seconds the link may be down before the local brain takes over.
        now: The start time.
    """

    mode: BrainMode
    upstream_configured: bool
    deadline: float
    now: float
    down_since: float | None = None
    brain: str = BRAIN_UPSTREAM
    reason: str = ""

    def __post_init__(self) -> None:
        if self.mode is BrainMode.LOCAL or (self.mode is BrainMode.AUTO and not self.upstream_configured):
            self.brain = BRAIN_LOCAL
            self.reason = "brain.mode is local" if self.mode is BrainMode.LOCAL else "no xiaozhi server configured"
        elif self.mode is BrainMode.UPSTREAM:
            self.reason = "brain.mode is upstream"
        else:
            self.down_since = self.now
            self.reason = "waiting for the xiaozhi server"

    @property
    def automatic(self) -> bool:
        return self.mode is BrainMode.AUTO and self.upstream_configured

    @property
    def due(self) -> float | None:
        """When `tick` may switch to local next, if a deadline is running."""
        if not self.automatic or self.down_since is None or self.brain == BRAIN_LOCAL:
            return None
        return self.down_since + self.deadline

    def link(self, connected: bool, detail: str, now: float) -> bool:
        """The upstream link changed; True if the active brain changed."""
        if not self.automatic:
            return False
        if connected:
            self.down_since = None
            return self._set(BRAIN_UPSTREAM, "the xiaozhi server is reachable")
        if self.down_since is None:
            self.down_since = now
        self.reason = f"xiaozhi server unreachable ({detail or 'link down'})"
        return self.tick(now)

    def tick(self, now: float) -> bool:
        """Time passed; True if the deadline expired and the local brain took over."""
        due = self.due
        if due is None or now < due:
            return False
        reason = self.reason if self.reason.startswith("xiaozhi") else "the xiaozhi server did not come up"
        return self._set(BRAIN_LOCAL, f"{reason} for {self.deadline:g} s")

    def _set(self, brain: str, reason: str) -> bool:
        changed = brain != self.brain
        self.brain, self.reason = brain, reason
        return changed


class BrainRouter(Service):
    """Runs the policy on the bus: `UpstreamLink` in, `ActiveBrain` out.

    Args:
        config: The whole config (brain.mode, brain.upstream_deadline, upstream.enabled).
        bus: The event bus.
        clock: Monotonic seconds.
    """

    name = "brain-router"

    def __init__(self, config: Config, bus: EventBus, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._bus = bus
        self._clock = clock
        self.policy: RouterPolicy | None = None

    async def start(self) -> None:
        self.policy = RouterPolicy(self._config.brain.mode, self._config.upstream.enabled,
                                   self._config.brain.upstream_deadline, self._clock())
        self._publish()

    async def serve(self) -> None:
        policy = self.policy
        assert policy is not None
        with self._bus.subscribe() as events:  # replays the latest UpstreamLink first
            while True:
                due = policy.due
                try:
                    async with asyncio.timeout(None if due is None else max(0.0, due - self._clock())):
                        event = await events.get()
                except TimeoutError:
                    if policy.tick(self._clock()):
                        self._publish()
                    continue
                if isinstance(event, UpstreamLink) and policy.link(event.connected, event.detail, self._clock()):
                    self._publish()

    async def stop(self) -> None:
        return

    def health(self) -> Health:
        return Health(True, f"brain {self.policy.brain}" if self.policy else "starting")

    def _publish(self) -> None:
        assert self.policy is not None
        _LOGGER.info("%s brain answers wakes: %s", self.policy.brain, self.policy.reason)
        self._bus.publish(ActiveBrain(self.policy.brain, self.policy.reason))
