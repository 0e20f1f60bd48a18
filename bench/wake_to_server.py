"""Wake word -> xiaozhi server: how long the whole device path takes, over MQTT+UDP and over WebSocket.

"okay nabu" (espeak-ng) is spoken into a private PulseAudio virtual microphone. The real `AudioPipeline`
hears it and publishes `WakeDetected`; the real `DeviceClientService` (device client, `PipelineAudioPort`) opens
a channel to the xiaozhi test server (tests/peers/xiaozhi_server.py) through a real mosquitto broker, or
directly over WebSocket, and sends hello, the wake word audio (pre-roll), `listen detect` and `listen start`;
then the microphone streams live. Every moment is stamped on the one monotonic clock of this process, where
it happens: the wake event when its reader gets it, the server's milestones when they are set, an uplink
frame when the server records it. Each wake starts from a closed conversation (`close_conversation()`),
so each one opens the channel afresh (a WebSocket connect; on MQTT, hello over the live broker link). Each
transport runs twice: with a server that says nothing after `listen start` (only the device can open the
microphone) and with one that greets the wake word (the device does not stream while it speaks).

Usage: .venv/bin/python bench/wake_to_server.py [--wakes N] [--record]
`--record` appends the table to bench/RESULTS.md under today's date.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.peers: the servers, speech

from _results import publish

from pibuddy.audio import devices
from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.audio.port import PipelineAudioPort
from pibuddy.audio.uplink import UplinkStream
from pibuddy.config import AudioConfig
from pibuddy.device_client.service import DeviceClientService
from pibuddy.events import EventBus
from pibuddy.wiring.tools import build_registry
from pibuddy.xiaozhi import State
from tests.audio.conftest import play_into_microphone
from tests.device_client_helpers import device_config
from tests.peers.mosquitto import MosquittoBroker
from tests.peers.pulseaudio import PulseServer, pulseaudio_server
from tests.peers.speech import speech
from tests.peers.xiaozhi_server import MqttBrokerInfo, XiaozhiTestServer

_STEP: Final = 8.0  # every milestone must come within this many seconds
_PACER_LATENCY_MS: Final = 100  # see the `pulse` fixture in tests/audio/conftest.py
_PULSE_CLIENT_ENV: Final = ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR", "HOME")
_WAKE_WORD: Final = "Okay Nabu"
_TRANSPORTS: Final = ("mqtt", "websocket")


class _StampedEvent(asyncio.Event):
    """A server milestone that remembers when it was first set (until cleared)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None

    def set(self) -> None:
        if not self.is_set():
            self.at = time.monotonic()
        super().set()

    def clear(self) -> None:
        self.at = None
        super().clear()


