"""Local brain latency and CPU per command, with no xiaozhi server: spoken into a PulseAudio virtual mic,
acted on in the real test Home Assistant, answered through the virtual speaker.

    .venv/bin/python bench/local_brain.py            # each command and the nonsense twice

Per command: end of speech (the pipeline's VAD ended the utterance) -> text recognised -> tool call done ->
reply audio handed to the speaker (PulseAudio adds its output latency, about 60 ms); and the process CPU
(all threads, not counting the espeak-ng child, which answers in about 15-35 ms) from the end of speech to
the reply being ready. The nonsense must be stopped by the confidence gate (outcome not_heard). Then the
gate's own cost, side by side: pocketsphinx CPU per utterance with and without the gate (the phone-loop
decode), on the same sentences file-fed over a microphone-like noise floor.
Needs pulseaudio, espeak-ng, sox and the test Home Assistant venv (tests/peers/).
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Final

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pibuddy.audio.pipeline import AudioPipeline  # noqa: E402
from pibuddy.audio.service import AudioService  # noqa: E402
from pibuddy.brain.asr.sphinx import PocketsphinxAsr  # noqa: E402
from pibuddy.brain.service import LocalBrainService  # noqa: E402
from pibuddy.brain.vocabulary import from_homeassistant  # noqa: E402
from pibuddy.config import BrainConfig, Config, HomeAssistantConfig, UpstreamConfig  # noqa: E402
from pibuddy.drivers.homeassistant.index import Index  # noqa: E402
from pibuddy.events import EventBus  # noqa: E402
from pibuddy.wiring.brain import brain_services  # noqa: E402
from pibuddy.wiring.tools import build_toolbox  # noqa: E402
from tests.audio.conftest import MonitorRecorder, play_into_microphone  # noqa: E402
from tests.brain.test_speech import in_a_room  # noqa: E402
from tests.peers.fixtures_homeassistant import SNAPSHOT  # noqa: E402
from tests.peers.homeassistant import running_peer  # noqa: E402
from tests.peers.pulseaudio import pulseaudio_server  # noqa: E402
from tests.peers.speech import silence, speech  # noqa: E402

COMMANDS: Final = ["turn on the living room light", "turn off the floor lamp", "open the bedroom blinds",
                   "is the floor lamp on", "what is the temperature in the living room"]
NONSENSE: Final = ["please order a pizza with extra cheese"]  # the grammar alone hears "the floor lamp on"
_GATE_ROUNDS: Final = 5


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


async def main() -> None:
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="pibuddy-bench-ha-") as ha_dir, running_peer(Path(ha_dir)) as ha:
        async with pulseaudio_server(mic=True) as pulse:
            os.environ.update({k: pulse.env[k] for k in ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR",
                                                         "HOME")})
            os.environ.update({"PULSE_SOURCE": pulse.mic_source or "", "PULSE_SINK": pulse.sink})
            config = Config(upstream=UpstreamConfig(enabled=False), brain=BrainConfig(offline_notice=False),
                            homeassistant=HomeAssistantConfig(enabled=True, url=ha.url, token=ha.token))
            bus = EventBus()
            toolbox = build_toolbox(config)
            audio = AudioService(AudioPipeline(config.audio, bus))
            router, brain = brain_services(config, bus, toolbox, audio.pipeline)
            assert isinstance(brain, LocalBrainService)
            services = [*toolbox.services, audio, router, brain]
            tasks = []
            for service in services:
                await service.start()
                tasks.append(asyncio.create_task(service.serve()))
            rows = []
            try:
                await asyncio.sleep(1.0)
                for text in (COMMANDS + NONSENSE) * 2:
                    rows.append(await _one(pulse, brain, text))
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for service in reversed(services):
                    await service.stop()
    print(f"{'command':45} {'outcome':9} {'asr':>5} {'tool':>5} {'tts':>5} {'ready':>6} {'cpu':>5} "
          "(ms after end of speech; cpu ms)")
    for row in rows:
        print(f"{row[0]:45} {row[1]:9} " + " ".join(f"{_ms(v):>5}" for v in row[2:]))
    for label, column in (("ready", 5), ("cpu", 6)):
        values = [r[column] for r in rows if r[0] in COMMANDS]
        print(f"median {label}: {_ms(statistics.median(values))} ms (max {_ms(max(values))})")
    _gate_cost()


def _gate_cost() -> None:
    """pocketsphinx CPU per utterance with and without the confidence gate, interleaved."""
    household = from_homeassistant(Index.from_snapshot(SNAPSHOT))
    engines = {"gate": PocketsphinxAsr("en"), "no gate": PocketsphinxAsr("en", confidence_floor=None)}
    for engine in engines.values():
        engine.set_vocabulary(household)
    cpu: dict[str, list[float]] = {name: [] for name in engines}
    clips = [in_a_room(text) for text in COMMANDS + NONSENSE]
    gc.disable()
    try:
        for _ in range(_GATE_ROUNDS):
            for clip in clips:
                for name, engine in engines.items():
                    start = time.process_time()
                    engine.recognise(clip)
                    cpu[name].append(time.process_time() - start)
    finally:
        gc.enable()
    gated, plain = (statistics.median(cpu[name]) for name in engines)
    print(f"pocketsphinx per utterance ({len(clips)} clips x {_GATE_ROUNDS}, median CPU): gate {_ms(gated)} ms, "
          f"no gate {_ms(plain)} ms, the gate adds {_ms(gated - plain)} ms ({gated / plain - 1:.0%})")


async def _one(pulse, brain: LocalBrainService, text: str) -> tuple:  # type: ignore[no-untyped-def]
    spoken = np.concatenate([silence(0.5), speech("okay nahboo", pad=0.3), speech(text, pad=0.1), silence(1.0)])
    before = brain.last_timings
    async with MonitorRecorder(pulse):  # keeps the speaker's sink busy, as a listener would
        await play_into_microphone(pulse, spoken)
        deadline = time.monotonic() + 20
        while brain.last_timings is before and time.monotonic() < deadline:  # noqa: ASYNC110 (polls a field)
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
    timings = brain.last_timings
    if timings is None or timings is before:
        raise RuntimeError(f"no local turn for {text!r}")
    reply = brain.last_reply
    end = timings.speech_ended
    return (text, reply.outcome.value if reply else "-", timings.recognised - end, timings.acted - end,
            timings.reply_ready - timings.acted, timings.reply_ready - end, timings.cpu_seconds)


if __name__ == "__main__":
    asyncio.run(main())
