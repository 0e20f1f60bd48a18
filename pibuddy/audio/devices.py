"""Sound devices through PortAudio (sounddevice): list them, and pick input/output by partial name."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pibuddy.audio.errors import AudioError

_LOGGER = logging.getLogger(__name__)
_Stream = TypeVar("_Stream")

STALL_SECONDS: Final = 2.0
"""A started stream whose callback has not run for this long has lost its device."""


class AudioDeviceError(AudioError):
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


def sounddevice_module() -> Any:
    """The sounddevice module, or AudioDeviceError when PortAudio (libportaudio2) is missing."""
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
    sd = sounddevice_module()
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


class AudioDeviceLost(AudioDeviceError):
    """An open stream stopped delivering (USB unplugged, sound server restarted); the owner reopens it."""


def stream_lost(stream: Any, last_callback: float, now: float) -> bool:
    """Whether a started stream has died: PortAudio stopped it, or its callbacks stopped coming (USB unplug,
    suspended sound server). Callers poll this: a dead device calls back no one."""
    return not stream.active or now - last_callback >= STALL_SECONDS


@contextlib.contextmanager
def portaudio_errors(what: str) -> Iterator[None]:
    """Turn a PortAudio error raised inside the block (start, stream time...) into AudioDeviceLost."""
    sd = sounddevice_module()
    try:
        yield
    except sd.PortAudioError as exc:
        raise AudioDeviceLost(f"{what}: {exc}") from None


_streams_lock = threading.Lock()
_streams_open = 0


@contextlib.contextmanager
def opening_stream() -> Iterator[None]:
    """Count a stream as open from before PortAudio opens it (uncounted again if the open fails):
    `refresh_device_list` never pulls PortAudio from under an open stream. Counted only once it was open, a
    re-scan in another thread could free the new stream under its owner, whose next call on it read freed
    memory (a test run aborted so, in cffi's callback, when a microphone came back during a re-scan)."""
    global _streams_open  # noqa: PLW0603 (PortAudio itself is process-global state)
    with _streams_lock:
        _streams_open += 1
    try:
        yield
    except BaseException:
        stream_closed()
        raise


def stream_closed() -> None:
    global _streams_open  # noqa: PLW0603
    with _streams_lock:
        _streams_open = max(0, _streams_open - 1)


async def open_stream_in_thread(open_stream: Callable[[], _Stream]) -> _Stream:
    """`open_stream()` (blocking, under `opening_stream`) in a worker thread. A cancelled wait cannot stop the
    thread, which still opens the stream: then it is closed (in a thread of its own) once the open returns, or it
    would never be closed and, still counted open, would refuse every later device re-scan. Re-raises the
    cancellation."""
    opening = asyncio.get_running_loop().run_in_executor(None, open_stream)
    try:
        return await asyncio.shield(opening)  # a plain future, not a task: no shutdown cancels it either
    except asyncio.CancelledError:
        opening.add_done_callback(_close_unclaimed)
        raise


async def close_stream_in_thread(stream: Any) -> None:
    """Close a stream opened under `opening_stream` in a worker thread (PortAudio may block) and uncount it once
    closed. Cancelled meanwhile, the close is still waited for before the cancellation is re-raised: the owner's
    stop() returns with the device released, and a re-scan never runs under a stream being closed."""
    closing = asyncio.get_running_loop().run_in_executor(None, _close, stream)
    try:
        await asyncio.shield(closing)
    except asyncio.CancelledError:
        await closing
        raise


def _close_unclaimed(opening: asyncio.Future[Any]) -> None:
    """Close the stream of an open whose caller was cancelled, off the event loop. A thread of its own, not the
    loop's executor: at shutdown the executor takes no more work, and the stream must still be closed."""
    if not opening.cancelled() and opening.exception() is None:
        threading.Thread(target=_close, args=(opening.result(),), name="close-unclaimed-stream").start()


def _close(stream: Any) -> None:
    try:
        stream.close(ignore_errors=True)
    finally:
        stream_closed()


def refresh_device_list() -> bool:
    """Re-scan devices (PortAudio lists them once at start-up, so a re-plugged USB card needs this).

    Skipped, returning False, while any stream is open: re-initialising PortAudio closes every stream.
    """
    sd = sounddevice_module()
    with _streams_lock:
        if _streams_open:
            return False
        sd._terminate()  # sounddevice's documented way to re-scan devices
        sd._initialize()
    return True


def device_index(name: str | None, kind: str) -> int | None:
    """The index of the first `kind` ("input"/"output") device whose name contains `name`; None: default."""
    if name is None:
        return None
    chosen = resolve_devices(name, None) if kind == "input" else resolve_devices(None, name)
    return chosen.input_index if kind == "input" else chosen.output_index


def choose_samplerate(device: int | None, preferred: int, kind: str) -> int:
    """`preferred` if the device accepts it (ALSA plug/pulse devices take any rate), else its default rate."""
    sd = sounddevice_module()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    try:
        check(device=device, samplerate=preferred, channels=1, dtype="int16")
    except (sd.PortAudioError, ValueError):
        try:
            info = sd.query_devices(device, kind)
        except (sd.PortAudioError, ValueError) as exc:  # e.g. no default device at all ("device -1")
            which = "the default" if device is None else f"device {device}"
            raise AudioDeviceError(f"{which} {kind} device is not usable ({exc}); is one connected? "
                                   f"see `pibuddy audio-devices`") from None
        return int(info["default_samplerate"])
    return preferred


def echo_cancel_source(environ: dict[str, str] | None = None) -> str | None:
    """The name of a PulseAudio/PipeWire echo-cancel source (the microphone with PiBuddy's voice removed).

    PulseAudio's module-echo-cancel names it `<master>.echo-cancel` by default and PipeWire's
    libpipewire-module-echo-cancel `echo-cancel-source`; matching "echo" and "cancel" in the name or the
    owning module covers both. UNCONFIRMED for PipeWire setups with custom names (set input_device then).
    """
    return _echo_cancel_node("sources", environ)


def echo_cancel_sink(environ: dict[str, str] | None = None) -> str | None:
    """The echo-cancel module's sink: what is played there is the reference the canceller removes from the
    microphone, so PiBuddy must play there for the echo-cancel source to work."""
    return _echo_cancel_node("sinks", environ)


_set_by_us: dict[str, str] = {}  # PULSE_SOURCE / PULSE_SINK values this process chose (not the user's)


def follow_echo_canceller(variable: str, node: str | None) -> bool:
    """Point `variable` (PULSE_SOURCE or PULSE_SINK, which the pulse ALSA plugin reads when a stream opens, so
    the default device becomes that node) at the echo canceller's `node`; when the canceller is gone, take back
    what we set, so the next open uses the plain default again. A value the user set is never touched.
    True when streams opened now use `node`."""
    current = os.environ.get(variable)
    ours = current is not None and _set_by_us.get(variable) == current
    if node is not None and node != current and (current is None or ours):
        os.environ[variable] = _set_by_us[variable] = node
        _LOGGER.info("audio: using the echo canceller's %s %s", "sink" if variable.endswith("SINK") else "source",
                     node)
    elif node is None and ours:
        del os.environ[variable], _set_by_us[variable]
        _LOGGER.info("audio: the echo canceller's %s is gone; back to the default device", current)
    return node is not None and os.environ.get(variable) == node


def _echo_cancel_node(kind: str, environ: dict[str, str] | None) -> str | None:
    pactl = shutil.which("pactl")
    if pactl is None:
        return None
    try:
        result = subprocess.run([pactl, "list", "short", kind], capture_output=True, text=True, timeout=3,
                                env=environ, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in result.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or fields[1].endswith(".monitor"):  # a sink's monitor is not a microphone
            continue
        if any("echo" in f and "cancel" in f for f in fields[1:3]):
            return fields[1]
    return None

