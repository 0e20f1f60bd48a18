"""The push-to-talk button: press -> "listen_start", release -> "listen_stop"; a long press -> its hold action.

`PushToTalk` is the pure decision (which commands each edge means); gpiozero measures debounce and hold
time and calls back from its own threads, and the commands cross to the event loop only through
`EventBus.publish_threadsafe`. A long press first aborts the listening turn its own press started, then
(for toggle_mute) toggles the mute; its release sends nothing.
"""

from __future__ import annotations

import threading
from typing import Final

from gpiozero import Button, Factory

from pibuddy.config import ButtonConfig, ButtonHoldAction
from pibuddy.events import Command, CommandName, EventBus

_HOLD_COMMANDS: Final = {
    ButtonHoldAction.ABORT: (CommandName.ABORT,),
    ButtonHoldAction.TOGGLE_MUTE: (CommandName.ABORT, CommandName.TOGGLE_MUTE),
    ButtonHoldAction.PAIR: (CommandName.ABORT, CommandName.OPEN_PAIRING),
    ButtonHoldAction.NONE: (),
}


class PushToTalk:
    """Commands for each button edge; thread-safe (gpiozero calls from its pin and hold threads)."""

    def __init__(self, hold_action: ButtonHoldAction) -> None:
        self._hold_commands = _HOLD_COMMANDS[hold_action]
        self._held = False
        self._lock = threading.Lock()

    def pressed(self) -> tuple[CommandName, ...]:
        with self._lock:
            self._held = False
        return (CommandName.LISTEN_START,)

    def held(self) -> tuple[CommandName, ...]:
        with self._lock:
            self._held = bool(self._hold_commands)
        return self._hold_commands

    def released(self) -> tuple[CommandName, ...]:
        with self._lock:
            held, self._held = self._held, False
        return () if held else (CommandName.LISTEN_STOP,)


class ButtonWatcher:
    """A gpiozero `Button` whose edges become `Command` events on the bus.

    Args:
        config: pin and behaviour.
        bus: where the commands go (its loop must be bound).
        pin_factory: the gpiozero pin factory.
    """

    def __init__(self, config: ButtonConfig, bus: EventBus, pin_factory: Factory) -> None:
        assert config.pin is not None
        self._bus = bus
        logic = PushToTalk(config.hold_action)
        self._button = Button(config.pin, pull_up=config.pull_up, bounce_time=config.bounce_seconds or None,
                              hold_time=config.hold_seconds, pin_factory=pin_factory)
        self._button.when_pressed = lambda: self._publish(logic.pressed())
        self._button.when_released = lambda: self._publish(logic.released())
        if config.hold_action is not ButtonHoldAction.NONE:
            self._button.when_held = lambda: self._publish(logic.held())

    def close(self) -> None:
        self._button.close()

    def _publish(self, commands: tuple[CommandName, ...]) -> None:
        for name in commands:
            self._bus.publish_threadsafe(Command(name))
