"""`pibuddy audio-devices`: list the sound devices PortAudio sees, to pick audio.input_device/output_device."""

from __future__ import annotations

import argparse
import sys

NAME = "audio-devices"
HELP = "list microphones and speakers (names to use for audio.input_device / audio.output_device)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    del args  # works without a config, so a user can run it before writing one
    from pibuddy.audio.devices import AudioDeviceError, list_devices  # noqa: PLC0415

    try:
        devices = list_devices()
    except AudioDeviceError as exc:
        print(f"pibuddy: {exc}", file=sys.stderr)
        return 1
    if not devices:
        print("no sound devices found (is the card connected? see `aplay -l`)")
        return 1
    print(f"{'#':>3}  {'IN':>2}  {'OUT':>3}  {'RATE':>6}  {'API':<10}  NAME")
    for d in devices:
        print(f"{d.index:>3}  {d.max_input_channels:>2}  {d.max_output_channels:>3}  "
              f"{d.default_samplerate:>6.0f}  {d.host_api:<10}  {d.name}")
    return 0
