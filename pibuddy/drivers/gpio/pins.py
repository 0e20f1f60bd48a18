"""gpiozero pin factories as PiBuddy's pluggable GPIO backend.

`open_pin_factory(name)` imports the chosen gpiozero factory inside its branch (lgpio, RPi.GPIO and pigpio are
Pi-only libraries). Without a name it tries them in gpiozero's own order. Off a Pi every one fails, and
that becomes one `GpioUnavailable` naming why, so the GPIO driver can stay off with a single log line. Tests
pass a `MockFactory` instead of a name.
"""

from __future__ import annotations

import warnings
from typing import Final

from gpiozero import Factory

from pibuddy.errors import DriverError

# gpiozero's default order (devices.py): lgpio, rpigpio, pigpio, native.
_DEFAULT_ORDER: Final = ("lgpio", "rpigpio", "pigpio", "native")


class GpioUnavailable(DriverError):
    code = "gpio_unavailable"


def open_pin_factory(name: str | None) -> Factory:
    """The pin factory `name` (lgpio, rpigpio, pigpio, native, mock), or gpiozero's first that works."""
    reasons = []
    for candidate in (name,) if name else _DEFAULT_ORDER:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # gpiozero warns per fallback; we report once below
                return _factory(candidate)
        except Exception as exc:  # the Pi libraries raise ImportError, OSError, RuntimeError, PinError ...
            reasons.append(f"{candidate}: {exc or type(exc).__name__}")
    raise GpioUnavailable(f"GPIO is not available (not a Raspberry Pi, or no pin library): {'; '.join(reasons)}")


def _factory(name: str) -> Factory:
    match name:
        case "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory  # noqa: PLC0415

            return LGPIOFactory()
        case "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory  # noqa: PLC0415

            return RPiGPIOFactory()
        case "pigpio":
            from gpiozero.pins.pigpio import PiGPIOFactory  # noqa: PLC0415

            return PiGPIOFactory()
        case "native":
            from gpiozero.pins.native import NativeFactory  # noqa: PLC0415

            return NativeFactory()
        case "mock":
            from gpiozero.pins.mock import MockFactory, MockPWMPin  # noqa: PLC0415

            return MockFactory(pin_class=MockPWMPin)
    raise ValueError(f"unknown pin factory {name!r}")