class _StampedFrames(list[Any]):
    """The server's `uplink_frames`, noting when each frame was recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self._grew = asyncio.Event()

    def append(self, item: Any) -> None:
        self.times.append(time.monotonic())
        super().append(item)
        self._grew.set()

    async def time_of(self, index: int) -> float:
        """When frame `index` reached the server (waits for it, at most `_STEP` seconds)."""
        async with asyncio.timeout(_STEP):
            while len(self.times) <= index:
                self._grew.clear()
                await self._grew.wait()
        return self.times[index]


class _CountingPort(PipelineAudioPort):
    """The real port, noting how many pre-roll frames each wake sends before the live stream, and when the
    client first turned the uplink on after it."""

    def __init__(self, pipeline: AudioPipeline) -> None:
        super().__init__(pipeline)
        self.preroll_frames: list[int] = []
        self.uplink_on: float | None = None

    def wake_audio(self) -> list[bytes]:
        frames = super().wake_audio()
        self.preroll_frames.append(len(frames))
        self.uplink_on = None
        return frames

    def open_uplink(self, *, end_on_silence: bool) -> UplinkStream:
        if self.uplink_on is None:
            self.uplink_on = time.monotonic()
        return super().open_uplink(end_on_silence=end_on_silence)


@dataclass
class _Wake:
    """One wake, in seconds after the wake event."""

    hello: float
    first_frame: float
    detect: float
    start: float
    uplink_on: float
    """The device client switched its microphone uplink on."""
    first_live: float
    """The first live microphone frame after the pre-roll."""


@dataclass
class _Run:
    transport: str
    greeting: bool = False
    wakes: list[_Wake] = field(default_factory=list)
    preroll_frames: list[int] = field(default_factory=list)


def _stamp_server(server: XiaozhiTestServer) -> tuple[dict[str, _StampedEvent], _StampedFrames]:
    """Swap in stamped milestones and frame list (the server reads them off itself at each use)."""
    milestones = {name: _StampedEvent() for name in ("hello_received", "listen_detect", "listen_start")}
    for name, event in milestones.items():
        setattr(server, name, event)
    frames = _StampedFrames()
    server.uplink_frames = frames
    return milestones, frames


def _at(milestone: _StampedEvent) -> float:
    assert milestone.at is not None, "a milestone was not reached"
    return milestone.at


async def _measure(pulse: PulseServer, pipeline: AudioPipeline, bus: EventBus, server: XiaozhiTestServer, *,
                   transport: str, wakes: int) -> _Run:
    milestones, frames = _stamp_server(server)
    run = _Run(transport)
    phrase = speech("okay nahboo", pad=1.0)  # PulseAudio drops the start of a fresh playback
    with tempfile.TemporaryDirectory(prefix="pibuddy-bench-") as state:
        config = device_config(Path(state), server.ota_url, transport=transport)
        port = _CountingPort(pipeline)
        service = DeviceClientService(config, bus=bus, registry=build_registry(config), audio=port)
        await service.start()
        woke: asyncio.Queue[float] = asyncio.Queue()

        async def note_wakes() -> None:
            async for _ in pipeline.wake_events():
                woke.put_nowait(time.monotonic())

        watcher = asyncio.create_task(note_wakes())
        try:
            client = service.client
            assert client is not None
            for _ in range(wakes):
                server.reset_milestones()
                before = len(frames)
                await play_into_microphone(pulse, phrase)
                wake_at = await asyncio.wait_for(woke.get(), _STEP)
                await asyncio.wait_for(server.listen_start.wait(), _STEP)
                first = await frames.time_of(before)
                live = await frames.time_of(before + port.preroll_frames[-1])
                hello, detect, start = (_at(milestones[name]) for name in ("hello_received", "listen_detect",
                                                                           "listen_start"))
                assert port.uplink_on is not None, "the device never turned its uplink on"
                run.wakes.append(_Wake(hello - wake_at, first - wake_at, detect - wake_at, start - wake_at,
                                       port.uplink_on - wake_at, live - wake_at))
                await asyncio.sleep(0.3)  # then the device ends the conversation
                await client.close_conversation()
                async with asyncio.timeout(_STEP):
                    await client.wait_state(State.IDLE)
                await asyncio.sleep(1.0)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await service.stop()
    run.preroll_frames = port.preroll_frames
    assert server.bad_input == [], f"the server dropped bad input: {server.bad_input}"
    return run


@contextlib.asynccontextmanager
async def _server(broker: MosquittoBroker | None, *, greeting: bool) -> AsyncIterator[XiaozhiTestServer]:
    """The test server (MQTT+UDP through `broker`, else WebSocket only); without `greeting` it says nothing
    after `listen start`, so only the device can open the microphone."""
    mqtt = None if broker is None else MqttBrokerInfo(broker.host, broker.port)
    async with XiaozhiTestServer(mqtt=mqtt, utterance_frames=None, mcp=False, wake_words=(_WAKE_WORD,)) as server:
        if not greeting:
            server.settings.greeting_text = None
        if mqtt is not None:
            await asyncio.wait_for(server.mqtt_ready.wait(), _STEP)
        yield server


async def _with_pulse(wakes: int) -> list[_Run]:
    async with pulseaudio_server(mic=True) as pulse:
        os.environ.update({key: pulse.env[key] for key in _PULSE_CLIENT_ENV})
        os.environ.update({"PULSE_SOURCE": pulse.mic_source or "", "PULSE_SINK": pulse.sink})
        pacers = [await asyncio.create_subprocess_exec(  # keep both null sinks real-time
            "parec", "-d", f"{sink}.monitor", "--raw", f"--latency-msec={_PACER_LATENCY_MS}", env=pulse.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            for sink in (pulse.sink, pulse.mic_feed)]
        try:
            assert devices.refresh_device_list(), "PortAudio could not rescan the devices"
            bus = EventBus()
            runs = []
            async with AudioPipeline(AudioConfig(), bus) as pipeline, MosquittoBroker() as broker:
                await asyncio.wait_for(pipeline.microphone.opened.wait(), _STEP)
                await asyncio.sleep(2.0)  # a full pre-roll exists before the first wake word
                for greeting in (False, True):
                    for transport in _TRANSPORTS:
                        async with _server(broker if transport == "mqtt" else None, greeting=greeting) as server:
                            run = await _measure(pulse, pipeline, bus, server, transport=transport, wakes=wakes)
                        run.greeting = greeting
                        runs.append(run)
            return runs
        finally:
            for pacer in pacers:
                pacer.terminate()
                await pacer.wait()


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} | {max(values) * 1000:.1f}"


def report(wakes: int) -> list[str]:
    runs = asyncio.run(_with_pulse(wakes))
    silent: list[tuple[str, Callable[[_Wake], float]]] = [
        ("wake event -> hello at the server", lambda w: w.hello),
        ("wake event -> first uplink frame at the server (pre-roll)", lambda w: w.first_frame),
        ("wake event -> `listen detect` at the server", lambda w: w.detect),
        ("wake event -> device turns its microphone uplink on (after sending `listen start`)",
         lambda w: w.uplink_on),
        ("wake event -> `listen start` at the server", lambda w: w.start),
        ("wake event -> first live microphone frame at the server", lambda w: w.first_live),
    ]
    greeted: list[tuple[str, Callable[[_Wake], float]]] = [
        ("greeting: wake event -> device turns its microphone uplink on", lambda w: w.uplink_on),
        ("greeting: wake event -> `listen start` at the server", lambda w: w.start),
        ("greeting: wake event -> first live microphone frame (after the greeting)", lambda w: w.first_live),
    ]
    prerolls = sorted({n for run in runs for n in run.preroll_frames})
    lines = [f"\"okay nabu\" (espeak-ng) spoken {wakes} times into the PulseAudio virtual mic per transport and "
             "server behaviour; the real AudioPipeline + PipelineAudioPort + DeviceClientService against the xiaozhi "
             "test server (MQTT through a real mosquitto + UDP, or WebSocket), all on 127.0.0.1, each wake from a "
             f"closed conversation. Pre-roll sent per wake: {', '.join(map(str, prerolls))} Opus frames of 60 ms. "
             "Times in ms after the wake event reached its reader (pipeline.wake_events()), all stamped on one "
             "monotonic clock. The server either says nothing after `listen start` (first rows), or answers "
             "the wake word with a greeting (8 TTS frames), during which the device does not stream "
             "(`greeting` rows):", "",
             "| stage | MQTT+UDP median | max | WebSocket median | max |", "|---|---:|---:|---:|---:|"]
    for rows, greeting in ((silent, False), (greeted, True)):
        by_transport = {run.transport: run.wakes for run in runs if run.greeting is greeting}
        for name, value in rows:
            cells = " | ".join(_ms([value(w) for w in by_transport[t]]) for t in _TRANSPORTS)
            lines.append(f"| {name} | {cells} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wakes", type=int, default=5, choices=range(1, 21), metavar="N",
                        help="wakes per transport, 1-20 (default 5)")
    parser.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    lines = report(args.wakes)
    publish("wake word to xiaozhi server", __file__, lines, record=args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
