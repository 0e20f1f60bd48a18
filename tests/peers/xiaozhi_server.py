"""A stand-in for xiaozhi-esp32-server (+ manager-api OTA/activate, + the MQTT gateway's UDP side).

It follows docs/protocol.md byte for byte and implements the wire format
itself (never importing ``pibuddy``), so that it checks PiBuddy independently. Usage::

    async with XiaozhiTestServer(reply_text="hi", tts_frames=4) as server:
        ...point the device client at server.ota_url...
        await asyncio.wait_for(server.tools_listed.wait(), 1)
        result = await server.call_tool("self.get_device_status", {})

Milestones (``hello_received``, ``listen_start``, ``tts_done``, ...) and recordings
(``device_messages``, ``uplink_frames``, ...) are inherited from ``ServerRecord``.
"""

from __future__ import annotations

import socket
from types import TracebackType
from typing import Any, Final

from aiohttp import web

from .xiaozhi_conversation import Conversation, ConversationSettings, SessionHub
from .xiaozhi_mcp import McpCallError
from .xiaozhi_mqtt import MqttUdpSide
from .xiaozhi_ota import MqttBrokerInfo, OtaService, OtaSettings
from .xiaozhi_record import RecordedRequest, ServerRecord, UplinkFrame
from .xiaozhi_ws import WebSocketEndpoint, WsAuth

__all__ = [
    "ConversationSettings",
    "McpCallError",
    "MqttBrokerInfo",
    "RecordedRequest",
    "UplinkFrame",
    "XiaozhiTestServer",
]

_SHUTDOWN_TIMEOUT: Final = 1.0


