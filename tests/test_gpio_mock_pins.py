"""The GPIO driver on gpiozero's MockFactory: button sequences become bus commands, the lights follow bus states
(asserted on pin history and on the bytes an APA102 ring receives), relays switch, and off a Pi it stays off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin, MockSPIDevice

from pibuddy.config import Config, GpioConfig
from pibuddy.drivers.gpio import GpioService, Relays, RelayService, gpio_tools
from pibuddy.drivers.gpio import service as gpio_service
from pibuddy.drivers.gpio.outputs import apa102_frame
from pibuddy.drivers.gpio.patterns import LightState
from pibuddy.events import Command, DeviceState, ErrorOccurred, EventBus, Muted, Subscription
from pibuddy.tools.registry import ToolRegistry, ToolResult
from pibuddy.wiring.tools import build_toolbox

BUTTON, LED_PIN = 17, 27


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory(pin_class=MockPWMPin)
    yield pins
    pins.reset()


def _gpio(**sections: Any) -> GpioConfig:
    return GpioConfig.model_validate({"enabled": True, **sections})


async def _commands(events: Subscription, count: int) -> list[str]:
    names: list[str] = []
    async with asyncio.timeout(2):
        while len(names) < count:
            event = await events.get()
            if isinstance(event, Command):
                names.append(event.name)
    return names


async def _no_command(events: Subscription, within: float = 0.15) -> None:
    with pytest.raises(TimeoutError):
        await _commands_within(events, within)


async def _commands_within(events: Subscription, within: float) -> None:
    async with asyncio.timeout(within):
        while not isinstance(await events.get(), Command):
            pass


@pytest.mark.parametrize(("hold_action", "long_press"), [
    ("toggle_mute", ["listen_start", "abort", "toggle_mute"]),
    ("abort", ["listen_start", "abort"]),
    ("pair", ["listen_start", "abort", "open_pairing"]),
])
async def test_button_sequences_become_commands(factory: MockFactory, hold_action: str,
                                                long_press: list[str]) -> None:
    bus = EventBus()
    service = GpioService(_gpio(button={"pin": BUTTON, "bounce_seconds": 0, "hold_seconds": 0.15,
                                        "hold_action": hold_action}), bus, pin_factory=factory)
    await service.start()
    pin = factory.pin(BUTTON)
    try:
        with bus.subscribe() as events:
            pin.drive_low()  # pressed (the button pulls the pin to ground)
            await asyncio.sleep(0.03)
            pin.drive_high()
            assert await _commands(events, 2) == ["listen_start", "listen_stop"]

            pin.drive_low()
            assert await _commands(events, len(long_press)) == long_press  # while still held
            pin.drive_high()
            await _no_command(events)  # the release of a long press sends nothing
    finally:
        await service.stop()
    assert factory.pin(BUTTON).state  # released pin back to its pull-up level


async def test_a_long_push_to_talk_without_hold_action(factory: MockFactory) -> None:
    bus = EventBus()
    service = GpioService(_gpio(button={"pin": BUTTON, "bounce_seconds": 0, "hold_seconds": 0.05,
                                        "hold_action": "none"}), bus, pin_factory=factory)
    await service.start()
    try:
        with bus.subscribe() as events:
            factory.pin(BUTTON).drive_low()
            await asyncio.sleep(0.2)
            factory.pin(BUTTON).drive_high()
            assert await _commands(events, 2) == ["listen_start", "listen_stop"]
    finally:
        await service.stop()


def _states(pin: Any) -> list[bool]:
    return [bool(state.state) for state in pin.states]


async def _settle(service: GpioService, light: LightState) -> None:
    async with asyncio.timeout(2):
        while service.light is not light:  # noqa: ASYNC110 (set by the service's own task)
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.02)  # the animator thread renders it


async def test_single_led_follows_the_bus(factory: MockFactory) -> None:
    bus = EventBus()
    bus.set_state(DeviceState.LISTENING)  # before the service exists: it must start from this snapshot
    lights = {"kind": "led", "pins": [LED_PIN], "pwm": False,
              "patterns": {"thinking": {"effect": "blink", "on_seconds": 0.05, "off_seconds": 0.05},
                           "muted": {"effect": "blink", "on_seconds": 0.3, "off_seconds": 5}}}
    service = GpioService(_gpio(lights=lights), bus, pin_factory=factory)
    await service.start()
    serving = asyncio.create_task(service.serve())
    pin = factory.pin(LED_PIN)
    try:
        await _settle(service, LightState.LISTENING)
        assert pin.state == 1  # solid

        pin.clear_states()
        bus.set_state(DeviceState.THINKING)
        await _settle(service, LightState.THINKING)
        await asyncio.sleep(0.5)
        history = pin.states[1:]
        assert len(history) >= 6
        assert [bool(s.state) for s in history[:6]] == [False, True, False, True, False, True]
        assert all(0.02 < s.timestamp < 0.15 for s in history[1:6])  # edges about 50 ms apart

        bus.set_state(DeviceState.IDLE)
        await _settle(service, LightState.IDLE)
        assert pin.state == 0  # idle: off
        bus.publish(Muted(True))
        await _settle(service, LightState.MUTED)
        pin.clear_states()
        bus.set_state(DeviceState.SPEAKING)  # activity shows over the mute
        await _settle(service, LightState.SPEAKING)
        bus.set_state(DeviceState.IDLE)
        await _settle(service, LightState.MUTED)
        assert _states(pin)[-1] is True  # the muted blink starts with its short flash
    finally:
        serving.cancel()
        await service.stop()
    assert factory.pin(LED_PIN).state == 0  # lights off when PiBuddy stops


async def test_rgb_led_shows_the_pattern_colour_dimmed(factory: MockFactory) -> None:
    bus = EventBus()
    lights = {"kind": "rgb", "pins": [5, 6, 13], "brightness": 0.5,
              "patterns": {"listening": {"color": "#0040ff"}, "error": {"color": "#ff0000"}}}
    service = GpioService(_gpio(lights=lights), bus, pin_factory=factory)
    await service.start()
    serving = asyncio.create_task(service.serve())
    try:
        bus.set_state(DeviceState.LISTENING)
        await _settle(service, LightState.LISTENING)
        assert [factory.pin(p).state for p in (5, 6, 13)] == pytest.approx([0.0, 0.5 * 64 / 255, 0.5])
        bus.publish(ErrorOccurred("upstream", "test"))  # default error pattern blinks: red or dark, nothing else
        await _settle(service, LightState.ERROR)
        await asyncio.sleep(0.3)
        red = {round(s.state, 3) for s in factory.pin(5).states}
        assert {0.0, 0.5} <= red
        assert factory.pin(13).state == 0.0
    finally:
        serving.cancel()
        await service.stop()


async def test_an_error_flashes_until_the_state_changes_or_its_time_is_up(
        factory: MockFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpio_service, "ERROR_LIGHT_SECONDS", 0.3)
    bus = EventBus()
    bus.set_state(DeviceState.IDLE)
    service = GpioService(_gpio(lights={"kind": "led", "pins": [LED_PIN]}), bus, pin_factory=factory)
    await service.start()
    serving = asyncio.create_task(service.serve())
    try:
        await _settle(service, LightState.IDLE)
        bus.publish(ErrorOccurred("upstream", "could not start a conversation with the server"))
        await _settle(service, LightState.ERROR)
        await _settle(service, LightState.IDLE)  # back by itself: an error is not a state to stay in

        bus.publish(ErrorOccurred("upstream", "again"))
        await _settle(service, LightState.ERROR)
        bus.set_state(DeviceState.LISTENING)  # the user tries again: that shows at once
        await _settle(service, LightState.LISTENING)
    finally:
        serving.cancel()
        await service.stop()


class Apa102Receiver(MockSPIDevice):
    """The ring's side of the SPI wire: collects each transfer (select low .. high) as bytes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[bytes] = []

    def on_select(self) -> None:
        if self.select_pin.state == self.select_high:
            self.on_start()
        elif self.rx_buf:
            bits = self.rx_buf
            self.frames.append(bytes(int("".join("1" if b else "0" for b in bits[i:i + 8]), 2)
                                     for i in range(0, len(bits) - len(bits) % 8, 8)))


