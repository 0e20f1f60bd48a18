"""The device client as a supervised service: identity, OTA/activation, then the conversation client.

A failure anywhere (OTA unreachable, MQTT refused, the link dropping later) raises out of `start()` or
`serve()`, and the supervisor retries with capped exponential backoff and jitter — forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from pibuddy import __version__
from pibuddy.audio.contract import AudioPort
from pibuddy.config import BrainMode, Config, Transport
from pibuddy.device_client.channels import Channel, MqttChannel, WsChannel
from pibuddy.device_client.client import WAKE_ANSWER_SECONDS, DeviceClient, answer_without_server
from pibuddy.device_client.identity import Identity, load_identity
from pibuddy.device_client.ota_client import DEFAULT_TIMINGS, ActivationTimings, OtaClient, fetch_upstream_settings
from pibuddy.device_client.settings import UpstreamSettingsStore
from pibuddy.device_client.sysinfo import build_ota_device
from pibuddy.events import (
    BRAIN_UPSTREAM,
    BUTTON,
    Command,
    CommandName,
    DeviceState,
    EventBus,
    Subscription,
    WakeDetected,
    answers_wakes,
)
from pibuddy.statedir import StateDir
from pibuddy.supervisor import Health, Service
from pibuddy.tools.mcp import McpServer
from pibuddy.tools.registry import ToolRegistry
from pibuddy.xiaozhi import ListenMode
from pibuddy.xiaozhi.ota_response import MqttSettings, OtaResponse, choose_transport

_LOGGER = logging.getLogger(__name__)


async def provision(config: Config, bus: EventBus, timings: ActivationTimings = DEFAULT_TIMINGS
                    ) -> tuple[Identity, OtaResponse]:
    """Load (or create) the identity and ask the OTA server how to connect, activating if it asks."""
    state = StateDir(config.device.resolved_state_dir)
    identity = load_identity(state, configured_device_id=config.device.device_id)
    device = build_ota_device(config, identity)
    async with OtaClient(str(config.upstream.ota_url), device) as ota:
        response = await fetch_upstream_settings(ota, UpstreamSettingsStore(state), bus=bus, timings=timings)
    return identity, response


def make_channel(config: Config, identity: Identity, response: OtaResponse) -> Channel:
    settings = choose_transport(response, Transport(config.upstream.transport).value)
    if isinstance(settings, MqttSettings):
        return MqttChannel(settings, timeout=config.upstream.hello_timeout)
    return WsChannel(settings, device_id=identity.device_id, client_id=identity.client_id,
                     protocol_version=config.upstream.websocket_protocol_version,
                     timeout=config.upstream.hello_timeout)


_Wake = tuple[WakeDetected | Command, float]
"""A wake word or button press, and when it came (monotonic seconds)."""


def _is_wake(event: object) -> bool:
    return isinstance(event, WakeDetected) or (isinstance(event, Command) and event.name == CommandName.LISTEN_START)


def _wake_turn_mode(configured: str) -> ListenMode:
    """Wake-word turns run auto or realtime; `manual` (push-to-talk) applies to button turns, which
    are always manual, so a manual config still ends wake-word turns by the server's VAD."""
    return ListenMode.REALTIME if configured == ListenMode.REALTIME else ListenMode.AUTO


