"""Who answers a wake: the policy as pure logic with time as an argument, then the router on a real bus."""

from __future__ import annotations

import asyncio

import pytest

from pibuddy.brain.router import BrainRouter, RouterPolicy
from pibuddy.config import BrainConfig, BrainMode, Config, UpstreamConfig
from pibuddy.events import BRAIN_LOCAL, BRAIN_UPSTREAM, ActiveBrain, EventBus, UpstreamLink, answers_wakes


def test_auto_waits_the_deadline_then_goes_local_and_returns_upstream_at_once() -> None:
    policy = RouterPolicy(BrainMode.AUTO, upstream_configured=True, deadline=8.0, now=100.0)
    assert (policy.brain, policy.due) == (BRAIN_UPSTREAM, 108.0)
    assert not policy.tick(107.9)
    assert policy.tick(108.0)
    assert policy.brain == BRAIN_LOCAL
    assert "did not come up" in policy.reason
    assert policy.link(True, "mqtt", 130.0)
    assert (policy.brain, policy.due) == (BRAIN_UPSTREAM, None)


def test_a_blip_shorter_than_the_deadline_keeps_the_server() -> None:
    policy = RouterPolicy(BrainMode.AUTO, upstream_configured=True, deadline=5.0, now=0.0)
    policy.link(True, "", 1.0)
    assert not policy.link(False, "broker closed the connection", 10.0)
    assert not policy.tick(14.0)
    assert not policy.link(True, "", 14.5)
    assert not policy.tick(100.0)
    assert policy.brain == BRAIN_UPSTREAM
    assert not policy.link(False, "broker gone", 200.0)
    assert policy.tick(205.0)
    assert policy.reason == "xiaozhi server unreachable (broker gone) for 5 s"


@pytest.mark.parametrize(("mode", "configured", "brain"), [
    (BrainMode.LOCAL, True, BRAIN_LOCAL), (BrainMode.UPSTREAM, True, BRAIN_UPSTREAM),
    (BrainMode.AUTO, False, BRAIN_LOCAL), (BrainMode.UPSTREAM, False, BRAIN_UPSTREAM)])
def test_fixed_choices_never_change(mode: BrainMode, configured: bool, brain: str) -> None:
    policy = RouterPolicy(mode, upstream_configured=configured, deadline=1.0, now=0.0)
    assert policy.brain == brain
    assert not policy.link(True, "", 1.0)
    assert not policy.link(False, "", 2.0)
    assert not policy.tick(1000.0)
    assert (policy.brain, policy.due) == (brain, None)


async def _next_brain(events, seconds: float = 2.0) -> ActiveBrain:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not isinstance(event := await events.get(), ActiveBrain):
            pass
    return event


async def test_router_publishes_the_active_brain_from_upstream_link_events() -> None:
    bus = EventBus()
    config = Config(brain=BrainConfig(upstream_deadline=0.2), upstream=UpstreamConfig(enabled=True))
    router = BrainRouter(config, bus)
    with bus.subscribe() as events:
        await router.start()
        serving = asyncio.create_task(router.serve())
        try:
            assert (await _next_brain(events)).brain == BRAIN_UPSTREAM  # waiting for the server
            assert answers_wakes(bus, BRAIN_UPSTREAM)
            assert (await _next_brain(events)).brain == BRAIN_LOCAL  # deadline passed, nothing connected
            assert answers_wakes(bus, BRAIN_LOCAL)
            assert not answers_wakes(bus, BRAIN_UPSTREAM)
            bus.publish(UpstreamLink(True, "mqtt", "127.0.0.1"))
            assert (await _next_brain(events)).brain == BRAIN_UPSTREAM
            bus.publish(UpstreamLink(False, "mqtt", "broker gone"))
            changed = await _next_brain(events, 1.0)
            assert (changed.brain, changed.reason) == (BRAIN_LOCAL,
                                                       "xiaozhi server unreachable (broker gone) for 0.2 s")
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)


def test_without_a_router_the_server_answers() -> None:
    bus = EventBus()
    assert answers_wakes(bus, BRAIN_UPSTREAM)
    assert not answers_wakes(bus, BRAIN_LOCAL)
