"""End to end with no xiaozhi server: "okay nabu ... turn on the big lamp" spoken into the PulseAudio
virtual mic turns the light on in the real test Home Assistant and a spoken reply reaches the virtual speaker;
once the upstream link is back, the next wake is left to the server. Plus `pibuddy say` against the same HA."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pibuddy.audio.pipeline import AudioPipeline
from pibuddy.audio.service import AudioService
from pibuddy.brain import Outcome
from pibuddy.brain.router import BrainRouter
from pibuddy.brain.service import LocalBrainService
from pibuddy.config import BrainConfig, Config, HomeAssistantConfig, UpstreamConfig
from pibuddy.events import ActiveBrain, DeviceState, EventBus, StateChanged, UpstreamLink
from pibuddy.wiring.brain import brain_services
from pibuddy.wiring.tools import build_toolbox
from tests.audio.conftest import MonitorRecorder, play_into_microphone, pulse  # noqa: F401
from tests.peers.homeassistant import HomeAssistantPeer
from tests.peers.pulseaudio import PulseServer
from tests.peers.speech import silence, speech

pytestmark = pytest.mark.peer

_LIGHT_POWER = "input_boolean.living_room_light_power"


@pytest.fixture
def ha(homeassistant_peer: HomeAssistantPeer) -> HomeAssistantPeer:
    homeassistant_peer.start()  # a no-op unless a test left it stopped
    homeassistant_peer.call("input_boolean", "turn_off", {"entity_id": [_LIGHT_POWER]})
    return homeassistant_peer


def _config(peer: HomeAssistantPeer) -> Config:
    return Config(upstream=UpstreamConfig(enabled=True), brain=BrainConfig(upstream_deadline=0.3),
                  homeassistant=HomeAssistantConfig(enabled=True, url=peer.url, token=peer.token, timeout=5))


async def _wait_for(condition, seconds: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_offline_wake_and_command_act_on_home_assistant_and_answer_aloud(
        pulse: PulseServer, ha: HomeAssistantPeer) -> None:  # noqa: F811
    config = _config(ha)
    bus = EventBus()
    toolbox = build_toolbox(config)
    audio = AudioService(AudioPipeline(config.audio, bus))
    router, brain = brain_services(config, bus, toolbox, audio.pipeline)
    assert isinstance(router, BrainRouter)
    assert isinstance(brain, LocalBrainService)
    tasks: list[asyncio.Task[None]] = []
    with bus.subscribe() as events:
        for service in (*toolbox.services, audio, router, brain):
            await service.start()
            tasks.append(asyncio.create_task(service.serve()))
        try:
            async with asyncio.timeout(3):  # no upstream link within the deadline: the local brain answers
                while not isinstance(event := await events.get(), ActiveBrain) or event.brain != "local":
                    pass
            spoken = np.concatenate([silence(1.0), speech("okay nahboo", pad=0.3),
                                     speech("turn on the big lamp", pad=0.1), silence(2.0)])
            async with MonitorRecorder(pulse) as speaker:
                started = asyncio.get_running_loop().time()
                await play_into_microphone(pulse, spoken)
                await _wait_for(lambda: ha.state("light.living_room_light")["state"] == "on", 15)
                await _wait_for(lambda: brain.last_reply is not None, 15)
                await asyncio.sleep(1.0)  # let the reply play out
            assert brain.last_reply is not None
            assert brain.last_reply.outcome is Outcome.DONE
            # "big lamp", an alias: espeak's "living room light" is often heard as "lights", and then the brain asks.
            assert brain.last_reply.text == "Turned on the light"
            heard = speaker.samples()
            command_end = round((spoken.size / 16000 - 2.0) * speaker.rate)
            assert np.abs(heard[command_end:]).max(initial=0) > 3000, "no spoken reply reached the speaker"
            assert speaker.last_sound_arrival(3000) > started + spoken.size / 16000 - 2.0
            states = [e.new for e in _drain(events) if isinstance(e, StateChanged)]
            assert [s for s in states if s is not DeviceState.IDLE][:3] == \
                [DeviceState.LISTENING, DeviceState.THINKING, DeviceState.SPEAKING]

            bus.publish(UpstreamLink(True, "mqtt", "server back"))  # what the device client publishes on connect
            await asyncio.sleep(0.1)
            assert bus.latest(ActiveBrain) == ActiveBrain("upstream", "the xiaozhi server is reachable")
            ha.call("input_boolean", "turn_off", {"entity_id": [_LIGHT_POWER]})
            reply = brain.last_reply
            await play_into_microphone(pulse, np.concatenate([speech("okay nahboo", pad=0.3),
                                                              speech("turn on the living room light"), silence(1.5)]))
            await asyncio.sleep(1.0)
            assert brain.last_reply is reply, "the local brain answered a wake that belonged to the server"
            assert ha.state("light.living_room_light")["state"] == "off"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for service in (brain, router, audio, *toolbox.services):
                with contextlib.suppress(Exception):
                    await service.stop()


def _drain(subscription) -> list:  # type: ignore[no-untyped-def]
    found = []
    while not subscription.queue.empty():
        found.append(subscription.queue.get_nowait())
    return found


def test_pibuddy_say_prints_what_it_did(ha: HomeAssistantPeer, tmp_path: Path, pibuddy_env: dict[str, str],
                                        python: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"homeassistant": {"enabled": True, "url": ha.url, "token": ha.token}}))
    result = subprocess.run([python, "-m", "pibuddy", "say", "--config", str(path), "turn on the big lamp"],
                            capture_output=True, text=True, env=pibuddy_env, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "intent:  HassTurnOn (done)" in result.stdout
    assert 'called:  ha_control_device {"target": "light.living_room_light", "action": "turn_on"} -> ok:' \
        in result.stdout
    assert "reply:   Turned on the light" in result.stdout
    assert ha.state("light.living_room_light")["state"] == "on"
    unknown = subprocess.run([python, "-m", "pibuddy", "say", "--config", str(path), "turn on the toaster"],
                             capture_output=True, text=True, env=pibuddy_env, timeout=60, check=False)
    assert unknown.returncode == 1
    assert "reply:   Sorry, I am not aware of any device called toaster" in unknown.stdout


def _say(python: str, env: dict[str, str], path: Path, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-m", "pibuddy", "say", "--config", str(path), text], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def test_pibuddy_say_tells_why_it_cannot_a_refused_token_an_unknown_name_then_home_assistant_stopped(
        ha: HomeAssistantPeer, tmp_path: Path, pibuddy_env: dict[str, str], python: str) -> None:
    good, wrong = tmp_path / "good.yaml", tmp_path / "wrong.yaml"
    good.write_text(yaml.safe_dump({"homeassistant": {"enabled": True, "url": ha.url, "token": ha.token}}))
    wrong.write_text(yaml.safe_dump({"homeassistant": {"enabled": True, "url": ha.url, "token": "not-the-token"}}))
    refused = _say(python, pibuddy_env, wrong, "turn on the big lamp")
    near = _say(python, pibuddy_env, good, "turn on the big lamb")
    ha.stop()  # the `ha` fixture starts it again for the next test
    stopped = _say(python, pibuddy_env, good, "turn on the big lamp")
    assert "reply:   Sorry, Home Assistant refused my access token.\n" in refused.stdout
    assert "cannot list the devices of Home Assistant" in refused.stderr, "the detail is in the log"
    assert "reply:   Sorry, I am not aware of any device called big lamb. Did you mean big lamp?\n" in near.stdout
    assert "reply:   Sorry, I can't reach Home Assistant right now.\n" in stopped.stdout
    assert "cannot list the devices of Home Assistant" in stopped.stderr
    assert [r.returncode for r in (refused, near, stopped)] == [1, 1, 1]


def test_pibuddy_say_with_no_drivers_says_none_are_set_up(tmp_path: Path, pibuddy_env: dict[str, str],
                                                          python: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("audio: {enabled: false}\nupstream: {enabled: false}\ngateway: {enabled: false}\n")
    result = _say(python, pibuddy_env, path, "turn on the light")
    assert "reply:   Sorry, I have no devices set up to do that.\n" in result.stdout
    assert result.returncode == 1