class DeviceClientService(Service):
    """Keeps PiBuddy connected to its xiaozhi server as a device."""

    name = "upstream"

    def __init__(self, config: Config, *, bus: EventBus, registry: ToolRegistry, audio: AudioPort,
                 timings: ActivationTimings = DEFAULT_TIMINGS) -> None:
        self._config = config
        self._bus = bus
        self._audio = audio
        self._mcp = McpServer(registry, server_name=config.upstream.board_type, server_version=__version__)
        self._timings = timings
        self._client: DeviceClient | None = None
        self._hand_over = config.brain.mode is BrainMode.AUTO and config.audio.enabled
        """A wake the server does not answer in time goes to the local brain, which listens only with a
        microphone (pibuddy/wiring/brain.py)."""
        self._asked: _Wake | None = None
        """The wake or button press that cut the last backoff short, and when, for the next start to answer."""

    @property
    def client(self) -> DeviceClient | None:
        return self._client

    async def start(self) -> None:
        """Connect. A wake or button press that cut the backoff short, or that comes while connecting, is
        answered by the server once connected, or without it when that takes more than `WAKE_ANSWER_SECONDS`."""
        heard: list[_Wake] = [self._asked] if self._asked is not None else []
        self._asked = None
        with self._bus.subscribe() as events:
            watcher = asyncio.create_task(self._answer_when_late(events, heard), name="upstream-wake-watch")
            try:
                await self._connect()
            except Exception:
                watcher.cancel()
                wake = self._unanswered(watcher, heard, events)
                if wake is not None:  # failed before the time was up: say so now
                    self._answer_without_server(wake[0])
                raise
            finally:
                watcher.cancel()
            # No await since the client subscribed: what `events` holds came before, and only here.
            wake = self._unanswered(watcher, heard, events)
        if wake is not None and self._client is not None:
            self._client.answer_later(*wake)

    def _unanswered(self, watcher: asyncio.Task[None], heard: list[_Wake], events: Subscription) -> _Wake | None:
        """The first wake heard while not connected, unless the watcher has answered it already."""
        if watcher.done() and not watcher.cancelled():
            return None
        while heard == [] and not events.queue.empty():
            wake = self._as_wake(events.queue.get_nowait())
            if wake is not None:
                heard.append(wake)
        return heard[0] if heard else None

    async def _answer_when_late(self, events: Subscription, heard: list[_Wake]) -> None:
        """Wait for a wake (unless one is in `heard`), then answer it without the server once its time is up."""
        while not heard:
            wake = self._as_wake(await events.get())
            if wake is not None:
                heard.append(wake)
        event, since = heard[0]
        await asyncio.sleep(max(since + WAKE_ANSWER_SECONDS - time.monotonic(), 0.0))
        self._answer_without_server(event)

    def _as_wake(self, event: object) -> _Wake | None:
        """`event` with the time now, if it is a wake or button press the server is to answer."""
        if _is_wake(event) and answers_wakes(self._bus, BRAIN_UPSTREAM):
            assert isinstance(event, WakeDetected | Command)
            return event, time.monotonic()
        return None

    def _answer_without_server(self, event: WakeDetected | Command) -> None:
        woken_by = event.wake_word if isinstance(event, WakeDetected) else BUTTON
        answer_without_server(self._bus, self._audio, woken_by, hand_over=self._hand_over)

    async def _connect(self) -> None:
        self._bus.set_state(DeviceState.CONNECTING, f"asking {self._config.upstream.ota_url} how to connect")
        identity, response = await provision(self._config, self._bus, self._timings)
        channel = make_channel(self._config, identity, response)
        upstream = self._config.upstream
        client = DeviceClient(channel, bus=self._bus, audio=self._audio, mcp=self._mcp,
                              listen_mode=_wake_turn_mode(upstream.listen_mode),
                              hello_timeout=upstream.hello_timeout, channel_timeout=upstream.channel_timeout,
                              hand_over=self._hand_over)
        await client.__aenter__()
        self._client = client
        _LOGGER.info("connected as %s over %s; waiting for the wake word", identity.device_id, channel.describe())

    async def wait_before_retry(self, delay: float) -> None:
        """The backoff, cut short by a wake word or a button press: the user wants the server now. In `auto`
        mode with the local brain answering, the wake is the local brain's; the retry still happens, so the
        next wake finds the server if it is back."""
        with self._bus.subscribe() as events, contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                async for event in events:
                    if _is_wake(event):
                        _LOGGER.info("%s while the server is away: trying it now", type(event).__name__)
                        self._asked = self._as_wake(event)
                        return

    async def serve(self) -> None:
        assert self._client is not None
        await self._client.run()

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.__aexit__(None, None, None)

    def health(self) -> Health:
        if self._client is None:
            return Health(False, "not connected")
        return Health(True, f"{self._client.channel.describe()}, conversation {self._client.session.state}")