async def test_apa102_ring_receives_frames_for_each_state() -> None:
    factory = MockFactory()  # plain pins: the mock SPI pins are not PWM pins
    ring = Apa102Receiver(11, 10, 9, 8, pin_factory=factory)  # SPI port 0, device 0
    bus = EventBus()
    lights = {"kind": "apa102", "pixels": 4, "brightness": 0.5,
              "patterns": {"listening": {"color": "#0040ff"}}}
    service = GpioService(_gpio(lights=lights), bus, pin_factory=factory)
    await service.start()
    serving = asyncio.create_task(service.serve())
    try:
        bus.set_state(DeviceState.LISTENING)
        await _settle(service, LightState.LISTENING)
        assert ring.frames[-1] == apa102_frame([(0.0, 64 / 255, 1.0)] * 4, 0.5)
        assert ring.frames[-1].hex() == "00000000" + "f0ff4000" * 4 + "ffffffff"
        bus.set_state(DeviceState.IDLE)
        await _settle(service, LightState.IDLE)
        assert ring.frames[-1].hex() == "00000000" + "f0000000" * 4 + "ffffffff"
    finally:
        serving.cancel()
        await service.stop()
        ring.close()
        factory.reset()


async def test_relays_switch_by_name_and_room(factory: MockFactory) -> None:
    config = _gpio(relays=[{"name": "fan", "pin": 23, "area": "bedroom"},
                           {"name": "pump", "pin": 24, "active_high": False, "aliases": ["water pump"]},
                           {"name": "heater", "pin": 25, "initial": True}])
    relays = Relays(config, pin_factory=factory)
    registry = ToolRegistry()
    for tool in gpio_tools(relays):
        registry.register(tool)
    service = RelayService(relays)
    await service.start()
    try:
        assert [factory.pin(p).state for p in (23, 24, 25)] == [0, 1, 1]  # initial; pump is active-low
        assert await registry.call("gpio_switch", {"name": "bedroom", "action": "on"}) == ToolResult(
            "The fan is now on.")
        assert await registry.call("gpio_switch", {"name": "water pump", "action": "on"}) == ToolResult(
            "The pump is now on.")
        assert [factory.pin(p).state for p in (23, 24)] == [1, 0]
        assert (await registry.call("gpio_switch", {"name": "Fan", "action": "state"})).text == "The fan is on."
        await registry.call("gpio_switch", {"name": "fan", "action": "off"})
        assert factory.pin(23).state == 0
        result = await registry.call("gpio_switch", {"name": "kettle", "action": "on"})
        assert result == ToolResult("there is no switch called 'kettle'; known switches: fan (bedroom), pump, "
                                    "heater", is_error=True)
        assert (await registry.call("gpio_switch", {"name": "fan", "action": "blink"})).is_error
        assert "Switches: fan (bedroom), pump, heater." in registry.get("gpio_switch").description  # type: ignore[union-attr]
    finally:
        await service.stop()


