"""The volume tool's last fallback, heard: set through the tool, applied to what the speaker writes."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pibuddy.audio.playback import Speaker
from pibuddy.config import PlaybackConfig
from pibuddy.tools import ToolRegistry, ToolResult
from pibuddy.tools.builtin import builtin_tools
from pibuddy.tools.host import Host
from pibuddy.tools.volume import AlsaMixer, PulseMixer, SystemVolume
from tests.audio.conftest import rescan
from tests.peers.alsa_file import AlsaFileDevices

_RATE = 24000


async def test_the_volume_tool_scales_what_is_played_without_a_system_mixer(
    alsa: AlsaFileDevices, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = alsa.speaker("vspk", rate=_RATE)
    alsa.write()
    rescan()
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/pibuddy-test/native")
    tone = (10000 * np.sin(2 * np.pi * 440 * np.arange(_RATE // 2) / _RATE)).astype(np.int16)
    config = PlaybackConfig(samplerate=_RATE, volume=100, idle_close_seconds=0)
    async with Speaker("vspk", config=config) as speaker:
        registry = ToolRegistry()
        for builtin in builtin_tools(SystemVolume((PulseMixer(), AlsaMixer("no_such_device")), speaker=speaker),
                                     Host()):
            registry.register(builtin)
        assert await registry.call("self.audio_speaker.set_volume", {"volume": 40}) == ToolResult("true")
        speaker.play_pcm(tone.tobytes(), _RATE)
        await asyncio.wait_for(speaker.wait_drained(), 10)
    written = np.fromfile(out, dtype="<i2").astype(float)
    start = np.nonzero(written)[0][0]
    played = written[start + 1000:start + tone.size - 1000]  # past the 5 ms fade-in, before any stale repeat
    assert played.size > _RATE // 4
    assert np.abs(played).max() == pytest.approx(0.4 * np.abs(tone).max(), abs=2)
