"""The chat-server leg: one WebSocket per device session to a xiaozhi chat server (docs/protocol.md §8).

`ChatServerPool` picks the server: the healthy one with the fewest active sessions (the reference picks at
random), and a server that failed to connect or to answer hello sits out `cooldown` seconds; when every
server is cooling down the one whose cooldown ends first is tried anyway, so a single-server setup
recovers as soon as its server is back.

`Bridge.open()` connects with the §8.1 headers, sends the gateway hello and returns the server's hello.
Afterwards server messages reach the callbacks straight from the socket (`ws_client`), and uplink audio
is written from the UDP callback itself; `run()` returns when the socket has closed.

Nothing between a device and its chat server queues without bound; each direction has one policy:
- device audio -> server: written at once; while the socket is paused (`ws_client.MAX_WRITE_BUFFER`,
  256 KiB unsent) frames are dropped and counted in `uplink_drops` (late audio is worthless);
- device JSON -> server: written at once; with `MAX_UNSENT_TEXT` (512 KiB) unsent the session is ended
  (the device hears goodbye): a server that reads nothing for that long is hung, and JSON carries the
  conversation's state, so it is not dropped piecemeal;
- server JSON -> device: MQTT publish; a device that lets 256 KiB pile up in our buffer (past the kernel's
  socket buffers) is disconnected, what it left unread dropped (`mqtt_server.MAX_UNSENT`);
- server audio -> device: one UDP datagram each, dropped when the socket's send buffer is full.
A hung chat server therefore costs at most ~768 KiB per device, freed when its session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.drops import DropCounter
from pibuddy.errors import ConnectionLost
from pibuddy.gateway.credentials import DeviceIdentity, server_auth_token
from pibuddy.gateway.ws_client import WsClient, WsConnectFailed
from pibuddy.xiaozhi.const import HELLO_VERSION_GATEWAY_UPSTREAM, MAX_JSON_MESSAGE_SIZE, AudioTransport
from pibuddy.xiaozhi.errors import RemoteProtocolError
from pibuddy.xiaozhi.messages import Hello, parse_message

_LOGGER = logging.getLogger(__name__)
_MAX_WS_MESSAGE: Final = MAX_JSON_MESSAGE_SIZE
_MAX_EARLY_MESSAGES: Final = 64
MAX_UNSENT_TEXT: Final = 512 * 1024
"""A chat server with this much of our output unread is hung: device text to it ends the session."""
_CLOSE_TIMEOUT_SECONDS: Final = 2.0
_SAID_BEFORE_HELLO_CHARS: Final = 100


class ChatServerUnavailable(ConnectionLost):
    """No chat server could be reached, or none answered hello in time."""


@dataclass
class ChatServer:
    """One configured chat server and what the pool knows of it."""

    url: str
    active: int = 0
    sessions_total: int = 0
    failures: int = 0
    unhealthy_until: float = 0.0

    def healthy(self, now: float) -> bool:
        return now >= self.unhealthy_until


class ChatServerPool:
    """Args:
    urls: chat server WebSocket URLs (each ending with `?from=mqtt_gateway`).
    cooldown: seconds a failing server is skipped.
    """

    def __init__(self, urls: list[str], *, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.servers = [ChatServer(url) for url in urls]
        self._cooldown = cooldown
        self._clock = clock

    def candidates(self) -> list[ChatServer]:
        """Healthy servers by fewest active sessions, then the cooling ones by soonest recovery."""
        now = self._clock()
        healthy = sorted((u for u in self.servers if u.healthy(now)), key=lambda u: u.active)
        cooling = sorted((u for u in self.servers if not u.healthy(now)), key=lambda u: u.unhealthy_until)
        return healthy + cooling

    def mark_failed(self, server: ChatServer, reason: str) -> None:
        server.failures += 1
        server.unhealthy_until = self._clock() + self._cooldown
        _LOGGER.warning("chat server %s failed (%s); skipping it for %.0f s", display_url(server.url), reason,
                        self._cooldown)

    def mark_ok(self, server: ChatServer) -> None:
        server.unhealthy_until = 0.0


@dataclass(frozen=True, slots=True)
class ServerHello:
    """The chat server's hello: its session id and audio parameters go into the device's UDP hello."""

    session_id: str | None
    """None when the server gave none (platforms such as Xrobot); the device's hello then has none either."""
    audio_params: Any


def chat_server_headers(identity: DeviceIdentity, *, server_secret: str | None, now: float) -> dict[str, str]:
    """The §8.1 handshake headers for one device."""
    # Without SERVER_SECRET the reference sends a literal token that servers without auth ignore.
    token = server_auth_token(server_secret, identity.uuid, identity.mac, int(now)) if server_secret else "test-token"
    headers = {"device-id": identity.mac, "protocol-version": str(HELLO_VERSION_GATEWAY_UPSTREAM),
               "authorization": f"Bearer {token}", "x-forwarded-for": str(identity.user_data.get("ip", ""))}
    if identity.uuid:
        headers["client-id"] = identity.uuid
    return headers


