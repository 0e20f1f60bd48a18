"""The button's mute and push-to-talk, end to end: gpiozero MockFactory pins -> bus -> audio pipeline / local brain,
with speech played into the PulseAudio virtual microphone, and the status light asserted on its pin.

The mute is owned by the audio pipeline: a long press mutes it (no wake word is heard, `Muted(True)` is on the
bus, the light shows the muted pattern), a second one unmutes it; the state survives a restart through the state
dir. With the local brain active, a short press starts a command turn, a long press aborts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from pibuddy.audio.pipeline import MUTED, AudioPipeline
from pibuddy.audio.service import AudioService
from pibuddy.audio.uplink import STOPPED, UplinkStream
from pibuddy.brain.asr.sphinx import PocketsphinxAsr
from pibuddy.brain.audio import PipelineAudio
from pibuddy.brain.brain import LocalBrain
from pibuddy.brain.service import LocalBrainService
from pibuddy.brain.vocabulary import Vocabulary
from pibuddy.brain.voice import EspeakVoice
from pibuddy.config import AudioConfig, GpioConfig
from pibuddy.drivers.gpio import GpioService
from pibuddy.drivers.gpio.patterns import LightState
from pibuddy.events import (
    ActiveBrain,
    DeviceState,
    EventBus,
    Muted,
    StateChanged,
    Subscription,
    TurnProgress,
    TurnStage,
    WakeDetected,
)
from pibuddy.statedir import StateDir
from pibuddy.tools.registry import ToolRegistry
from tests.audio.conftest import play_into_microphone, pulse  # noqa: F401 - the virtual sound devices
from tests.brain.conftest import FixedVocabulary, household  # noqa: F401 - the recorded household
from tests.peers.pulseaudio import PulseServer
from tests.peers.speech import speech
from tests.polling import eventually

BUTTON, LED_PIN = 17, 27
_HOLD_SECONDS = 0.15
_MUTED_BLINK = 0.1  # the muted pattern's on and off time, short so a test sees several edges


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory(pin_class=MockPWMPin)
    yield pins
    pins.reset()


def _gpio(*, lights: bool) -> GpioConfig:
    section: dict[str, object] = {
        "enabled": True,
        "button": {"pin": BUTTON, "bounce_seconds": 0, "hold_seconds": _HOLD_SECONDS, "hold_action": "toggle_mute"}}
    if lights:
        section["lights"] = {"kind": "led", "pins": [LED_PIN], "pwm": False, "patterns": {
            "muted": {"effect": "blink", "on_seconds": _MUTED_BLINK, "off_seconds": _MUTED_BLINK}}}
    return GpioConfig.model_validate(section)


@contextlib.asynccontextmanager
async def _running(*services: object) -> AsyncIterator[None]:
    """Start and serve `services` in order (as the supervisor does); stop them in reverse."""
    tasks = []
    try:
        for service in services:
            await service.start()  # type: ignore[attr-defined]
            tasks.append(asyncio.create_task(service.serve()))  # type: ignore[attr-defined]
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for service in reversed(services):
            await service.stop()  # type: ignore[attr-defined]


async def _next(events: Subscription, kind: type, seconds: float = 3.0, **fields: object) -> object:
    async with asyncio.timeout(seconds):
        while True:
            event = await events.get()
            if isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items()):
                return event


async def _long_press(factory: MockFactory) -> None:
    factory.pin(BUTTON).drive_low()
    await asyncio.sleep(_HOLD_SECONDS + 0.1)
    factory.pin(BUTTON).drive_high()


async def _short_press(factory: MockFactory) -> None:
    factory.pin(BUTTON).drive_low()
    await asyncio.sleep(0.03)
    factory.pin(BUTTON).drive_high()


async def _settle(service: GpioService, light: LightState) -> None:
    async with asyncio.timeout(2):
        while service.light is not light:  # noqa: ASYNC110 (set by the service's own task)
            await asyncio.sleep(0.01)


async def test_mute_is_published_remembered_and_ends_the_uplink(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    pipeline = AudioPipeline(AudioConfig(), bus, state_dir=StateDir(tmp_path))
    assert bus.latest(Muted) == Muted(False)
    listening = pipeline.uplink_opus(preroll=False)
    with caplog.at_level(logging.INFO, logger="pibuddy.audio"):
        pipeline.set_muted(True, "test")
    assert "microphone muted (test)" in caplog.messages
    assert (bus.latest(Muted), listening.end_reason) == (Muted(True), MUTED)  # the open turn ended
    assert pipeline.uplink_opus().end_reason == MUTED  # and no new one sends anything
    assert json.loads((tmp_path / "audio.json").read_text()) == {"muted": True}

    restarted_bus = EventBus()
    restarted = AudioPipeline(AudioConfig(), restarted_bus, state_dir=StateDir(tmp_path))
    assert restarted.muted
    assert restarted_bus.latest(Muted) == Muted(True)  # the lights show it from the first moment
    restarted.set_muted(False, "test")
    assert not AudioPipeline(AudioConfig(), state_dir=StateDir(tmp_path)).muted

    (tmp_path / "audio.json").write_text('{"muted": "yes"}')
    with caplog.at_level(logging.WARNING, logger="pibuddy.audio"):
        assert not AudioPipeline(AudioConfig(), state_dir=StateDir(tmp_path)).muted
    assert "ignoring audio.json: 'muted' is 'yes', not true or false" in caplog.messages


@pytest.mark.peer
async def test_a_long_press_mutes_the_microphone_and_a_second_unmutes_it(
        pulse: PulseServer, factory: MockFactory) -> None:  # noqa: F811
    bus = EventBus()
    audio = AudioService(AudioPipeline(AudioConfig(), bus))
    gpio = GpioService(_gpio(lights=True), bus, pin_factory=factory)
    wake = np.concatenate([speech("okay nahboo"), speech("okay nahboo", pad=0.5)])  # twice: one may be clipped
    wakes: list[WakeDetected] = []

    async def note_wakes() -> None:
        async for event in audio.pipeline.wake_events():
            wakes.append(event)

    async with _running(audio, gpio):
        noting = asyncio.create_task(note_wakes())
        await asyncio.wait_for(audio.pipeline.microphone.opened.wait(), 5)
        bus.set_state(DeviceState.IDLE)  # the muted light shows while idle
        await _settle(gpio, LightState.IDLE)
        with bus.subscribe() as events:
            await _long_press(factory)
            await _next(events, Muted, muted=True)
            assert audio.pipeline.muted
            await _settle(gpio, LightState.MUTED)
            led = factory.pin(LED_PIN)
            led.clear_states()
            await play_into_microphone(pulse, wake)
            await asyncio.sleep(0.5)
            assert wakes == [], "a wake word was heard while muted"
            edges = [bool(s.state) for s in led.states[1:]]
            assert len(edges) >= 6
            assert edges[:6] in ([True, False] * 3, [False, True] * 3)  # the muted blink

            await _long_press(factory)
            await _next(events, Muted, muted=False)
            await _settle(gpio, LightState.IDLE)
            assert led.state == 0
            await play_into_microphone(pulse, wake)
            await asyncio.sleep(0.5)
            assert wakes, "no wake word was heard after unmuting"
        noting.cancel()


async def test_an_aborted_local_turn_stops_its_microphone_stream() -> None:
    pipeline = AudioPipeline(AudioConfig(), EventBus())
    streams: list[UplinkStream] = []
    open_uplink = pipeline.uplink_opus

    def recorded_uplink(**kwargs: bool) -> UplinkStream:
        streams.append(open_uplink(**kwargs))
        return streams[-1]

    pipeline.uplink_opus = recorded_uplink  # type: ignore[method-assign]
    turn = asyncio.create_task(PipelineAudio(pipeline).utterance())
    await eventually(lambda: bool(streams))
    turn.cancel()  # a long press (abort) while the user is still talking
    with contextlib.suppress(asyncio.CancelledError):
        await turn
    assert streams[0].end_reason == STOPPED, "the stream would go on encoding the microphone for nobody"


@pytest.mark.peer
async def test_a_short_press_starts_a_local_turn_and_a_long_press_aborts_one(
        pulse: PulseServer, factory: MockFactory, household: Vocabulary) -> None:  # noqa: F811
    bus = EventBus()
    bus.publish(ActiveBrain("local", "test"))  # what the router publishes with no xiaozhi server
    audio = AudioService(AudioPipeline(AudioConfig(), bus))
    brain = LocalBrainService(LocalBrain(ToolRegistry(), [FixedVocabulary(household)]), PocketsphinxAsr("en"),
                              EspeakVoice("en-us"),
                              PipelineAudio(audio.pipeline), bus, offline_notice=False)
    gpio = GpioService(_gpio(lights=False), bus, pin_factory=factory)
    async with _running(audio, brain, gpio):
        await asyncio.wait_for(audio.pipeline.microphone.opened.wait(), 5)
        # The grammar build (seconds of CPU) starves this loop: a 30 ms press would be released late, as a hold.
        await eventually(lambda: brain.recogniser_ready, within=60)
        with bus.subscribe() as events:
            await _short_press(factory)
            await _next(events, StateChanged, new=DeviceState.LISTENING, reason="local brain")
            await play_into_microphone(pulse, speech("turn on the kitchen fan"))
            heard = await _next(events, TurnProgress, seconds=15, stage=TurnStage.HEARD)
            await _next(events, StateChanged, seconds=15, new=DeviceState.IDLE)
            # The button's turn took the command from the microphone (HEARD comes only when the VAD found speech
            # in it) and answered. What the recogniser makes of it through PulseAudio is the speech tests' and
            # bench/brain_accuracy.py's to measure: in a full suite run it once wrote nothing for this command.
            assert heard.microphone == "pi"  # type: ignore[attr-defined]
            reply = brain.last_reply
            assert reply is not None
            assert reply.text

            await _long_press(factory)  # its press starts a turn, its hold aborts it and mutes
            await _next(events, StateChanged, new=DeviceState.LISTENING)
            await _next(events, Muted, muted=True)  # the abort's IDLE may come before or after it
            async with asyncio.timeout(2):
                while bus.state is not DeviceState.IDLE:  # noqa: ASYNC110 (the cancelled turn's cleanup)
                    await asyncio.sleep(0.01)
            await _short_press(factory)  # muted: no turn
            with pytest.raises(TimeoutError):
                await _next(events, StateChanged, seconds=0.5, new=DeviceState.LISTENING)
            assert brain.last_reply is reply
