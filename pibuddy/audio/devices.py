"""Sound devices through PortAudio (sounddevice): list them, and pick input/output by partial name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pibuddy.errors import PiBuddyError


class AudioDeviceError(PiBuddyError):
    """No usable sound device, or PortAudio itself is missing."""


@dataclass(frozen=True, slots=True)
class AudioDevice:
    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float


@dataclass(frozen=True, slots=True)
class ChosenDevices:
    input_index: int | None
    input_name: str
    output_index: int | None
    output_name: str


def _sounddevice() -> Any:
    try:
        import sounddevice  # noqa: PLC0415 (loading PortAudio is slow and may fail; only when needed)
    except OSError as exc:  # the wheel is there but libportaudio2 is not
        raise AudioDeviceError(
            f"PortAudio is not available ({exc}); run ./setup.sh or apt install libportaudio2"
        ) from None
    except ImportError:
        raise AudioDeviceError("the sounddevice package is missing; run ./setup.sh") from None
    return sounddevice


def list_devices() -> list[AudioDevice]:
    sd = _sounddevice()
    host_apis = [api["name"] for api in sd.query_hostapis()]
    return [
        AudioDevice(i, d["name"], host_apis[d["hostapi"]], d["max_input_channels"], d["max_output_channels"],
                    d["default_samplerate"])
        for i, d in enumerate(sd.query_devices())
    ]


def resolve_devices(input_name: str | None, output_name: str | None) -> ChosenDevices:
    """Find the configured devices by case-insensitive partial name; None means the system default."""
    devices = list_devices()
    if not devices:
        raise AudioDeviceError("no sound devices found (is the card connected? see `aplay -l`)")
    chosen_in = _pick(devices, input_name, "input", lambda d: d.max_input_channels > 0)
    chosen_out = _pick(devices, output_name, "output", lambda d: d.max_output_channels > 0)
    return ChosenDevices(
        chosen_in.index if chosen_in else None, chosen_in.name if chosen_in else "system default",
        chosen_out.index if chosen_out else None, chosen_out.name if chosen_out else "system default",
    )


def _pick(devices: list[AudioDevice], wanted: str | None, kind: str, usable: Any) -> AudioDevice | None:
    candidates = [d for d in devices if usable(d)]
    if not candidates:
        raise AudioDeviceError(f"no {kind} device found (`pibuddy audio-devices` lists what PortAudio sees)")
    if wanted is None:
        return None
    matches = [d for d in candidates if wanted.lower() in d.name.lower()]
    if not matches:
        names = ", ".join(sorted({d.name for d in candidates}))
        raise AudioDeviceError(f"no {kind} device matches {wanted!r}; available: {names}")
    return matches[0]
