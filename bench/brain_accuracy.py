"""Spoken accuracy of the local brain, and the same sentences as text through PiBuddy and through Home
Assistant's own conversation API, side by side. Everything acts on the real test Home Assistant.

    nice .venv/bin/python bench/brain_accuracy.py           # a quarter of the sentences, two conditions
    nice .venv/bin/python bench/brain_accuracy.py --full    # all 62 commands, 22 non-commands, 8 noises, 5 voices
    ... --record                                           # append the figures to bench/RESULTS.md

Spoken: each sentence is said by espeak-ng in a condition (voice, speed, room noise), laid over a microphone's
noise floor, passed through the uplink's Opus round trip and handed to a local turn (`LocalBrainService.turn`,
the real pocketsphinx recogniser, intent matcher, tools and reply voice) as the utterance the VAD ended. The
VAD itself is left out here (tests/brain/test_no_wrong_action.py: audio in which it finds no speech is never
recognised), so the noises (coughs, clatter, TV-like speech) reach the recogniser: the worst case.
A command is right when its tool calls act on exactly the expected devices with the expected value and succeed;
a wrong action is a state-changing call on anything else or with another value; a non-command or noise is
acted on when it made any state-changing call. End of speech -> reply: from the utterance's end to the reply's
audio handed to the speaker. CPU: the recogniser's own (pocketsphinx, both decodes), per utterance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _results import append_section  # noqa: E402

from pibuddy.audio.opus import FRAME_MS, UPLINK_RATE, OpusDecoder, OpusEncoder  # noqa: E402
from pibuddy.brain import LocalBrain, Reply  # noqa: E402
from pibuddy.brain.asr.base import Recognition, Understood  # noqa: E402
from pibuddy.brain.asr.sphinx import PocketsphinxAsr  # noqa: E402
from pibuddy.brain.service import LocalBrainService  # noqa: E402
from pibuddy.brain.vocabulary import Vocabulary, vocabulary_sources  # noqa: E402
from pibuddy.brain.voice import EspeakVoice  # noqa: E402
from pibuddy.config import Config, HomeAssistantConfig, UpstreamConfig  # noqa: E402
from pibuddy.events import EventBus  # noqa: E402
from pibuddy.wiring.tools import build_toolbox  # noqa: E402
from tests.brain.household import ANSWER, COMMANDS, NON_COMMANDS, STATE, Command  # noqa: E402
from tests.brain.test_confidence_gate import OneUtterance  # noqa: E402
from tests.peers.homeassistant import running_peer  # noqa: E402
from tests.peers.speech import cough, noise, silence, speech, television  # noqa: E402

NOISES: Final = ["one cough", "three coughs", "pink clatter", "white clatter", "brown rumble",
                 "tv: and now the news at nine", "tv: the match ended in a draw", "tv: sunny with light winds"]
_SCENE_TOOLS: Final = {"ha_run_scene": "scene", "ha_run_script": "script"}
_KINDS: Final = {"lights": {"light"}, "fans": {"fan"}, "blinds": {"cover"}, "switches": {"switch"},
                 "temperature": {"sensor", "climate"}, "thermostat": {"climate"}, "speaker": {"media_player"}}


@dataclass(frozen=True, slots=True)
class Condition:
    name: str
    voice: str
    speed: int
    snr_db: float | None = None
    """Room noise (pink) at this signal-to-noise ratio."""


CONDITIONS: Final = [Condition("en-us 150 wpm", "en-us", 150), Condition("en-us 190 wpm", "en-us", 190),
                     Condition("en-gb 140 wpm", "en-gb", 140), Condition("en-us female 150 wpm", "en-us+f3", 150),
                     Condition("en-us 150 wpm, room noise 20 dB SNR", "en-us", 150, 20.0)]


@dataclass
class Tally:
    right: int = 0
    wrong_actions: int = 0
    commands: int = 0
    acted_on_non_commands: int = 0
    non_commands: int = 0
    acted_on_noises: int = 0
    noises: int = 0
    latency: list[float] = field(default_factory=list)
    stages: list[tuple[float, float, float]] = field(default_factory=list)
    """Seconds from the end of speech to: text recognised, tools done, reply audio ready."""
    recogniser_cpu: list[float] = field(default_factory=list)
    doubt_cpu: list[float] = field(default_factory=list)
    """After it, the re-scoring that decides whether to ask (0 for most utterances)."""
    turn_cpu: list[float] = field(default_factory=list)
    """Process CPU (all threads) from the end of speech to the reply being ready."""
    wrong: list[str] = field(default_factory=list)


class TimedAsr(PocketsphinxAsr):
    """pocketsphinx, keeping the CPU of its last recognition (both decodes) and of the doubt re-scoring after
    it (the rival readings' search and the force alignments)."""

    last_cpu = 0.0
    doubt_cpu = 0.0

    def recognise(self, pcm: bytes, understood: Understood | None = None, *,
                  readable: Understood | None = None) -> Recognition:
        start, self.doubt_cpu = time.thread_time(), 0.0
        try:
            return super().recognise(pcm, understood, readable=readable)
        finally:
            self.last_cpu = time.thread_time() - start

    def closest(self, pcm: bytes, readings: list[str]) -> str | None:
        start = time.thread_time()
        try:
            return super().closest(pcm, readings)
        finally:
            self.doubt_cpu += time.thread_time() - start

    def sure_of(self, pcm: bytes, heard: str, other: str, *, number: bool = False) -> bool:
        start = time.thread_time()
        try:
            return super().sure_of(pcm, heard, other, number=number)
        finally:
            self.doubt_cpu += time.thread_time() - start

    def plural_said(self, pcm: bytes, plural: str, word: str) -> bool | None:
        start = time.thread_time()
        try:
            return super().plural_said(pcm, plural, word)
        finally:
            self.doubt_cpu += time.thread_time() - start


def _acts(reply: Reply, vocabulary: Vocabulary) -> set[tuple[str, str, object]]:
    """(action, device, value) of every call the reply made; questions are ("state", device, None)."""
    done: set[tuple[str, str, object]] = set()
    for record in reply.calls:
        arguments = dict(record.call.arguments)
        tool = record.call.tool
        if tool in _SCENE_TOOLS:
            done.add((_SCENE_TOOLS[tool], str(arguments["name"]), None))
            continue
        action = STATE if tool == "ha_get_device_state" else str(arguments.get("action", tool))
        value = next((v for k, v in arguments.items() if k not in ("target", "action")), None)
        for device in _devices(str(arguments.get("target", "")), vocabulary):
            done.add((action, device, value))
    return done


def _devices(target: str, vocabulary: Vocabulary) -> set[str]:
    """The entities a tool target names: an entity id, or "<Area> <kind>" / "all <kind>"."""
    if "." in target and " " not in target:
        return {target}
    place, _, kind = target.rpartition(" ")
    domains = _KINDS.get(kind, {kind})
    pool = vocabulary.things if place == "all" else vocabulary.in_area(place)
    return {t.key for t in pool if t.domain in domains}


def _judge(command: Command, reply: Reply, vocabulary: Vocabulary) -> tuple[bool, bool]:
    """(right, wrong action) for a command's turn."""
    acts = _acts(reply, vocabulary)
    failed = any(r.result.is_error for r in reply.calls)
    expected = {(command.action, d, command.value) for d in command.devices}
    changing = {a for a in acts if a[0] != STATE}
    wrong = bool(changing - expected)
    if command.action == ANSWER:
        return (not acts and reply.outcome.value == "answered"), wrong
    return (acts == expected and not failed), wrong


def _clip(text: str, condition: Condition) -> bytes:
    if text in NOISES:
        samples = _noise(text, condition)
    else:
        samples = speech(text, condition.voice, pad=0.5, speed=condition.speed).astype(np.float64)
    rng = np.random.default_rng(7)
    if condition.snr_db is not None:
        room = noise("pinknoise", samples.size / 16000 + 0.1, volume=0.5)[:samples.size].astype(np.float64)
        speech_rms = np.sqrt(np.mean(samples[np.abs(samples) > 100] ** 2)) if np.any(np.abs(samples) > 100) else 1.0
        samples = samples + room * speech_rms / (np.sqrt(np.mean(room ** 2)) * 10 ** (condition.snr_db / 20))
    samples = samples + rng.normal(0.0, 30.0, samples.size)  # a microphone's noise floor
    return _through_opus(samples.clip(-32768, 32767).astype(np.int16).tobytes())


def _noise(kind: str, condition: Condition) -> np.ndarray:
    if kind.startswith("tv: "):
        return television(kind.removeprefix("tv: "))
    bursts = {"one cough": [cough()], "three coughs": [cough(), silence(0.4), cough(), silence(0.3), cough()],
              "pink clatter": [noise("pinknoise", 0.08, volume=0.8), silence(0.2),
                               noise("pinknoise", 0.12, volume=0.6)],
              "white clatter": [noise("whitenoise", 0.05, volume=0.7), silence(0.15), noise("whitenoise", 0.1)],
              "brown rumble": [noise("brownnoise", 1.5, volume=0.4)]}[kind]
    del condition
    return np.concatenate([silence(0.5), *bursts, silence(0.5)]).astype(np.float64)


def _through_opus(pcm: bytes) -> bytes:
    encoder, decoder = OpusEncoder(complexity=0), OpusDecoder(sample_rate=UPLINK_RATE, frame_ms=FRAME_MS)
    size = encoder.frame_samples * 2
    return b"".join(decoder.decode(encoder.encode(pcm[i:i + size])) for i in range(0, len(pcm) - size + 1, size))


async def _spoken(brain: LocalBrain, asr: TimedAsr, vocabulary: Vocabulary, condition: Condition, *,
                  commands: Sequence[Command], others: Sequence[str]) -> Tally:
    tally = Tally()
    for item in [*commands, *others]:
        text = item.text if isinstance(item, Command) else item
        service = LocalBrainService(brain, asr, EspeakVoice("en"), OneUtterance(_clip(text, condition)), EventBus(),
                                    offline_notice=False)
        reply = await service.turn("bench")
        timings = service.last_timings
        assert timings is not None
        tally.latency.append(timings.reply_ready - timings.speech_ended)
        tally.stages.append((timings.recognised - timings.speech_ended, timings.acted - timings.speech_ended,
                             timings.reply_ready - timings.speech_ended))
        tally.recogniser_cpu.append(asr.last_cpu)
        tally.doubt_cpu.append(asr.doubt_cpu)
        tally.turn_cpu.append(timings.cpu_seconds)
        if isinstance(item, Command):
            right, wrong = _judge(item, reply, vocabulary)
            tally.commands += 1
            tally.right += right
            tally.wrong_actions += wrong
            if not right:
                print(f"  {condition.name}: not right: {text!r} -> {reply.outcome.value} "
                      f"{sorted(map(str, _acts(reply, vocabulary)))}", flush=True)
            if wrong:
                tally.wrong.append(f"{text!r} -> {sorted(map(str, _acts(reply, vocabulary)))}")
        else:
            acted = any(a[0] != STATE for a in _acts(reply, vocabulary))
            if text in NOISES:
                tally.noises += 1
                tally.acted_on_noises += acted
            else:
                tally.non_commands += 1
                tally.acted_on_non_commands += acted
            if acted:
                tally.wrong.append(f"acted on {text!r}: {sorted(map(str, _acts(reply, vocabulary)))}")
    return tally


def _assist(url: str, token: str, text: str) -> dict[str, Any]:
    """Home Assistant's own conversation agent on `text`."""
    request = urllib.request.Request(f"{url}/api/conversation/process", method="POST",
                                     data=json.dumps({"text": text, "language": "en"}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.load(answer)["response"])


def _assist_right(command: Command, response: dict[str, Any]) -> tuple[bool, bool]:
    kind = response.get("response_type")
    targets = {t["id"] for t in response.get("data", {}).get("success", []) if t.get("type") == "entity"}
    if command.action == ANSWER:
        return kind == "query_answer", False
    if command.action == STATE:
        return kind == "query_answer" and bool(targets & command.devices), False
    return kind == "action_done" and targets == set(command.devices), kind == "action_done" and \
        not targets <= command.devices


async def _text(brain: LocalBrain, vocabulary: Vocabulary, url: str, token: str, *, commands: Sequence[Command],
                others: Sequence[str]) -> list[str]:
    mine, theirs = Tally(), Tally()
    for command in commands:
        right, wrong = _judge(command, await brain.handle(command.text, vocabulary), vocabulary)
        mine.right, mine.wrong_actions = mine.right + right, mine.wrong_actions + wrong
        right, wrong = await asyncio.to_thread(_assist_right, command, await asyncio.to_thread(
            _assist, url, token, command.text))
        theirs.right, theirs.wrong_actions = theirs.right + right, theirs.wrong_actions + wrong
    for text in others:
        mine.acted_on_non_commands += any(a[0] != STATE for a in _acts(await brain.handle(text, vocabulary),
                                                                        vocabulary))
        theirs.acted_on_non_commands += (await asyncio.to_thread(_assist, url, token, text)).get(
            "response_type") == "action_done"
    n, m = len(commands), len(others)
    return [f"| text, PiBuddy (`pibuddy say`) | {mine.right} / {n} | {mine.wrong_actions} | "
            f"{mine.acted_on_non_commands} / {m} | - | - |",
            f"| text, Home Assistant's own conversation API | {theirs.right} / {n} | {theirs.wrong_actions} | "
            f"{theirs.acted_on_non_commands} / {m} | - | - |"]


def _ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000:.0f}" if ordered else "-"


async def main(full: bool, record: bool, numbers: bool = False) -> None:
    commands = COMMANDS if full else COMMANDS[::4]
    others = [*NON_COMMANDS, *NOISES] if full else [*NON_COMMANDS[::3], *NOISES[::2]]
    conditions = CONDITIONS if full or numbers else [CONDITIONS[0], CONDITIONS[-1]]
    if numbers:  # the commands that carry a number, where a misheard one would act with another value
        commands, others = [c for c in COMMANDS if isinstance(c.value, int)], []
    with tempfile.TemporaryDirectory(prefix="pibuddy-bench-ha-") as ha_dir, running_peer(Path(ha_dir)) as ha:
        config = Config(upstream=UpstreamConfig(enabled=False),
                        homeassistant=HomeAssistantConfig(enabled=True, url=ha.url, token=ha.token, timeout=10))
        toolbox = build_toolbox(config)
        for service in toolbox.services:
            await service.start()
        tasks = [asyncio.create_task(s.serve()) for s in toolbox.services]
        try:
            await asyncio.sleep(1.0)
            brain = LocalBrain(toolbox.registry, vocabulary_sources(toolbox.services), language="en")
            vocabulary = await brain.vocabulary()
            asr = TimedAsr("en")
            asr.set_vocabulary(vocabulary)
            rows = await _text(brain, vocabulary, ha.url, ha.token, commands=commands,
                               others=[o for o in others if o not in NOISES])
            tallies = []
            for condition in conditions:
                tally = await _spoken(brain, asr, vocabulary, condition, commands=commands, others=others)
                tallies.append((condition, tally))
                print(f"{condition.name}: {tally.right}/{tally.commands} right, {tally.wrong_actions} wrong actions",
                      flush=True)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for service in toolbox.services:
                await service.stop()
    lines = [f"{len(commands)} commands, {len(others)} non-commands and noises "
             f"({sum(o in NOISES for o in others)} noises), "
             f"{'full size' if full else 'the number-bearing commands' if numbers else 'default size'}.", "",
             "| path | commands right | wrong actions | non-commands (noises) acted on | end of speech -> reply "
             "median / p90 ms | recogniser CPU median / p90 ms |", "|---|---:|---:|---:|---:|---:|", *rows]
    for condition, tally in tallies:
        lines.append(f"| spoken, {condition.name} | {tally.right} / {tally.commands} | {tally.wrong_actions} | "
                     f"{tally.acted_on_non_commands} / {tally.non_commands} ({tally.acted_on_noises} / "
                     f"{tally.noises}) | {_ms(tally.latency, 0.5)} / {_ms(tally.latency, 0.9)} | "
                     f"{_ms(tally.recogniser_cpu, 0.5)} / {_ms(tally.recogniser_cpu, 0.9)} |")
    lines += ["", "Doubt re-scoring CPU after the recogniser (rival numbers, light/lights), median / p90 / max ms: "
              + "; ".join(f"{condition.name} {_ms(tally.doubt_cpu, 0.5)} / {_ms(tally.doubt_cpu, 0.9)} / "
                          f"{_ms(tally.doubt_cpu, 1.0)}" for condition, tally in tallies)]
    lines += ["", "Process CPU per turn, end of speech -> reply ready, median / p90 ms: " + "; ".join(
        f"{condition.name} {_ms(tally.turn_cpu, 0.5)} / {_ms(tally.turn_cpu, 0.9)}" for condition, tally in tallies)]
    lines += ["", "Median ms after the end of speech (text recognised / tools done / reply audio ready): " + "; ".join(
        f"{condition.name} {' / '.join(_ms([s[i] for s in tally.stages], 0.5) for i in range(3))}"
        for condition, tally in tallies)]
    wrong = [f"- {condition.name}: {w}" for condition, tally in tallies for w in tally.wrong]
    if wrong:
        lines += ["", "Wrong actions and non-commands acted on:", *wrong]
    print("\n".join(lines))
    if record:
        append_section("local brain spoken accuracy", __file__, lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="every sentence in every condition (about 15 min)")
    parser.add_argument("--numbers", action="store_true",
                        help="only the commands that carry a number, in every condition")
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.full, arguments.record, arguments.numbers))
