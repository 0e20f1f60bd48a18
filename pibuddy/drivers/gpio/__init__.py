"""The Pi's GPIO: a push-to-talk button and status lights on the event bus, and relays as `gpio_switch`.

gpiozero pin factories are the pluggable backend (`pins.open_pin_factory`; tests pass a `MockFactory`).
"""

from pibuddy.drivers.gpio.pins import GpioUnavailable
from pibuddy.drivers.gpio.relays import Relays, RelayService, gpio_tools
from pibuddy.drivers.gpio.service import GpioService

__all__ = ["GpioService", "GpioUnavailable", "RelayService", "Relays", "gpio_tools"]