async def test_not_on_a_pi_one_log_line_and_the_driver_stays_off(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    config = _gpio(button={"pin": BUTTON}, lights={"kind": "led", "pins": [LED_PIN]},
                   relays=[{"name": "fan", "pin": 23}])
    gpio, relays = GpioService(config, bus), Relays(config)
    relay_service = RelayService(relays)
    registry = ToolRegistry()
    for tool in gpio_tools(relays):
        registry.register(tool)
    with caplog.at_level(logging.INFO, logger="pibuddy"):
        await gpio.start()
        await relay_service.start()
        serving = asyncio.create_task(gpio.serve())
        await asyncio.sleep(0.1)
        assert not serving.done()  # no crash, nothing for the supervisor to restart
        serving.cancel()
        result = await registry.call("gpio_switch", {"name": "fan", "action": "on"})
        await gpio.stop()
        await relay_service.stop()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("pibuddy.drivers.gpio")]
    assert len(lines) == 2
    assert lines[0].startswith("GPIO is not available (not a Raspberry Pi, or no pin library): lgpio: ")
    assert lines[0].endswith("; the button and status lights stay off")
    assert lines[1].endswith("; the relays (gpio_switch) stay off")
    assert not gpio.health().ok
    assert result.is_error
    assert result.text.startswith("GPIO is not available")


def test_toolbox_and_services_wire_ble_and_gpio() -> None:
    from pibuddy.wiring.services import build_services  # noqa: PLC0415

    config = Config.model_validate({
        "audio": {"enabled": False}, "upstream": {"enabled": False}, "tools": {"builtin": False},
        "ble": {"enabled": True}, "gpio": {"enabled": True, "relays": [{"name": "fan", "pin": 23}]}})
    toolbox = build_toolbox(config)
    assert [t.name for t in toolbox.registry.list()] == ["ble_list_sensors", "ble_read_sensor", "gpio_switch"]
    assert [s.name for s in toolbox.services] == ["ble", "gpio_relays"]
    names = [s.name for s in build_services(config, EventBus())]
    assert [n for n in names if n.startswith(("ble", "gpio"))] == ["ble", "gpio_relays", "gpio"]