class Bridge:
    """One device session's WebSocket to its chat server.

    Args:
        server: the chosen server (its `active` count is kept by the bridge).
        on_text: gets (this bridge, each server JSON message after the hello as text).
        on_audio: gets (this bridge, each server binary frame in the §8.2 downlink form).
    """

    def __init__(self, server: ChatServer, *, on_text: Callable[[Bridge, str], None],
                 on_audio: Callable[[Bridge, bytes], None]) -> None:
        self.server = server
        self.frames_up = 0
        self.frames_down = 0
        self._on_text = on_text
        self._on_audio = on_audio
        self._ws: WsClient | None = None
        self._counted = False
        self._hello: asyncio.Future[ServerHello] = asyncio.get_running_loop().create_future()
        self._early: list[str] = []
        self._said_before_hello = ""
        self.uplink_drops = DropCounter("uplink audio frames (chat server not reading)", _LOGGER)

    async def open(self, headers: dict[str, str], device_hello: Hello) -> ServerHello:
        """Connect and exchange hellos; raises `ChatServerUnavailable` (the caller sets the time limit)."""
        try:
            self._ws = await WsClient.connect(self.server.url, headers, on_text=self._text_before_hello,
                                              on_binary=_ignore, max_size=_MAX_WS_MESSAGE)
        except WsConnectFailed as exc:
            raise ChatServerUnavailable(exc.args[0]) from exc
        self.server.active += 1
        self.server.sessions_total += 1
        self._counted = True
        # The device's other hello fields (text_font for glyph push, §7.4) pass through untouched.
        hello = {"type": "hello", "version": HELLO_VERSION_GATEWAY_UPSTREAM, "transport": AudioTransport.WEBSOCKET,
                 "audio_params": device_hello.audio_params, "features": device_hello.features, **device_hello.extra}
        self._ws.send_text(json.dumps(hello, ensure_ascii=False, separators=(",", ":")))
        closed = asyncio.ensure_future(self._ws.wait_closed())
        try:
            waiters: set[asyncio.Future[Any]] = {self._hello, closed}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if not self._hello.done():
            # A refusing server (xiaozhi-server on a bad token) says why in a text message, then closes.
            said = f", saying {self._said_before_hello!r}" if self._said_before_hello else ""
            raise ChatServerUnavailable(f"closed before its hello{said}")
        return self._hello.result()

    def start(self) -> None:
        """Relay from now on (the device has its hello): messages that came after the server's hello first."""
        assert self._ws is not None, "open() first"
        self._ws.on_text, self._ws.on_binary = self._text, self._audio
        early, self._early = self._early, []
        for text in early:
            self._on_text(self, text)

    def _text_before_hello(self, text: str) -> None:
        if self._hello.done():  # after the hello, before start(): kept in order (MCP initialize comes now)
            if len(self._early) < _MAX_EARLY_MESSAGES:
                self._early.append(text)
            return
        try:
            parsed = parse_message(text)
        except RemoteProtocolError:
            parsed = None
        if not isinstance(parsed, Hello):  # kept for the failure's log line, should the server now close
            self._said_before_hello = text[:_SAID_BEFORE_HELLO_CHARS]
        else:  # any hello will do, as with the reference gateway: version, session id, transport unread
            self._hello.set_result(ServerHello(parsed.session_id, parsed.audio_params))

    def _text(self, text: str) -> None:
        self._on_text(self, text)

    def _audio(self, frame: bytes) -> None:
        self.frames_down += 1
        self._on_audio(self, frame)

    async def run(self) -> None:
        """Return when the WebSocket has closed (the caller says goodbye to the device)."""
        assert self._ws is not None, "open() first"
        try:
            await self._ws.wait_closed()
        finally:
            await self.close()

    @property
    def unsent(self) -> int:
        """Bytes for the server still waiting in our send buffer."""
        return self._ws.unsent if self._ws is not None else 0

    def send_text(self, text: str) -> bool:
        """Send a JSON message to the server now (dropped if the socket is closing).

        False, and nothing sent, when `MAX_UNSENT_TEXT` bytes already wait for a server that is not reading:
        the caller ends the session (JSON carries the conversation's state, so it is not dropped piecemeal).
        """
        if self.unsent > MAX_UNSENT_TEXT:
            return False
        if self._ws is not None and not self._ws.send_text(text):
            _LOGGER.debug("message to a closing chat server connection dropped")
        return True

    def send_audio(self, frame: bytes) -> None:
        """Send one uplink frame now; dropped and counted if the server has stopped reading."""
        ws = self._ws
        if ws is not None and ws.send_binary(frame):
            self.frames_up += 1
        else:
            self.uplink_drops.count()

    async def close(self) -> None:
        """Close the WebSocket (idempotent); the server's session count drops once."""
        if self._counted:
            self._counted = False
            self.server.active -= 1
        ws = self._ws
        if ws is None:
            return
        ws.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):  # not wait_for: it can swallow a racing cancel
                await ws.wait_closed()


def _ignore(frame: bytes) -> None:
    """Audio before the device has its UDP hello has nowhere to go."""


def display_url(url: str) -> str:
    """A chat-server URL for logs and the API: without its query, which may carry a token."""
    return url.split("?", 1)[0]
