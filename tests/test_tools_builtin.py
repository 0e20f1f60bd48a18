"""Built-in tools against a real PulseAudio server (and ALSA through its pulse plugin), host facts, catalog."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pibuddy import __version__
from pibuddy.audio.playback import Speaker
from pibuddy.config import Config, PlaybackConfig, ToolsConfig
from pibuddy.errors import DriverError
from pibuddy.tools import ToolRegistry, ToolResult
from pibuddy.tools.builtin import builtin_tools
from pibuddy.tools.host import Host
from pibuddy.tools.volume import AlsaMixer, PulseMixer, SystemVolume, parse_percent
from pibuddy.wiring.tools import build_registry, build_toolbox
from tests.peers.pulseaudio import PulseServer, pulseaudio_server

_NO_PULSE = "unix:/nonexistent/pibuddy-test/native"


@pytest.fixture
async def pulse(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[PulseServer]:
    async with pulseaudio_server() as server:
        monkeypatch.setenv("PULSE_SERVER", server.server)
        yield server


def _registry(volume: SystemVolume, host: Host | None = None) -> ToolRegistry:
    registry = ToolRegistry()
    for t in builtin_tools(volume, host or Host()):
        registry.register(t)
    return registry


async def _sink_volume(pulse: PulseServer) -> int:
    return parse_percent(await pulse.pactl("get-sink-volume", pulse.sink))


# --- volume, for real ---------------------------------------------------------------------------------


@pytest.mark.peer
async def test_set_volume_changes_the_pulseaudio_sink(pulse: PulseServer) -> None:
    registry = _registry(SystemVolume())
    result = await registry.call("self.audio_speaker.set_volume", {"volume": 37})
    assert result == ToolResult("true")
    assert "37%" in await pulse.pactl("get-sink-volume", pulse.sink)
    assert await _sink_volume(pulse) == 37
    status = json.loads((await registry.call("self.get_device_status")).text)
    assert status["audio_speaker"] == {"volume": 37}


@pytest.mark.peer
async def test_out_of_range_volume_leaves_the_sink_alone(pulse: PulseServer) -> None:
    await pulse.pactl("set-sink-volume", pulse.sink, "55%")
    result = await _registry(SystemVolume()).call("self.audio_speaker.set_volume", {"volume": 150})
    assert result == ToolResult("Value exceeds maximum allowed: 100", is_error=True)
    assert await _sink_volume(pulse) == 55


@pytest.mark.peer
async def test_alsa_mixer_through_the_pulse_plugin(pulse: PulseServer) -> None:
    if shutil.which("amixer") is None or "Master" not in await _amixer_pulse_controls():
        pytest.skip("amixer or the ALSA pulse plugin is missing (apt-get install alsa-utils libasound2-plugins)")
    mixer = AlsaMixer(device="pulse")
    await mixer.set(42)
    assert await mixer.get() == 42
    assert await _sink_volume(pulse) == 42


@pytest.mark.peer
async def test_the_first_working_mixer_wins(pulse: PulseServer) -> None:
    if shutil.which("amixer") is None or "Master" not in await _amixer_pulse_controls():
        pytest.skip("amixer or the ALSA pulse plugin is missing")
    volume = SystemVolume((AlsaMixer(device="no_such_device"), AlsaMixer(device="pulse"), PulseMixer()))
    await volume.set_volume(64)
    assert await volume.get_volume() == 64
    assert await _sink_volume(pulse) == 64


async def _amixer_pulse_controls() -> str:
    from pibuddy.tools.volume import MixerFailed, run_command  # noqa: PLC0415

    try:
        return await run_command("amixer", "-D", "pulse", "scontrols")
    except MixerFailed:
        return ""


async def test_without_any_mixer_the_tool_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PULSE_SERVER", _NO_PULSE)
    volume = SystemVolume((PulseMixer(), AlsaMixer(device="no_such_device")))
    with pytest.raises(DriverError, match="no sound mixer is available"):
        await volume.get_volume()
    result = await _registry(volume).call("self.audio_speaker.set_volume", {"volume": 20})
    assert result == ToolResult("The speaker volume cannot be changed: no sound mixer is available.", True)
    assert "pulseaudio: pactl" in caplog.text
    assert "alsa: amixer" in caplog.text
    status = json.loads((await _registry(volume).call("self.get_device_status")).text)
    assert status["audio_speaker"] == {}


async def test_without_a_system_mixer_the_speakers_software_gain_is_the_volume(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PULSE_SERVER", _NO_PULSE)
    speaker = Speaker(config=PlaybackConfig(volume=80))
    volume = SystemVolume((PulseMixer(), AlsaMixer(device="no_such_device")), speaker=speaker)
    registry = _registry(volume)
    caplog.set_level("INFO", logger="pibuddy.tools.volume")
    assert await registry.call("self.audio_speaker.set_volume", {"volume": 40}) == ToolResult("true")
    assert speaker.volume == 40
    assert await volume.get_volume() == 40
    status = json.loads((await registry.call("self.get_device_status")).text)
    assert status["audio_speaker"] == {"volume": 40}
    infos = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert infos == ["speaker volume set to 40% (pibuddy software gain: no system mixer works)"]
    assert not [r for r in caplog.records if r.levelno >= 30]  # a working fallback is no warning


@pytest.mark.peer
async def test_a_working_system_mixer_leaves_the_software_gain_alone(pulse: PulseServer) -> None:
    speaker = Speaker(config=PlaybackConfig(volume=80))
    registry = _registry(SystemVolume(speaker=speaker))
    assert await registry.call("self.audio_speaker.set_volume", {"volume": 30}) == ToolResult("true")
    assert await _sink_volume(pulse) == 30
    assert speaker.volume == 80


@pytest.mark.parametrize(("output", "percent"), [
    ("Volume: front-left: 24248 /  37% / -25.91 dB,   front-right: 24248 /  37% / -25.91 dB\n"
     "        balance 0.00\n", 37),
    ("Volume: front-left: 32768 /  50% / -18.06 dB,   front-right: 19661 /  30% / -31.37 dB\n", 40),
    ("Simple mixer control 'Master',0\n  Capabilities: pvolume pswitch pswitch-joined\n"
     "  Front Left: Playback 24248 [37%] [on]\n  Front Right: Playback 24248 [37%] [on]\n", 37),
    ("Simple mixer control 'PCM',0\n  Mono: Playback -1000 [81%] [-10.00dB] [on]\n", 81),
])
def test_mixer_output_parsing(output: str, percent: int) -> None:
    assert parse_percent(output) == percent


# --- status and system info ---------------------------------------------------------------------------


def _fake_pi(root: Path) -> Host:
    """A tree laid out like a Raspberry Pi 4 on Wi-Fi, with the files' real formats."""
    files = {
        "sys/class/thermal/thermal_zone0/temp": "48312\n",
        "sys/class/net/wlan0/wireless/.keep": "",
        "proc/uptime": "86461.27 331245.80\n",
        "proc/loadavg": "0.52 0.58 0.59 1/312 2871\n",
        "proc/device-tree/model": "Raspberry Pi 4 Model B Rev 1.4\x00",
        "proc/net/route": (
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
            "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
            "wlan0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n"),
        "proc/net/wireless": (
            "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
            " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
            " wlan0: 0000   58.  -52.  -256        0      0      0      0     12        0\n"),
        "etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n',
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Host(proc=root / "proc", sysfs=root / "sys", etc=root / "etc")


async def test_device_status_reports_what_a_pi_knows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_SERVER", _NO_PULSE)
    host = _fake_pi(tmp_path)
    volume = SystemVolume((PulseMixer(),))
    text = (await _registry(volume, host).call("self.get_device_status")).text
    assert ", " not in text  # compact JSON
    assert ": " not in text
    # wlan0 does not exist on this machine, so no address can be read for it: no "ip" key.
    assert json.loads(text) == {
        "audio_speaker": {},
        "network": {"type": "wifi", "interface": "wlan0", "rssi": -52},
        "chip": {"temperature": 48.3},
        "system": {"uptime_seconds": 86461, "load_average": [0.52, 0.58, 0.59]},
    }


def test_missing_host_files_leave_keys_out(tmp_path: Path) -> None:
    host = Host(proc=tmp_path / "proc", sysfs=tmp_path / "sys", etc=tmp_path / "etc")
    assert host.network() == {"type": "none"}
    assert host.cpu_temperature() is None
    assert host.uptime_seconds() is None
    assert host.load_average() is None
    assert host.board_model() is None
    assert host.os_name()  # falls back to platform.platform()


def test_this_machines_real_facts() -> None:
    host = Host()
    uptime = host.uptime_seconds()
    assert uptime is not None
    assert uptime > 0
    load = host.load_average()
    assert load is not None
    assert len(load) == 3
    network = host.network()
    if network["type"] != "none":
        assert network["type"] in {"wifi", "ethernet"}
        assert Path("/sys/class/net", network["interface"]).exists()


async def test_system_info_is_user_only(tmp_path: Path) -> None:
    registry = _registry(SystemVolume(()), _fake_pi(tmp_path))
    assert [t.name for t in registry.list()] == ["self.get_device_status", "self.audio_speaker.set_volume"]
    assert registry.list(with_user_tools=True)[-1].name == "self.get_system_info"
    info: dict[str, Any] = json.loads((await registry.call("self.get_system_info")).text)
    assert info["pibuddy_version"] == __version__
    assert info["board"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert info["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert {"python", "kernel", "machine", "hostname"} <= set(info)


def test_no_reboot_tool() -> None:
    names = {t.name for t in builtin_tools(SystemVolume(()), Host())}
    assert "self.reboot" not in names


# --- catalog ------------------------------------------------------------------------------------------


def test_catalog_adds_the_builtins_first_and_only_when_enabled() -> None:
    registry = build_registry(Config())
    assert [t.name for t in registry.list(with_user_tools=True)] == [
        "self.get_device_status", "self.audio_speaker.set_volume", "self.get_system_info"]
    assert build_registry(Config(tools=ToolsConfig(builtin=False))).list(with_user_tools=True) == []


async def test_catalog_falls_back_to_the_speaker_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No PulseAudio server and an ALSA config with no devices: neither default system mixer works (and this
    # machine's real mixer is never touched).
    monkeypatch.setenv("PULSE_SERVER", _NO_PULSE)
    (tmp_path / "empty.conf").write_text("")
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(tmp_path / "empty.conf"))
    speaker = Speaker(config=PlaybackConfig(volume=100))
    registry = build_toolbox(Config(), speaker=speaker).registry
    assert await registry.call("self.audio_speaker.set_volume", {"volume": 15}) == ToolResult("true")
    assert speaker.volume == 15
    result = await build_registry(Config()).call("self.audio_speaker.set_volume", {"volume": 15})
    assert result == ToolResult("The speaker volume cannot be changed: no sound mixer is available.", True)
