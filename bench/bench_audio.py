"""Audio pipeline costs: idle listening CPU and RSS, wake -> first uplink packet, Opus per frame.

1. File-fed idle listening: the capture callback's conversion (48 kHz device -> soxr -> 16 kHz frames),
   the wake word engine and the webrtcvad pre-gate run over 60 s of quiet room noise, pink noise and
   non-wake speech; CPU seconds / audio seconds = share of one core.
2. Live idle listening (needs pulseaudio): the real `AudioPipeline` on a private PulseAudio virtual mic
   for `--seconds`, process CPU / wall time (PortAudio thread + event loop; the sound server not counted),
   then "okay nabu" is spoken: the wake event's delay after the phrase ends, and the time from the wake
   event to the first uplink Opus packet (pre-roll included; the upstream link is the client's).
3. Opus per 60 ms frame: uplink encode (16 kHz, complexity 0 and 5) and downlink decode (24 kHz).
RSS is the process peak after everything above.

Usage: .venv/bin/python bench/bench_audio.py [--seconds N] [--record]
`--record` appends the tables to bench/RESULTS.md under today's date.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Final

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.peers: speech and the PA daemon

from _results import publish

from pibuddy.audio.capture import _CaptureState
from pibuddy.audio.opus import OpusDecoder, OpusEncoder
from pibuddy.audio.vad.webrtc import WebRtcVad
from pibuddy.audio.wakeword import get_wakeword_engine
from pibuddy.config import AudioConfig, WakeWordConfig
from tests.peers.speech import noise, speech

_DEVICE_RATE: Final = 48000
_WARMUP_SECONDS: Final = 6.0


def _idle_audio() -> np.ndarray:
    parts = [noise("whitenoise", 20, volume=0.003), noise("pinknoise", 20, volume=0.3),
             speech("okay google, turn on the lights. the weather is nice today and the cat is asleep")]
    mix = np.concatenate(parts)
    reps = int(np.ceil(60 * 16000 / mix.size))
    return np.tile(mix, reps)[: 60 * 16000]


def file_fed_idle() -> list[tuple[str, float]]:
    """% of one core per stage over 60 s of audio."""
    import soxr  # noqa: PLC0415

    audio16 = _idle_audio()
    audio48 = soxr.resample(audio16, 16000, _DEVICE_RATE).astype(np.int16)
    seconds = audio16.size / 16000
    capture = _CaptureState(_DEVICE_RATE, queue_frames=10_000_000)
    block = _DEVICE_RATE * 60 // 1000  # the 60 ms PortAudio block
    start = time.process_time()
    for i in range(0, audio48.size - block + 1, block):
        capture.callback(audio48[i:i + block, None], block, None, None)
    capture_cpu = time.process_time() - start
    frames = [f.pcm for f in capture.frames]
    engine = get_wakeword_engine(WakeWordConfig())
    start = time.process_time()
    wakes = sum(engine.process(f) is not None for f in frames)
    wake_cpu = time.process_time() - start
    pregate = WebRtcVad(2)
    start = time.process_time()
    for f in frames:
        pregate.probability(f)
    gate_cpu = time.process_time() - start
    assert wakes == 0, "the idle audio must not wake"
    rows = [("capture callback (48 kHz -> soxr -> 16 kHz frames)", capture_cpu),
            ("wake word (pymicro-wakeword, okay_nabu)", wake_cpu), ("VAD pre-gate (webrtcvad)", gate_cpu)]
    rows.append(("total", sum(cpu for _, cpu in rows)))
    return [(name, 100 * cpu / seconds) for name, cpu in rows]


async def live_idle(seconds: float) -> dict[str, float] | None:
    """Idle CPU of the real pipeline on a PulseAudio virtual mic, then wake -> first uplink packet."""
    from pibuddy.audio import devices  # noqa: PLC0415
    from pibuddy.audio.pipeline import AudioPipeline  # noqa: PLC0415
    from tests.peers.pulseaudio import pulseaudio_server  # noqa: PLC0415

    async with pulseaudio_server(mic=True) as pulse:
        for key in ("PULSE_SERVER", "PULSE_RUNTIME_PATH", "XDG_RUNTIME_DIR", "HOME"):
            os.environ[key] = pulse.env[key]
        os.environ["PULSE_SOURCE"] = pulse.mic_source or ""
        pacer = await asyncio.create_subprocess_exec(  # keeps the null sink real-time (see tests/audio/conftest.py)
            "parec", "-d", f"{pulse.mic_feed}.monitor", "--raw", "--latency-msec=100", env=pulse.env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        devices.refresh_device_list()
        try:
            async with AudioPipeline(AudioConfig()) as pipeline:
                await asyncio.wait_for(pipeline.microphone.opened.wait(), 10)
                # Warm-up: here the first seconds of the first stream through the pulse ALSA plugin spin
                # PortAudio's thread (~45 % of a core for ~3 s, measured) before settling.
                await asyncio.sleep(_WARMUP_SECONDS)
                before, wall0 = _thread_cpu(), time.monotonic()
                await asyncio.sleep(seconds)
                after, wall = _thread_cpu(), time.monotonic() - wall0
                main_thread = str(threading.get_native_id())
                main = 100 * (after.get(main_thread, 0) - before.get(main_thread, 0)) / wall
                total = 100 * (sum(after.values()) - sum(before.values())) / wall
                phrase = speech("okay nahboo", pad=1.0)
                player = await asyncio.create_subprocess_exec(
                    "pacat", "--playback", "-d", pulse.mic_feed, "--raw", "--format=s16le", "--rate=16000",
                    "--channels=1", "--latency-msec=100", env=pulse.env, stdin=asyncio.subprocess.PIPE)
                loop = asyncio.get_running_loop()
                played_at = loop.time()
                feeder = asyncio.create_task(player.communicate(phrase.tobytes()))
                await asyncio.wait_for(anext(aiter(pipeline.wake_events())), 10)
                woke_at = loop.time()
                uplink = pipeline.uplink_opus(preroll=True)
                await anext(aiter(uplink))
                first_packet = loop.time() - woke_at
                uplink.stop()
                await feeder
        finally:
            pacer.terminate()
            await pacer.wait()
    phrase_end = np.nonzero(np.abs(phrase) > 300)[0][-1] / 16000
    return {"idle": total, "loop": main, "wake_after_phrase": woke_at - played_at - phrase_end,
            "first_packet": first_packet}


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per thread of this process (Linux /proc), keyed by thread id."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        found[task.name] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def opus_costs(frames: int = 500, rounds: int = 5) -> list[tuple[str, float]]:
    pcm16 = speech("the quick brown fox jumps over the lazy dog", pad=0.1)
    pcm24 = speech("the quick brown fox jumps over the lazy dog", rate=24000, pad=0.1)
    rows = []
    for complexity in (0, 5):
        encoder = OpusEncoder(complexity=complexity)
        chunks = [pcm16[i:i + 960].tobytes() for i in range(0, pcm16.size - 959, 960)]
        rows.append((f"encode 16 kHz, complexity {complexity}", _per_call(encoder.encode, chunks, frames, rounds)))
    encoder24 = OpusEncoder(sample_rate=24000, complexity=10, dtx=False)
    packets = [encoder24.encode(pcm24[i:i + 1440].tobytes()) for i in range(0, pcm24.size - 1439, 1440)]
    rows.append(("decode 24 kHz", _per_call(OpusDecoder().decode, packets, frames, rounds)))
    return rows


def _per_call(function, inputs: list[bytes], count: int, rounds: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(count):
            function(inputs[i % len(inputs)])
        times.append((time.perf_counter() - start) / count)
    return statistics.median(times) * 1e6


def report(seconds: float) -> list[str]:
    lines = ["Idle listening, file-fed (60 s of room noise, pink noise and non-wake speech), % of one core:", "",
             "| stage | % of a core |", "|---|---:|"]
    lines += [f"| {name} | {share:.2f} |" for name, share in file_fed_idle()]
    tools = ("pulseaudio", "pacat", "parec")
    live = asyncio.run(live_idle(seconds)) if all(shutil.which(tool) for tool in tools) else None
    lines += [""]
    if live is None:
        lines += ["Live idle listening: skipped (pulseaudio/pacat/parec not installed)."]
    else:
        lines += [f"Live idle listening, the real AudioPipeline on a PulseAudio virtual mic for {seconds:.0f} s "
                  f"after a {_WARMUP_SECONDS:.0f} s warm-up: "
                  f"{live['idle']:.2f} % of one core (target <= 2 %), of which the event loop (wake word, pre-roll, "
                  f"asyncio) {live['loop']:.2f} % and PortAudio's callback thread plus libpulse the rest.",
                  f"Wake event {live['wake_after_phrase'] * 1000:.0f} ms after the end of the spoken phrase "
                  f"(PulseAudio latency included); wake event -> first uplink Opus packet (2 s pre-roll encoded): "
                  f"{live['first_packet'] * 1000:.1f} ms (target <= 300 ms with the link up)."]
    lines += ["", "Opus per 60 ms frame (median of 5 x 500), us:", "", "| operation | us/frame | % of a core |",
              "|---|---:|---:|"]
    lines += [f"| {name} | {us:.0f} | {us / 600:.2f} |" for name, us in opus_costs()]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines += ["", f"Peak RSS of this process (pipeline + all engines + bench data): {rss:.0f} MB (target <= 150 MB)."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="live idle measurement (default 20)")
    parser.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args(argv)
    lines = report(args.seconds)
    publish("audio pipeline", __file__, lines, record=args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
