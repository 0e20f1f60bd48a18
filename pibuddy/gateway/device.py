"""One device's life at the gateway: its MQTT messages, its sessions (hello -> bridge + UDP route), its MCP.

`DeviceSession` is the `DeviceHandler` of one MQTT connection (docs/protocol.md §3.4, §5, §8). The protocol's
rules are those of `xiaozhi.Session(role=SERVER)`, which it runs for the device: the hello goes in, the
answer (`accept_hello` or `reject_hello`) and the closing goodbye come out of it, and its state is the
session's. The messages the gateway only relays go past it, raw, both ways.
- `hello` (version 3): fresh AES key, a chat server chosen by the pool, its WebSocket opened, the server's
  hello turned into the UDP hello for the device. A failure publishes `error` to the device.
- other device JSON: forwarded verbatim to the chat server while a session exists; `goodbye` and
  `udp_timeout` end the session; with no session the device gets a `goodbye` (as the reference does),
  except while its hello is still being bridged (then it is dropped: that goodbye could close the very
  session being opened, whose id the device does not know yet).
- server JSON: published verbatim, except its hello and the MCP requests the gateway answers itself.
- the session ends when either side closes: the device gets a `goodbye` with the server's session id.

Bad input (non-JSON, a hello without version 3, an MCP message without payload) is logged in one line and
dropped; the MQTT connection stays up. A message the gateway only relays goes on even when PiBuddy's own
parser would refuse a field of it: the peer at the other end judges it, as with the reference.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.events import TurnProgress, TurnStage
from pibuddy.gateway.bridge import (
    MAX_UNSENT_TEXT,
    Bridge,
    ChatServerPool,
    ChatServerUnavailable,
    ServerHello,
    chat_server_headers,
    display_url,
)
from pibuddy.gateway.mcp_cache import DeviceMcp, HostTools, ServerRequest
from pibuddy.gateway.mqtt_server import DeviceConnection
from pibuddy.gateway.udp_relay import UdpRelay, UdpRoute
from pibuddy.xiaozhi.const import AES_KEY_SIZE, HELLO_VERSION_MQTT, MQTT_MAX_PACKET_SIZE, UDP_ENCRYPTION, Role
from pibuddy.xiaozhi.errors import InvalidMessage, RemoteProtocolError
from pibuddy.xiaozhi.messages import (
    Error,
    Goodbye,
    Hello,
    Listen,
    ListenState,
    Mcp,
    Message,
    Stt,
    Tts,
    TtsState,
    UdpTimeout,
    parse_message,
)
from pibuddy.xiaozhi.session import Session
from pibuddy.xiaozhi.states import State
from pibuddy.xiaozhi.udp_codec import UdpParams, make_nonce

_LOGGER = logging.getLogger(__name__)
_HELLO_BUDGET_SECONDS: Final = 8.0
"""Time to reach a chat server and get its hello; the firmware gives up after 10 s."""
_ACTED_ON_FROM_DEVICE: Final = frozenset({Hello.TYPE, Mcp.TYPE, Goodbye.TYPE, UdpTimeout.TYPE})
_ACTED_ON_FROM_SERVER: Final = frozenset({Hello.TYPE, Mcp.TYPE})


@dataclass(frozen=True, slots=True)
class GatewayContext:
    """What every device session shares."""

    relay: UdpRelay
    pool: ChatServerPool
    advertised_host: str
    server_secret: str | None
    host_tools: HostTools | None
    max_tools: int
    mcp_timeout: float
    on_turn: Callable[[TurnProgress], None] | None = None
    """Told each device's turn stages (the history's per-device latencies); None: nobody listens."""
    on_conversation: Callable[[], None] | None = None
    """Told when a device's conversation opens or closes (the device list says which are in one)."""


ALERT_STATUS: Final = "PiBuddy"
TURN_BRAIN: Final = "xiaozhi"  # a gateway device's turns are answered by its chat server


