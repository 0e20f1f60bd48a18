"""`pibuddy run` as a real process while its xiaozhi server (MQTT+UDP through a real mosquitto) goes away and
comes back, with a PulseAudio virtual microphone and speaker.

- brain.mode upstream: a wake said while the server is away is answered by the spoken "can't reach the server"
  line, found on the speaker within 3 s of the end of speech.
- brain.mode auto: the local brain answers that same command (the audio since the wake is kept), which turns a
  light on in the real test Home Assistant — both with the server gone and with a server that takes the
  connection but never answers hello (the command is over before the 2 s wait for it ends).
- In both, a wake said 2 s after the server is back is answered by the server.

The end of speech is when the virtual microphone has played the command (PulseAudio drained); the answer is
the first sound that reaches the speaker's monitor after it. Both clocks are the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from pibuddy.device_client.client import UNREACHABLE_LINE
from tests.audio.conftest import _PULSE_CLIENT_ENV, MonitorRecorder, best_lag, play_into_microphone
from tests.audio.test_control_run import pibuddy_run
from tests.audio.test_e2e_xiaozhi import _tone_seconds, listen_started, until_uplink_reaches
from tests.audio.test_run_e2e import _line_containing
from tests.peers.homeassistant import HomeAssistantPeer
from tests.peers.mosquitto import MosquittoBroker, mosquitto_fixture  # noqa: F401
from tests.peers.pulseaudio import PulseServer
from tests.peers.speech import silence, speech
from tests.peers.xiaozhi_server import MqttBrokerInfo, XiaozhiTestServer

pytestmark = pytest.mark.peer
_STEP = 15.0  # every milestone must come within this many seconds (a loaded 2-core machine)
_ANSWER_SECONDS = 3.0  # the issue's promise: an answer within 3 s of the end of speech
_PAD = 0.1
_TAIL = 1.0
_LIGHT = "light.living_room_light"
_LIGHT_POWER = "input_boolean.living_room_light_power"
_LOCAL_REPLY = "buddy (local brain): I'm offline, but I can still control the house. Turned on the light"


@dataclass
class Running:
    """A running `pibuddy run`: its log (read all along), and what its speaker played."""

    log: list[str]
    speaker: MonitorRecorder
    seen: int = 0
    """Log lines up to here have been matched by `logged`."""

    async def logged(self, text: str, *, anywhere: bool = False, within: float = _STEP) -> None:
        """Until a log line holding `text` comes after the last one matched (`anywhere`: or before it)."""
        start = 0 if anywhere else self.seen
        for _ in range(round(within / 0.05)):
            found = next((i for i in range(start, len(self.log)) if text in self.log[i]), None)
            if found is not None:
                self.seen = max(self.seen, found + 1)
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} not logged after line {start}:\n{''.join(self.log)}")

    async def sound_after(self, moment: float) -> float:
        """The loop time the first loud sound after `moment` reached the speaker's monitor."""
        async with asyncio.timeout(_STEP):
            while True:
                with contextlib.suppress(AssertionError):
                    return self.speaker.first_sound_arrival(after=moment, threshold=3000)
                await asyncio.sleep(0.05)

    async def say(self, pulse: PulseServer, *texts: str) -> float:
        """Speak `texts` after the wake word into the microphone; returns the loop time speech ended."""
        clip = np.concatenate([speech("okay nahboo", pad=0.6), *(speech(t, pad=_PAD) for t in texts),
                               silence(_TAIL)])  # the end of the stream is no part of the utterance
        await play_into_microphone(pulse, clip)
        return asyncio.get_running_loop().time() - _TAIL - _PAD


@asynccontextmanager
async def _pibuddy(pulse: PulseServer, tmp_path: Path, env: dict[str, str], config: dict[str, object]
                   ) -> AsyncIterator[Running]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"device": {"device_id": "02:11:22:33:44:68"}, "gateway": {"enabled": False},
                                    "control": {"socket": str(tmp_path / "control.sock")}, **config}))
    env = env | {key: os.environ[key] for key in (*_PULSE_CLIENT_ENV, "PULSE_SOURCE", "PULSE_SINK")}
    log: list[str] = []
    async with pibuddy_run(path, env, log) as stderr, MonitorRecorder(pulse, rate=16000) as speaker:
        reader = asyncio.create_task(_line_containing(stderr, "no such line", log))  # reads every line into `log`
        try:
            running = Running(log, speaker)
            await running.logged("microphone open", anywhere=True)
            yield running
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, AssertionError):
                await reader


def _server(mosquitto: MosquittoBroker) -> XiaozhiTestServer:
    """No greeting, and the reply once the test has the command up (as in test_run_e2e.py)."""
    return XiaozhiTestServer(mqtt=MqttBrokerInfo(mosquitto.host, mosquitto.port), tts_frames=30,
                             utterance_frames=None, wake_words=("Okay Nabu",), greeting_text=None)


def _upstream(server: XiaozhiTestServer, mode: str) -> dict[str, object]:
    # upstream_deadline: the router keeps giving wakes to the server all through the test, so each wake while
    # the server is away is the device client's, which must answer it without the server.
    return {"upstream": {"ota_url": server.ota_url, "transport": "mqtt"},
            "brain": {"mode": mode, "upstream_deadline": 600}}


async def _go_away(server: XiaozhiTestServer, mosquitto: MosquittoBroker, running: Running) -> None:
    await server.stop()
    await mosquitto.stop()
    await running.logged("service upstream")  # the link is down: the supervisor is retrying


