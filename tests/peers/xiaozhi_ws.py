"""xiaozhi-server's WebSocket endpoint (docs/protocol.md §6, §8): direct devices and the gateway leg."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import WSMsgType, web

from .xiaozhi_conversation import Conversation, SessionHub, hello_fields, server_hello
from .xiaozhi_record import RecordedRequest, ServerRecord
from .xiaozhi_wire import Framing, WireError, frame_downlink, parse_uplink, verify_ws_auth_token

_LOG = logging.getLogger("tests.peers.xiaozhi")
_MAX_WS_MESSAGE: Final = 1 << 20
_CLOSE_TIMEOUT: Final = 2.0
_NOTICE_NO_DEVICE: Final = "端口正常，如需测试连接，请使用test_page.html"
_AUTH_FAILED: Final = "认证失败"
_TOKEN_MAX_AGE: Final = 30 * 24 * 3600
_GATEWAY_SUFFIX: Final = "?from=mqtt_gateway"
# The gateway signs with this when the device's client id has no uuid part (§8.1).
_GATEWAY_DEFAULT_CLIENT_ID: Final = "default-client-id"


@dataclass(frozen=True, slots=True)
class WsAuth:
    """A fixed bearer token (when non-empty), else §6.2 HMAC tokens when ``auth_key`` is set, else none."""

    token: str
    auth_key: str | None

    def accepts(self, header: str, *, client_id: str, device_id: str) -> bool:
        if not self.token and self.auth_key is None:
            return True
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token:
            return False
        if self.token:
            return token == self.token
        assert self.auth_key is not None
        return verify_ws_auth_token(
            self.auth_key, token, client_id=client_id, device_id=device_id, now=time.time(), max_age=_TOKEN_MAX_AGE
        )


class WsChannel:
    """Sends on one WebSocket; a lock keeps the reply task and test calls from interleaving."""

    def __init__(self, ws: web.WebSocketResponse, framing: Framing, record: ServerRecord) -> None:
        self._ws = ws
        self._framing = framing
        self._record = record
        self._lock = asyncio.Lock()

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_text(json.dumps(message))

    async def send_text(self, text: str) -> None:
        async with self._lock:
            await self._ws.send_str(text)

    async def send_audio(self, opus: bytes, sentence_seq: int) -> None:
        frame = frame_downlink(self._framing, opus, timestamp=int(time.time() * 1000), sequence=sentence_seq)
        await self.send_raw_binary(frame)
        self._record.downlink_frames_sent += 1

    async def send_raw_binary(self, data: bytes) -> None:
        async with self._lock:
            await self._ws.send_bytes(data)

    async def close(self) -> None:
        await self._ws.close()


class WebSocketEndpoint:
    """``GET /xiaozhi/v1/``: handshake checks, then one session per device hello."""

    def __init__(self, record: ServerRecord, hub: SessionHub, auth: WsAuth, *, heartbeat: float | None) -> None:
        self._record = record
        self._hub = hub
        self._auth = auth
        self._heartbeat = heartbeat
        self._open: set[web.WebSocketResponse] = set()

    async def close_all(self) -> None:
        """Close every open WebSocket (1001 going away), so the HTTP server can stop promptly."""
        await asyncio.gather(*(ws.close(code=1001) for ws in list(self._open)), return_exceptions=True)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        self._record.ws_requests.append(RecordedRequest(request.method, request.path_qs, dict(request.headers), None))
        ws = web.WebSocketResponse(max_msg_size=_MAX_WS_MESSAGE, heartbeat=self._heartbeat, timeout=_CLOSE_TIMEOUT)
        await ws.prepare(request)
        from_gateway = request.path_qs.endswith(_GATEWAY_SUFFIX)
        framing = self._check_handshake(request, from_gateway=from_gateway)
        if isinstance(framing, _Refusal):
            self._record.note_bad_input(f"ws handshake refused: {framing.reason}")
            await ws.send_str(framing.notice)
            await ws.close()
            return ws
        connection = _WsConnection(ws, WsChannel(ws, framing, self._record), framing, self._record, self._hub)
        self._open.add(ws)
        try:
            await connection.run()
        finally:
            self._open.discard(ws)
            await self._hub.end(connection.conversation)
            self._record.disconnected.set()
        return ws

    def _check_handshake(self, request: web.Request, *, from_gateway: bool) -> Framing | _Refusal:
        headers = request.headers
        device_id = headers.get("Device-Id", "")
        client_id = headers.get("Client-Id", "")
        if not device_id:
            return _Refusal("no Device-Id header", _NOTICE_NO_DEVICE)
        # The firmware always sends Client-Id; the gateway only when the client id has a uuid part.
        if not client_id and not from_gateway:
            return _Refusal("no Client-Id header", _NOTICE_NO_DEVICE)
        try:
            framing = Framing.for_connection(headers.get("Protocol-Version", ""), from_gateway=from_gateway)
        except WireError as err:
            return _Refusal(str(err), _NOTICE_NO_DEVICE)
        signer = client_id or _GATEWAY_DEFAULT_CLIENT_ID
        if not self._auth.accepts(headers.get("Authorization", ""), client_id=signer, device_id=device_id):
            return _Refusal("authentication failed", _AUTH_FAILED)
        return framing


@dataclass(frozen=True, slots=True)
class _Refusal:
    """Why a handshake was refused, and the text the device gets before the close."""

    reason: str
    notice: str


class _WsConnection:
    """The receive loop of one accepted WebSocket."""

    def __init__(
        self, ws: web.WebSocketResponse, channel: WsChannel, framing: Framing, record: ServerRecord, hub: SessionHub
    ) -> None:
        self._ws = ws
        self._channel = channel
        self._framing = framing
        self._record = record
        self._hub = hub
        self.conversation: Conversation | None = None

    async def run(self) -> None:
        async for msg in self._ws:
            if msg.type is WSMsgType.TEXT:
                await self._on_text(msg.data)
            elif msg.type is WSMsgType.BINARY:
                self._on_binary(msg.data)
            elif msg.type is WSMsgType.ERROR:
                self._record.note_bad_input(f"ws error: {self._ws.exception()}")

    async def _on_text(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            self._record.note_bad_input(f"ws text is not JSON: {text[:100]!r}")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self._record.note_bad_input(f"ws message without a string type: {text[:100]!r}")
            return
        self._record.device_messages.append(message)
        if message["type"] == "hello":
            await self._on_hello(message)
        elif self.conversation is None:
            self._record.note_bad_input(f"ws {message['type']!r} message before hello")
        else:
            await self.conversation.on_message(message)

    async def _on_hello(self, hello: dict[str, Any]) -> None:
        if not self._hub.settings.answer_hello:
            self._record.hello_received.set()
            return
        await self._hub.end(self.conversation)
        audio_params, features = hello_fields(hello)
        session_id = str(uuid.uuid4())
        self.conversation = self._hub.open(session_id=session_id, channel=self._channel, features=features)
        await self.conversation.send_json(
            server_hello(self._hub.settings, session_id, version=1, transport="websocket", audio_params=audio_params)
        )
        self._record.hello_received.set()
        self.conversation.start()

    def _on_binary(self, data: bytes) -> None:
        if self.conversation is None:
            self._record.note_bad_input(f"ws audio of {len(data)} bytes before hello")
            return
        try:
            timestamp, opus = parse_uplink(self._framing, data)
        except WireError as err:
            self._record.note_bad_input(str(err))
            return
        self.conversation.on_audio(opus, timestamp)
