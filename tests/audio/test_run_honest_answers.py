"""`pibuddy run` as a real process, local brain only, with Home Assistant refusing its token or unreachable: a
spoken command is answered aloud with why it cannot be done, not with "Sorry, I didn't catch that."

Before: Home Assistant listed no devices, so the recogniser's grammar held no device names, it wrote a partial
sentence, and the user heard "didn't catch that" and repeated a command that could not work; only the log said
"the Home Assistant token is invalid".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audio.test_run_server_away import _ANSWER_SECONDS, _pibuddy
from tests.peers.homeassistant import HomeAssistantPeer
from tests.peers.ports import free_port
from tests.peers.pulseaudio import PulseServer

pytestmark = pytest.mark.peer


@pytest.mark.parametrize(("fault", "answer", "detail"), [
    ("token", "Sorry, Home Assistant refused my access token.", "the Home Assistant token is invalid"),
    ("port", "Sorry, I can't reach Home Assistant right now.", "cannot list the devices of Home Assistant"),
])
async def test_a_spoken_command_is_told_why_home_assistant_cannot_do_it(
        pulse: PulseServer, homeassistant_peer: HomeAssistantPeer, tmp_path: Path, pibuddy_env: dict[str, str],
        fault: str, answer: str, detail: str) -> None:
    homeassistant_peer.start()  # a no-op unless a test left it stopped
    url = homeassistant_peer.url if fault == "token" else f"http://127.0.0.1:{free_port()}"
    token = "not-the-token" if fault == "token" else homeassistant_peer.token
    config = {"upstream": {"enabled": False}, "brain": {"mode": "local"},
              "homeassistant": {"enabled": True, "url": url, "token": token, "timeout": 5}}
    async with _pibuddy(pulse, tmp_path, pibuddy_env, config) as running:
        await running.logged(detail, anywhere=True, within=30)
        await running.logged("speech language model rebuilt", anywhere=True, within=60)
        ended = await running.say(pulse, "turn on the big lamp")
        await running.logged(answer)
        answered = await running.sound_after(ended)
        assert answered - ended < _ANSWER_SECONDS, f"answered {answered - ended:.2f} s after speech"
    assert "didn't catch that" not in "".join(running.log)