async def _come_back_and_answer_a_wake(pulse: PulseServer, server: XiaozhiTestServer, mosquitto: MosquittoBroker,
                                       running: Running) -> None:
    """The server back; a wake 2 s later is answered by it: the command goes up and its reply is played."""
    await mosquitto.start()
    server.settings.answer_hello = True
    await server.start()
    await asyncio.wait_for(server.mqtt_ready.wait(), _STEP)
    server.reset_milestones()
    await asyncio.sleep(2.0)  # the situation under test: a wake said 2 s after the server is back
    await play_into_microphone(pulse, speech("okay nahboo", pad=0.6))
    for milestone, what in ((server.hello_received, "hello"), (server.listen_detect, "listen detect")):
        try:
            await asyncio.wait_for(milestone.wait(), _STEP)
        except TimeoutError:
            raise AssertionError(f"no {what} reached the server after the wake; PiBuddy's log:\n"
                                 f"{''.join(running.log[-40:])}") from None
    mark = await listen_started(server)
    await play_into_microphone(pulse, speech("what time is it", pad=_PAD))
    await until_uplink_reaches(server, mark, asyncio.get_running_loop().time())
    replied = len(running.speaker.samples())
    server.end_utterance()
    await asyncio.wait_for(server.tts_done.wait(), _STEP)
    for _ in range(40):  # until the reply's 1.8 s tone has come out of the speaker, at most 10 s
        if _tone_seconds(running.speaker.samples()[replied:], 16000) > 1.0:
            break
        await asyncio.sleep(0.25)
    assert _tone_seconds(running.speaker.samples()[replied:], 16000) > 1.0, "the server's reply was played"


async def test_upstream_mode_a_wake_while_the_server_is_away_hears_the_line_and_one_after_it_is_back_the_server(
        pulse: PulseServer, mosquitto: MosquittoBroker, tmp_path: Path, pibuddy_env: dict[str, str]) -> None:
    server = _server(mosquitto)
    async with server, _pibuddy(pulse, tmp_path, pibuddy_env, _upstream(server, "upstream")) as running:
        await running.logged("waiting for the wake word", anywhere=True)
        await _go_away(server, mosquitto, running)
        before = len(running.speaker.samples())
        ended = await running.say(pulse, "turn on the light")
        await running.logged("in time: saying so")
        line = speech(UNREACHABLE_LINE, voice="en", speed=175, pad=0.0)
        for _ in range(40):  # until the whole line can have been played, at most 10 s
            heard = running.speaker.samples()[before:]
            lag, match = best_lag(line, heard)
            if match > 0.6 and lag + line.size <= heard.size:
                break
            await asyncio.sleep(0.25)
        assert match > 0.6, f"the spoken line was not found on the speaker (best match {match:.2f})"
        line_arrived = running.speaker.arrival(before + lag)
        assert line_arrived - ended < _ANSWER_SECONDS, f"the line began {line_arrived - ended:.2f} s after speech"
        await _come_back_and_answer_a_wake(pulse, server, mosquitto, running)
    assert "local brain" not in "".join(running.log)


@pytest.fixture
def ha(homeassistant_peer: HomeAssistantPeer) -> HomeAssistantPeer:
    homeassistant_peer.start()  # a no-op unless a test left it stopped
    homeassistant_peer.call("input_boolean", "turn_off", {"entity_id": [_LIGHT_POWER]})
    return homeassistant_peer


async def _local_brain_turns_the_light_on(pulse: PulseServer, ha: HomeAssistantPeer, running: Running) -> None:
    ha.call("input_boolean", "turn_off", {"entity_id": [_LIGHT_POWER]})
    ended = await running.say(pulse, "turn on the big lamp")
    await running.logged("the local brain answers it")
    await running.logged(_LOCAL_REPLY)
    answered = await running.sound_after(ended)
    assert answered - ended < _ANSWER_SECONDS, \
        f"the local brain answered {answered - ended:.2f} s after speech:\n{''.join(running.log[-12:])}"
    assert ha.state(_LIGHT)["state"] == "on"
    await running.logged("turn by local")  # the reply has played out: the next wake is not said over it


async def test_auto_mode_the_local_brain_answers_the_same_command_while_the_server_is_away_or_stuck(
        pulse: PulseServer, mosquitto: MosquittoBroker, ha: HomeAssistantPeer, tmp_path: Path,
        pibuddy_env: dict[str, str]) -> None:
    server = _server(mosquitto)
    ha_config = {"homeassistant": {"enabled": True, "url": ha.url, "token": ha.token}}
    async with server, _pibuddy(pulse, tmp_path, pibuddy_env, _upstream(server, "auto") | ha_config) as running:
        await running.logged("waiting for the wake word", anywhere=True)
        await _go_away(server, mosquitto, running)
        # The link down, the recogniser loads and builds its grammar ahead of a hand-over (seconds on a loaded
        # machine): the promise of an answer in time holds from then on.
        await running.logged("speech language model rebuilt", anywhere=True, within=60)
        await _local_brain_turns_the_light_on(pulse, ha, running)
        # Back, but deaf to hello: the wake cuts the backoff short, the server takes the connection and the
        # hello, and the command is over before PiBuddy stops waiting for the answer (2 s).
        server.settings.answer_hello = False
        await mosquitto.start()
        await server.start()
        await asyncio.wait_for(server.mqtt_ready.wait(), _STEP)
        server.reset_milestones()
        await _local_brain_turns_the_light_on(pulse, ha, running)
        assert server.hello_received.is_set(), "the server heard the hello it left unanswered"
        await _go_away(server, mosquitto, running)
        await _come_back_and_answer_a_wake(pulse, server, mosquitto, running)
    assert "".join(running.log).count("local brain listening") == 2, "the server's wake stayed the server's"