class DeviceSession:
    """The gateway's side of one MQTT connection."""

    def __init__(self, connection: DeviceConnection, context: GatewayContext, *,
                 on_closed: Callable[[DeviceSession], None] | None = None,
                 on_greeted: Callable[[DeviceSession], None] | None = None) -> None:
        self.connection = connection
        self.protocol = Session(Role.SERVER)
        """The device's conversation: IDLE, CONNECTING while a hello is bridged, OPEN once it is answered."""
        self.bridge: Bridge | None = None
        self.route: UdpRoute | None = None
        self.mcp = DeviceMcp(self._publish_text, max_tools=context.max_tools, timeout=context.mcp_timeout,
                             host_tools=context.host_tools)
        self._context = context
        self._on_closed = on_closed
        self._on_greeted = on_greeted
        self._opening: asyncio.Task[None] | None = None
        self._reply_audio_heard = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._spawn(self.mcp.discover())

    @property
    def client_id(self) -> str:
        return self.connection.identity.client_id

    @property
    def state(self) -> State:
        return self.protocol.state

    @property
    def session_id(self) -> str | None:
        """The id the device was given in the hello answer ("" when the chat server gave none), while bridged."""
        return self.protocol.session_id if self.bridge is not None else None

    def _turn(self, stage: TurnStage, text: str = "") -> None:
        if self._context.on_turn is not None:
            self._context.on_turn(TurnProgress(stage, TURN_BRAIN, text, microphone=self.connection.identity.mac))

    def _conversation_changed(self) -> None:
        if self._context.on_conversation is not None:
            self._context.on_conversation()

    def alert(self, text: str) -> None:
        """Show `text` on the device. A stock firmware cannot be made to speak it: it plays audio only in a
        session it opened itself (its hello after a wake), so an announcement is an `alert`, which the
        firmware shows with its notification sound, in or out of a session (docs/protocol.md §7.2)."""
        self._publish({"type": "alert", "status": ALERT_STATUS, "message": text, "emotion": "neutral"})

    # --- from the device ------------------------------------------------------------------------

    def message_from_device(self, payload: bytes) -> None:
        try:
            message = parse_message(payload, max_size=MQTT_MAX_PACKET_SIZE)
        except RemoteProtocolError as exc:
            if self.bridge is not None and _relayed_anyway(exc, _ACTED_ON_FROM_DEVICE):
                self.bridge.send_text(payload.decode("utf-8"))
                return
            _LOGGER.warning("device %s sent a bad message (%s); dropped", self.client_id, exc.reason)
            return
        if isinstance(message, Listen) and message.state is ListenState.START:
            self._reply_audio_heard = False
            self._turn(TurnStage.LISTEN_START)
        match message:
            case Hello():
                self._on_hello(message)
            case Mcp() if self.mcp.response_from_device(message.payload):
                return  # an answer to the gateway's own MCP request: consumed, not relayed
            case Goodbye() | UdpTimeout():
                self._end_session(f"device sent {message.TYPE}")
            case _ if self.bridge is not None:
                if not self.bridge.send_text(payload.decode("utf-8")):
                    _LOGGER.warning("device %s: chat server %s is not reading (over %d KiB unsent); session ended",
                                    self.client_id, display_url(self.bridge.server.url), MAX_UNSENT_TEXT // 1024)
                    self._end_session("chat server not reading")
            case _ if self.protocol.state is State.CONNECTING:
                _LOGGER.debug("device %s sent %s before its hello was answered; dropped", self.client_id,
                              message.TYPE)
            case Mcp():
                _LOGGER.debug("device %s answered an MCP request of a finished session", self.client_id)
            case _:
                # No session to take it: tell the device its session is gone (§5.2).
                self._publish({"type": "goodbye", "session_id": message.session_id})

    def _on_hello(self, hello: Hello) -> None:
        if hello.version != HELLO_VERSION_MQTT:
            # The reference gateway's rule, checked before the session sees the hello: a live session goes on.
            _LOGGER.warning("device %s sent hello version %r, not %d; refused", self.client_id, hello.version,
                            HELLO_VERSION_MQTT)
            self._publish_text(Error(message=f"hello version must be {HELLO_VERSION_MQTT}").to_json())
            return
        if self._on_greeted is not None:
            self._on_greeted(self)
        self._end_session("new hello", say_goodbye=False)
        self._turn(TurnStage.WAKE)
        self.protocol.receive(hello, time.monotonic())
        self._opening = self._spawn(self._run_session(hello))

    def connection_closed(self) -> None:
        self.mcp.close()
        for task in list(self._tasks):  # before _end_session, whose bridge.close() task must run
            task.cancel()
        self._end_session("MQTT connection closed", say_goodbye=False)
        if self._on_closed is not None:
            self._on_closed(self)

    async def drain(self) -> None:
        """Wait for what is still running after `connection_closed()` (closing the chat-server WebSocket)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- a session --------------------------------------------------------------------------------

    async def _run_session(self, hello: Hello) -> None:
        key = os.urandom(AES_KEY_SIZE)
        opened = await self._open_bridge(hello)
        if opened is None:
            self.protocol.reject_hello()
            self._flush()
            return
        bridge, server_hello = opened
        relay, connection_id = self._context.relay, self.connection.connection_id
        route = relay.open_route(connection_id, key, bridge.send_audio, device_ip=self.connection.peer_ip)
        self.bridge, self.route = bridge, route
        self._conversation_changed()
        udp = UdpParams(server=self._context.advertised_host, port=relay.port, key=key,
                        nonce=make_nonce(connection_id), encryption=UDP_ENCRYPTION)
        # A server hello without a session id gives a UDP hello without one (the reference's too); the
        # firmware then keeps "" as its session id, which our goodbye for this session carries.
        self.protocol.accept_hello(server_hello.session_id, udp=udp, audio_params=server_hello.audio_params)
        self._flush()
        self._turn(TurnStage.HELLO)
        _LOGGER.info("device %s session %s bridged to %s", self.client_id, server_hello.session_id or "(no id)",
                     display_url(bridge.server.url))
        bridge.start()
        try:
            await bridge.run()
        finally:
            relay.close_route(route)
            if self.bridge is bridge:
                self._end_session("chat server closed the session")

    async def _open_bridge(self, hello: Hello) -> tuple[Bridge, ServerHello] | None:
        """Try the pool's candidates within the hello budget; None if none answered."""
        pool, deadline = self._context.pool, time.monotonic() + _HELLO_BUDGET_SECONDS
        candidates = pool.candidates()
        headers = chat_server_headers(self.connection.identity, server_secret=self._context.server_secret,
                                      now=time.time())
        for index, server in enumerate(candidates):
            share = (deadline - time.monotonic()) / (len(candidates) - index)  # later servers keep their turn
            bridge = Bridge(server, on_text=self._text_from_server, on_audio=self._audio_from_server)
            try:
                # Not wait_for: on 3.11 it swallows a cancel (a goodbye or a new hello superseding this one)
                # that races with the server's refusal, and this stale hello would then be rejected or bridged.
                async with asyncio.timeout(max(share, 0.1)):
                    server_hello = await bridge.open(headers, hello)
            except (ChatServerUnavailable, TimeoutError) as exc:
                await bridge.close()
                pool.mark_failed(server, str(exc) or "no hello in time")
                continue
            except asyncio.CancelledError:  # superseded by a new hello or a goodbye
                await bridge.close()
                raise
            pool.mark_ok(server)
            return bridge, server_hello
        if not candidates:
            _LOGGER.error("device %s said hello but gateway.chat_servers is empty", self.client_id)
        return None

    def _end_session(self, reason: str, *, say_goodbye: bool = True) -> None:
        """Close the current bridge, if any; the device hears `goodbye` unless a new hello superseded it."""
        if self._opening is not None and self.protocol.state is State.CONNECTING:
            self._opening.cancel()
        bridge, session_id = self.bridge, self.session_id
        self.bridge, self.route, self._opening = None, None, None
        if bridge is not None:
            self._turn(TurnStage.END)
            _LOGGER.info("device %s session %s ended (%s)", self.client_id, session_id, reason)
            self._spawn(bridge.close())
            self._conversation_changed()
        # The device hears goodbye (with its session id) only for a session it was told about.
        self.protocol.close(send_goodbye=say_goodbye and bridge is not None)
        self._flush()

    # --- from the chat server ------------------------------------------------------------------------

    def _audio_from_server(self, bridge: Bridge, frame: bytes) -> None:
        route = self.route
        if route is not None and bridge is self.bridge:
            if not self._reply_audio_heard:
                self._reply_audio_heard = True
                self._turn(TurnStage.FIRST_AUDIO)
            route.to_device(frame)

    def _text_from_server(self, bridge: Bridge, text: str) -> None:
        if bridge is not self.bridge:
            return  # a superseded session's last words
        try:
            message = parse_message(text)
        except RemoteProtocolError as exc:
            if _relayed_anyway(exc, _ACTED_ON_FROM_SERVER):
                self._publish_text(text)
                return
            _LOGGER.warning("chat server sent device %s a bad message (%s); dropped", self.client_id, exc.reason)
            return
        if isinstance(message, Hello):
            return
        self._note_turn(message)
        if isinstance(message, Mcp):
            action = self.mcp.classify_server_request(message.payload)
            if action is ServerRequest.ANSWER:
                self._spawn(self._answer_server(bridge, message))
            if action is not ServerRequest.FORWARD:
                return
        self._publish_text(text)

    async def _answer_server(self, bridge: Bridge, request: Mcp) -> None:
        """Answer on the bridge the request came by (a newer session must not get an old answer)."""
        response = await self.mcp.answer_server(request.payload)
        reply: dict[str, Any] = {"type": "mcp", "payload": response}
        if request.session_id is not None:
            reply = {"session_id": request.session_id, **reply}
        bridge.send_text(_compact(reply))

    def _note_turn(self, message: Message) -> None:
        """The stages the chat server's messages mark: what was heard, each sentence, the end of the reply."""
        match message:
            case Stt(text=text):
                self._turn(TurnStage.HEARD, text or "")
            case Tts(state=TtsState.SENTENCE_START, text=text):
                self._turn(TurnStage.REPLY, text or "")
            case Tts(state=TtsState.STOP):
                self._turn(TurnStage.END)

    # --- helpers ---------------------------------------------------------------------------------------

    def _publish(self, message: dict[str, Any]) -> None:
        self._publish_text(_compact(message))

    def _flush(self) -> None:
        """Publish what the protocol session has to say to the device."""
        for text in self.protocol.messages_to_send():
            self._publish_text(text)
        self.protocol.events_received()  # its state is read where needed; the events carry nothing more

    def _publish_text(self, text: str) -> None:
        self.connection.publish(text.encode("utf-8"))

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("device %s: task failed", self.client_id, exc_info=task.exception())


def _relayed_anyway(error: RemoteProtocolError, acted_on: frozenset[str]) -> bool:
    """A message with fields PiBuddy would not accept, of a type the gateway only relays: the reference
    relays any JSON, and the device or server at the other end judges it (liberal where we only pass on)."""
    return isinstance(error, InvalidMessage) and error.message_type is not None \
        and error.message_type not in acted_on


def _compact(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