class XiaozhiTestServer(ServerRecord):
    """OTA + activation over HTTP, the device WebSocket, and (with ``mqtt``) the MQTT+UDP side.

    Args:
        host: Address every listener binds to and advertises.
        port: HTTP/WebSocket port (0 picks a free one); ``udp_port`` likewise for UDP audio.
        activation: Offer an ``activation`` block until the device has polled ``/activate``
            ``activation_polls`` times (202 before, 200 on the last one).
        activation_code: Fixed 6-digit code (default random per device).
        activation_hmac_key: When set, a v2 activate body's HMAC must match
            HMAC-SHA256(key, challenge) or ``/activate`` answers 401; ``hmac_valid`` is recorded.
        mqtt: The broker to offer in OTA; also starts the MQTT+UDP side, which subscribes there.
        websocket_token: Fixed bearer token the WebSocket requires (issued by OTA).
        auth_key: xiaozhi-server ``auth_key``: OTA issues §6.2 HMAC tokens and the WebSocket checks them.
        firmware_version: Offer this firmware version (default: echo the device's, so no upgrade).
        ws_heartbeat: WebSocket ping interval in seconds (xiaozhi-server: 20), None to disable.
        conversation: Remaining keywords are ``ConversationSettings`` fields (``reply_text``,
            ``tts_frames``, ``utterance_frames``, ``idle_goodbye_seconds``, ``mcp``, ...).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        udp_port: int = 0,
        activation: bool = False,
        activation_polls: int = 2,
        activation_code: str | None = None,
        activation_hmac_key: bytes | None = None,
        mqtt: MqttBrokerInfo | None = None,
        websocket_token: str = "",
        auth_key: str | None = None,
        firmware_version: str | None = None,
        ws_heartbeat: float | None = 20.0,
        **conversation: Any,
    ) -> None:
        super().__init__()
        self.host = host
        self.mqtt_info = mqtt
        self.settings = ConversationSettings(**conversation)
        self._port = port
        self._udp_port = udp_port
        self._ota_settings = OtaSettings(
            activation=activation,
            activation_polls=activation_polls,
            activation_code=activation_code,
            activation_hmac_key=activation_hmac_key,
            websocket_token=websocket_token,
            auth_key=auth_key,
            firmware_version=firmware_version,
        )
        self._ws_auth = WsAuth(websocket_token, auth_key)
        self._ws_heartbeat = ws_heartbeat
        self._runner: web.AppRunner | None = None
        self._ws: WebSocketEndpoint | None = None
        self._hub: SessionHub | None = None
        self._mqtt_side: MqttUdpSide | None = None
        self._mqtt_device: str | None = None  # the MQTT client id replies go to (see set_mqtt_device)

    # --- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> XiaozhiTestServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        self._hub = SessionHub(self, self.settings, vision_url=f"{self.http_url}/mcp/vision/explain")
        if self.mqtt_info is not None:
            self._mqtt_side = MqttUdpSide(self.mqtt_info, self, self._hub, udp_host=self.host)
            if self._mqtt_device is not None:
                self._mqtt_side.set_device(self._mqtt_device)
        ota = OtaService(
            self._ota_settings,
            self,
            ws_url=lambda: self.ws_url,
            mqtt=self.mqtt_info,
            on_mqtt_device=self.set_mqtt_device,
        )
        self._ws = WebSocketEndpoint(self, self._hub, self._ws_auth, heartbeat=self._ws_heartbeat)
        app = web.Application()
        ota.add_routes(app)
        app.router.add_get("/xiaozhi/v1/", self._ws.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        if self._mqtt_side is not None:
            try:
                await self._mqtt_side.start(self._udp_port)
            except BaseException:
                await self._runner.cleanup()
                raise

    async def stop(self) -> None:
        if self._mqtt_side is not None:
            await self._mqtt_side.stop()
        if self._ws is not None:
            await self._ws.close_all()
        if self._hub is not None:
            await self._hub.end(self._hub.active)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- addresses -----------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def ota_url(self) -> str:
        return f"{self.http_url}/xiaozhi/ota/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self._port}/xiaozhi/v1/"

    @property
    def udp_port(self) -> int:
        if self._mqtt_side is None:
            raise RuntimeError("the UDP side runs only when the server was given mqtt=MqttBrokerInfo(...)")
        return self._mqtt_side.udp_port

    @property
    def udp_connection_id(self) -> int:
        """The ssrc in every UDP header (bytes 4..7 of the hello nonce)."""
        if self._mqtt_side is None:
            raise RuntimeError("the UDP side runs only when the server was given mqtt=MqttBrokerInfo(...)")
        return self._mqtt_side.connection_id

    # --- the open session ----------------------------------------------------------------------

    @property
    def conversation(self) -> Conversation | None:
        """The most recently opened session, if it is still open."""
        return None if self._hub is None else self._hub.active

    @property
    def session_id(self) -> str | None:
        conversation = self.conversation
        return None if conversation is None else conversation.session_id

    def set_mqtt_device(self, client_id: str) -> None:
        """Send MQTT replies to this client id's ``devices/p2p/<mac_>`` (OTA does this itself). Kept across a
        restart: the reference gateway knows a device by its MQTT connection, not by an OTA request it served,
        so a device that reconnects with its last OTA answer while this server restarts is still answered."""
        self._mqtt_device = client_id
        if self._mqtt_side is not None:
            self._mqtt_side.set_device(client_id)

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """``tools/call`` on the device (ids count from 1); returns the JSON-RPC result.

        Raises ``McpCallError`` on an error reply and ``TimeoutError`` after ``mcp_timeout``.
        """
        return await self._active().mcp.call_tool(name, arguments or {})

    def end_utterance(self) -> None:
        """Reply now to what the device streamed, as the server's VAD would at the end of speech (for
        tests that set ``utterance_frames=None`` so the reply never races the spoken command)."""
        self._active().end_utterance()

    # --- knobs for malformed or unfriendly server behaviour ------------------------------------

    async def send_json(self, message: dict[str, Any]) -> None:
        """Send any JSON message on the open session (WS text, or MQTT publish)."""
        await self._active().send_json(message)

    async def send_raw_text(self, text: str) -> None:
        """Send text verbatim: garbage JSON, oversized messages, ..."""
        await self._active().channel.send_text(text)

    async def send_raw_binary(self, data: bytes) -> None:
        """Send bytes verbatim as one WS binary message, or one UDP datagram (not encrypted)."""
        await self._active().channel.send_raw_binary(data)

    async def send_goodbye(self, session_id: str | None = None) -> None:
        """Send ``goodbye`` with the open session's id (if the dialect gave one), or ``session_id`` (a wrong one)."""
        conversation = self._active()
        goodbye: dict[str, Any] = {"type": "goodbye"}
        goodbye = goodbye | {"session_id": session_id} if session_id else conversation.stamped(goodbye)
        await conversation.send_json(goodbye)
        self.goodbye_sent.set()

    async def close_connection(self) -> None:
        """End the open session now: WS close (direct), or goodbye + drop (MQTT)."""
        await self._active().close()

    def _active(self) -> Conversation:
        if self._hub is None:
            raise RuntimeError("the xiaozhi test server is not started")
        return self._hub.require_active()
