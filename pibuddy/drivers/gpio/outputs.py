"""The status-light outputs: one LED, an RGB LED, or an APA102 ring on SPI, all driven by one `Animator`.

Each output only knows how to show a brightness level (0-1) in a colour. The animator plays a pattern on it
in its own thread, as gpiozero's own blink threads do, so no animation ever runs on the event loop.
The APA102 ring uses gpiozero's SPI interface (spidev on a Pi, bit-banged pins otherwise) with the APA102
frame format: 32 zero bits, then per LED 0b111 + 5-bit global brightness, blue, green, red, then at least
one clock per two LEDs of end frame. WS2812 rings are not supported: their timing needs rpi-ws281x's DMA
(root, Pi-only, cannot be exercised here).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Final, Protocol

from gpiozero import LED, PWMLED, RGBLED, Device, Factory, SPIDevice

from pibuddy.config import LightPattern, LightsConfig, LightsKind
from pibuddy.drivers.gpio.patterns import Rgb, level_at, next_change, rgb

_LOGGER = logging.getLogger(__name__)
_FRAME_SECONDS: Final = 1 / 40
_BLACK: Final = (0.0, 0.0, 0.0)
_JOIN_SECONDS: Final = 2.0


class LightOutput(Protocol):
    def render(self, level: float, color: Rgb) -> None: ...
    def close(self) -> None: ...


class SingleLed:
    """One LED; with PWM the level dims it, without it the LED is on from level 0.5."""

    def __init__(self, pin: int, *, active_high: bool, pwm: bool, brightness: float, pin_factory: Factory) -> None:
        self._pwm, self._brightness = pwm, brightness
        self._led = (PWMLED if pwm else LED)(pin, active_high=active_high, pin_factory=pin_factory)

    def render(self, level: float, color: Rgb) -> None:
        del color
        self._led.value = level * self._brightness if self._pwm else level >= 0.5

    def close(self) -> None:
        self._led.close()


class RgbLed:
    def __init__(self, pins: Sequence[int], *, active_high: bool, pwm: bool, brightness: float,
                 pin_factory: Factory) -> None:
        red, green, blue = pins
        self._pwm, self._brightness = pwm, brightness
        self._led = RGBLED(red, green, blue, active_high=active_high, pwm=pwm, pin_factory=pin_factory)

    def render(self, level: float, color: Rgb) -> None:
        if self._pwm:
            self._led.value = tuple(c * level * self._brightness for c in color)
        else:
            self._led.value = tuple(1 if c * level >= 0.5 else 0 for c in color)

    def close(self) -> None:
        self._led.close()


def apa102_frame(pixels: Sequence[Rgb], brightness: float) -> bytes:
    """The bytes that set every LED of an APA102 strip; `brightness` goes into the 5-bit global field."""
    global_brightness = 0xE0 | max(1, round(brightness * 31))
    body = b"".join(bytes((global_brightness, round(b * 255), round(g * 255), round(r * 255)))
                    for r, g, b in pixels)
    return b"\x00" * 4 + body + b"\xff" * max(4, (len(pixels) + 15) // 16)


class Apa102Ring(SPIDevice):
    """An APA102 (DotStar) ring showing one colour on every LED."""

    def __init__(self, pixels: int, *, port: int, device: int, brightness: float, pin_factory: Factory) -> None:
        with _as_default_factory(pin_factory):
            super().__init__(port=port, device=device, pin_factory=pin_factory)
        self._pixels, self._brightness = pixels, brightness

    def render(self, level: float, color: Rgb) -> None:
        red, green, blue = color
        lit = (red * level, green * level, blue * level)
        self._spi.write(list(apa102_frame([lit] * self._pixels, self._brightness)))


@contextlib.contextmanager
def _as_default_factory(pin_factory: Factory) -> Iterator[None]:
    """gpiozero 2.0.1's software SPI bus (`SPISoftwareBus.__init__`) ignores the factory it is given for its
    own base `Device` and loads the global default, which fails off a Pi. Lend it ours while it is built."""
    if Device.pin_factory is not None:
        yield
        return
    Device.pin_factory = pin_factory
    try:
        yield
    finally:
        Device.pin_factory = None


def open_output(config: LightsConfig, pin_factory: Factory) -> LightOutput | None:
    """The configured output, or None for kind none; `ValueError` when the pins do not fit the kind."""
    common = {"brightness": config.brightness, "pin_factory": pin_factory}
    match config.kind:
        case LightsKind.NONE:
            return None
        case LightsKind.LED:
            if len(config.pins) != 1:
                raise ValueError("gpio.lights.pins needs exactly one pin for kind led")
            return SingleLed(config.pins[0], active_high=config.active_high, pwm=config.pwm, **common)
        case LightsKind.RGB:
            if len(config.pins) != 3:
                raise ValueError("gpio.lights.pins needs three pins (red, green, blue) for kind rgb")
            return RgbLed(config.pins, active_high=config.active_high, pwm=config.pwm, **common)
        case LightsKind.APA102:
            return Apa102Ring(config.pixels, port=config.spi_port, device=config.spi_device, **common)


class Animator:
    """Plays one pattern at a time on `output`, from its own thread; `show()` may be called from any thread.

    Args:
        output: where levels go.
        clock: monotonic seconds (patterns restart from their beginning on every `show`).
    """

    def __init__(self, output: LightOutput, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._output = output
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pattern: LightPattern | None = None
        self._started = 0.0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="pibuddy-lights", daemon=True)
        self._thread.start()

    def show(self, pattern: LightPattern) -> None:
        with self._lock:
            self._pattern, self._started = pattern, self._clock()
        self._wake.set()

    def close(self) -> None:
        """Stop the thread, switch the light off and release its pins (blocks up to 2 s)."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(_JOIN_SECONDS)
        self._output.render(0.0, _BLACK)
        self._output.close()

    def _run(self) -> None:
        shown: tuple[float, Rgb] | None = None
        while True:
            self._wake.clear()
            with self._lock:
                pattern, started, closing = self._pattern, self._started, self._closing
            if closing:
                return
            delay = None
            if pattern is not None:
                elapsed = self._clock() - started
                frame = (level_at(pattern, elapsed), rgb(pattern.color))
                if frame != shown:
                    try:
                        self._output.render(*frame)
                    except Exception as exc:  # a pin or SPI error: stop animating rather than kill the thread
                        _LOGGER.warning("status lights stopped: %s", exc)
                        return
                    shown = frame
                delay = next_change(pattern, elapsed, _FRAME_SECONDS)
            self._wake.wait(delay)
