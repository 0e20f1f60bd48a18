"""The household page of a real `pibuddy run`, in headless Chromium (Debian's chromium driven by playwright):
log in with the token, move the volume slider, mute, announce, see a timer set over the control socket count
down, restart a service, read the history; each acts on the running service (the PulseAudio mixer, `pibuddy
status`, the virtual speaker, the journal).
A screenshot is kept as a test artefact."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.audio.conftest import _PULSE_CLIENT_ENV, MonitorRecorder
from tests.audio.test_control_run import cli, pibuddy_run
from tests.audio.test_e2e_xiaozhi import _tone_seconds
from tests.peers.ports import free_port
from tests.peers.pulseaudio import PulseServer

pytestmark = pytest.mark.peer
playwright = pytest.importorskip("playwright.async_api", reason="playwright is a test extra (setup.sh --dev)")
_CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Never a downloaded browser: Debian's chromium, as setup.sh --dev installs it.
_CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--no-first-run"]
_TOKEN = "kitchen-table-7"
ARTEFACTS = Path(os.environ.get("PIBUDDY_TEST_ARTEFACTS", Path(__file__).resolve().parents[2] / "test-artefacts"))


@pytest.mark.skipif(_CHROMIUM is None, reason="Debian's chromium is not installed (setup.sh --dev installs it)")
async def test_the_page_shows_and_steers_a_running_pibuddy_in_headless_chromium(
        pulse: PulseServer, tmp_path: Path, pibuddy_env: dict[str, str]) -> None:
    await asyncio.to_thread(ARTEFACTS.mkdir, parents=True, exist_ok=True)
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text("upstream: {enabled: false}\ngateway: {enabled: false}\nbrain: {mode: local}\n"
                      f"control: {{socket: '{tmp_path / 'control.sock'}'}}\n"
                      f"web: {{enabled: true, port: {port}, token: '{_TOKEN}'}}\n")
    env = pibuddy_env | {key: os.environ[key] for key in (*_PULSE_CLIENT_ENV, "PULSE_SOURCE", "PULSE_SINK")}
    url = f"http://127.0.0.1:{port}/"
    log: list[str] = []
    async with pibuddy_run(config, env, log), playwright.async_playwright() as driver:
        await pulse.pactl("set-sink-volume", "@DEFAULT_SINK@", "60%")
        browser = await driver.chromium.launch(executable_path=_CHROMIUM, args=_CHROMIUM_FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(url)
            await page.locator("#token").fill("wrong")
            await page.locator("#login-form button").click()
            await playwright.expect(page.locator("#login-error")).to_have_text("wrong password")
            await page.locator("#token").fill(_TOKEN)
            await page.locator("#login-form button").click()
            await playwright.expect(page.locator("#state")).to_have_text("idle", timeout=10_000)
            await playwright.expect(page.locator("#volume-value")).to_have_text("60%", timeout=10_000)

            await page.locator("#volume").fill("25")
            await playwright.expect(page.locator("#message")).to_have_text("Volume set to 25%")
            assert "25%" in await pulse.pactl("get-sink-volume", "@DEFAULT_SINK@"), "the real mixer moved"

            await page.locator("#mute").click()
            await playwright.expect(page.locator("#mute")).to_have_text("Unmute the microphone")
            await playwright.expect(page.locator("#state")).to_have_text("muted")
            status = json.loads((await cli(config, env, "status", "--json")).stdout)
            assert status["muted"] is True

            async with MonitorRecorder(pulse, rate=16000) as speaker:
                await page.locator("#announce-text").fill("Dinner is ready")
                await page.locator("#announce-form button").click()
                await playwright.expect(page.locator("#message")).to_have_text("Announced")
                await asyncio.sleep(2.5)
            assert _tone_seconds(speaker.samples(), 16000, 660.0) >= 0.09, "the announcement reached the speaker"

            timer = await cli(config, env, "tools", "call", "timer_start", '{"minutes": 8, "name": "pasta"}')
            assert timer.stdout.strip() == "The pasta timer is set for 8 minutes.", timer.stderr
            await playwright.expect(page.locator("#timers")).to_have_text(  # counting down from 8:00
                re.compile(r"^pasta: 7:5\d left of 8:00$"), timeout=10_000)
            await playwright.expect(page.locator("#history")).to_contain_text("took ")  # an action's own duration

            await page.locator("#services button[data-service=timers]").click()
            await playwright.expect(page.locator("#message")).to_have_text("Restarting timers")
            await playwright.expect(page.locator("#history")).to_contain_text("web: restart")
            await playwright.expect(page.locator("#history")).to_contain_text("web: set_volume")
            await page.screenshot(path=str(ARTEFACTS / "web_page.png"), full_page=True)
            anonymous = await browser.new_context()
            response = await (await anonymous.new_page()).request.get(url + "api/status")
            assert response.status == 401, "the API needs the password"
        finally:
            await browser.close()
    output = "".join(log)
    assert "service timers restarting on request" in output
    assert "set_volume by web" in output
    assert (ARTEFACTS / "web_page.png").stat().st_size > 10_000
