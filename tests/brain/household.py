"""PiBuddy's own household sentences over the test Home Assistant's devices (tests/peers/homeassistant.py): the
accuracy benchmark (bench/brain_accuracy.py) says them, and the brain's tests read them as text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

LR, FLOOR, BED = "light.living_room_light", "light.floor_lamp", "light.bedroom_light"
LR_LIGHTS = frozenset({LR, FLOOR})
ALL_LIGHTS = frozenset({LR, FLOOR, BED, "light.desk_lamp"})
BLINDS, DOOR, FAN, KFAN = "cover.bedroom_blinds", "lock.front_door", "fan.ceiling_fan", "input_boolean.kitchen_fan"
SPEAKER, THERMO, GUEST = "media_player.kitchen_speaker", "climate.living_room_thermostat", "input_boolean.guest_mode"
LR_TEMPERATURE = frozenset({"sensor.living_room_temperature", THERMO})
ANSWER: Final = "answer"  # answered locally, no tool
STATE: Final = "state"


@dataclass(frozen=True, slots=True)
class Command:
    text: str
    action: str
    devices: frozenset[str] = frozenset()
    value: object = None


def _c(text: str, action: str, devices: str | frozenset[str] = frozenset(), value: object = None) -> Command:
    return Command(text, action, frozenset({devices}) if isinstance(devices, str) else devices, value)


# PiBuddy's own household commands, over the test Home Assistant's devices (tests/peers/homeassistant.py).
COMMANDS: Final = [
    _c("turn on the living room light", "turn_on", LR), _c("turn off the living room light", "turn_off", LR),
    _c("switch on the big lamp", "turn_on", LR), _c("turn off the floor lamp", "turn_off", FLOOR),
    _c("turn on the floor lamp", "turn_on", FLOOR), _c("floor lamp on", "turn_on", FLOOR),
    _c("bedroom light off", "turn_off", BED), _c("turn on the bedroom light", "turn_on", BED),
    _c("turn off the lights in the living room", "turn_off", LR_LIGHTS),
    _c("turn on the living room lights", "turn_on", LR_LIGHTS),
    _c("switch off the lounge lights", "turn_off", LR_LIGHTS), _c("turn off all the lights", "turn_off", ALL_LIGHTS),
    _c("turn on all the lights", "turn_on", ALL_LIGHTS),
    _c("set the floor lamp brightness to 40 percent", "set_brightness", FLOOR, 40),
    _c("dim the bedroom light to 30 percent", "set_brightness", BED, 30),
    _c("set the living room lights to 75 percent", "set_brightness", LR_LIGHTS, 75),
    _c("brighten the floor lamp to 100 percent", "set_brightness", FLOOR, 100),
    _c("set the floor lamp to 24 percent", "set_brightness", FLOOR, 24),
    _c("set the bedroom light to red", "set_color", BED, "red"),
    _c("set the bedroom light to blue", "set_color", BED, "blue"),
    _c("set the bedroom light color to green", "set_color", BED, "green"),
    _c("open the bedroom blinds", "open", BLINDS), _c("close the bedroom blinds", "close", BLINDS),
    _c("open the blinds", "open", BLINDS), _c("close the blinds", "close", BLINDS),
    _c("set the bedroom blinds to 50 percent", "set_position", BLINDS, 50),
    _c("lock the front door", "lock", DOOR), _c("unlock the front door", "unlock", DOOR),
    _c("turn on the kitchen fan", "turn_on", KFAN), _c("start the kitchen fan", "turn_on", KFAN),
    _c("stop the kitchen fan", "turn_off", KFAN), _c("turn on the ceiling fan", "turn_on", FAN),
    _c("turn off the ceiling fan", "turn_off", FAN), _c("turn on the fan", "turn_on", FAN),
    _c("turn on guest mode", "turn_on", GUEST), _c("turn off guest mode", "turn_off", GUEST),
    _c("activate movie time", "scene", "scene.movie_time"), _c("activate good night", "script", "script.good_night"),
    _c("set the thermostat to 21 degrees", "set_temperature", THERMO, 21),
    _c("set the living room to 22 degrees", "set_temperature", THERMO, 22),
    _c("set the temperature in the living room to 20 degrees", "set_temperature", THERMO, 20),
    _c("what is the temperature in the living room", STATE, LR_TEMPERATURE),
    _c("how warm is it in the living room", STATE, LR_TEMPERATURE),
    _c("is the floor lamp on", STATE, FLOOR), _c("is the front door locked", STATE, DOOR),
    _c("are the bedroom blinds open", STATE, BLINDS), _c("is the kitchen fan on", STATE, KFAN),
    _c("pause the kitchen speaker", "pause", SPEAKER), _c("resume the kitchen speaker", "play", SPEAKER),
    _c("set the kitchen speaker volume to 30 percent", "set_volume", SPEAKER, 30),
    _c("turn everything off in the kitchen", "turn_off", frozenset({KFAN, SPEAKER})),
    _c("could you turn on the floor lamp", "turn_on", FLOOR), _c("please turn off the big lamp", "turn_off", LR),
    _c("switch the living room lights off please", "turn_off", LR_LIGHTS),
    _c("turn off the bedroom lights", "turn_off", BED),
    _c("dim the living room lights to 10 percent", "set_brightness", LR_LIGHTS, 10),
    _c("set the bedroom light brightness to 65 percent", "set_brightness", BED, 65),
    _c("turn the floor lamp off", "turn_off", FLOOR), _c("turn the ceiling fan on", "turn_on", FAN),
    _c("what time is it", ANSWER), _c("what is the date today", ANSWER), _c("living room light on", "turn_on", LR),
]
NON_COMMANDS: Final = [
    "tell me a joke", "what is the weather like in paris today", "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore", "the cat sat on the mat", "please order a pizza with extra cheese",
    "who won the football game last night", "i need to buy milk and eggs", "remind me to call my mother",
    "how far away is the moon", "play some jazz music", "my back hurts a little today", "can you spell necessary",
    "the living room needs a new sofa", "the lamp in the shop was expensive", "turn the page of the book",
    "i left the lights on at the office yesterday", "the fan club meets on tuesday", "good morning how are you",
    "what is two plus two", "the kitchen floor is wet", "my sister bought a blue lamp",
]
