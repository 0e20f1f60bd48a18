"""The Pi's own peripherals as a service: the push-to-talk button and the status lights.

Peripherals only talk to the event bus: the lights follow `StateChanged` and `Muted` (a new subscription
starts with the current state, so the lights are right from the first moment) and flash `ErrorOccurred`
until the state changes or `ERROR_LIGHT_SECONDS` pass, the button publishes
`Command`s. Off a Pi (no pin library works) the service logs one line and stays off: it never fails, so the
supervisor does not restart it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from gpiozero import Factory

from pibuddy.config import GpioConfig, LightsKind
from pibuddy.drivers.gpio.button import ButtonWatcher
from pibuddy.drivers.gpio.outputs import Animator, open_output
from pibuddy.drivers.gpio.patterns import LightState, light_for, pattern_for
from pibuddy.drivers.gpio.pins import GpioUnavailable, open_pin_factory
from pibuddy.events import ErrorOccurred, EventBus, Muted, StateChanged
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)
ERROR_LIGHT_SECONDS: Final = 3.0


class GpioService(Service):
    """Args:
    config: the `gpio` section.
    bus: the event bus the lights follow and the button publishes to.
    pin_factory: a gpiozero factory to use instead of `config.pin_factory` (tests pass a MockFactory).
    """

    name = "gpio"

    def __init__(self, config: GpioConfig, bus: EventBus, *, pin_factory: Factory | None = None) -> None:
        self._config = config
        self._bus = bus
        self._pin_factory = pin_factory
        self._button: ButtonWatcher | None = None
        self._animator: Animator | None = None
        self._light: LightState | None = None
        self._off: str | None = None

    @property
    def light(self) -> LightState | None:
        """What the lights show now (None before the first state)."""
        return self._light

    async def start(self) -> None:
        self._bus.bind_loop(asyncio.get_running_loop())  # the button publishes from gpiozero's threads
        config = self._config
        if config.button.pin is None and config.lights.kind is LightsKind.NONE:
            self._off = "no button or lights configured"
            return
        try:
            factory = self._pin_factory or open_pin_factory(config.pin_factory)
        except GpioUnavailable as exc:
            self._stay_off(f"{exc.message}; the button and status lights stay off")
            return
        try:
            if config.button.pin is not None:
                self._button = ButtonWatcher(config.button, self._bus, factory)
            output = open_output(config.lights, factory)
            if output is not None:
                self._animator = Animator(output)
        except Exception as exc:  # gpiozero pin errors (in use, invalid) and our pin-count check
            await self.stop()
            self._stay_off(f"cannot use the GPIO pins ({exc}); the button and status lights stay off")
        else:
            self._off = None

    async def serve(self) -> None:
        if self._animator is None:
            await super().serve()  # a button alone works from gpiozero's threads
            return
        muted = isinstance(latest := self._bus.latest(Muted), Muted) and latest.muted
        state = self._bus.state
        loop = asyncio.get_running_loop()
        error_until: float | None = None  # the error light shows until then, or until the state changes
        with self._bus.subscribe() as events:
            while True:
                if error_until is not None and loop.time() >= error_until:
                    error_until = None
                self._show(LightState.ERROR if error_until is not None else light_for(state, muted))
                try:
                    async with asyncio.timeout_at(error_until):
                        event = await events.get()
                except TimeoutError:
                    continue
                match event:
                    case StateChanged(new=new):
                        state, error_until = new, None
                    case Muted(muted=now_muted):
                        muted = now_muted
                    case ErrorOccurred():
                        error_until = loop.time() + ERROR_LIGHT_SECONDS

    async def stop(self) -> None:
        button, self._button = self._button, None
        if button is not None:
            button.close()
        animator, self._animator = self._animator, None
        if animator is not None:
            await asyncio.to_thread(animator.close)
        self._light = None

    def health(self) -> Health:
        return Health(self._off is None, self._off or f"lights: {self._light or 'none'}")

    def _show(self, light: LightState) -> None:
        if light is self._light or self._animator is None:
            return
        self._light = light
        self._animator.show(pattern_for(self._config.lights.patterns, light))

    def _stay_off(self, reason: str) -> None:
        if self._off != reason:
            _LOGGER.warning("%s", reason)
        self._off = reason
