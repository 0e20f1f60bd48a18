"""`pibuddy openclaw-bridge`: MQTT clients reach an OpenClaw gateway through one WebSocket each.

Per (client id, role) the bridge holds one gateway WebSocket, opened when the client publishes
`announce` (see `topics`). Unlike the seed's bridge it forwards `connect.challenge`, so every client
signs its own nonce (current gateways require it), and it never lets the broker become a way to get
paired silently: every WebSocket carries `X-Forwarded-For: <bridge_forwarded_for>`, a non-loopback
address, so the gateway treats bridged clients as remote and each one needs an explicit approval. The
gateway must trust the bridge's address (`gateway.trustedProxies`); without that it answers HTTP 403,
which the bridge reports with that advice. Frames are capped at `bridge_max_frame_bytes` and, once a
session's `hello-ok` has been seen, at the gateway's `policy.maxPayload`; before it at the gateway's
pre-auth limit. An oversized request is answered `PAYLOAD_TOO_LARGE`.

Each (client id, role) has its own lane: its MQTT messages are handled in order by a task of their own,
so a client whose gateway WebSocket is slow to open (up to 10 s) holds up only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import aiomqtt

from pibuddy.config import Config
from pibuddy.drops import DropCounter
from pibuddy.errors import ConnectionLost
from pibuddy.netinfo import ipv4_address, primary_interface
from pibuddy.openclaw.connection import MAX_INCOMING_BYTES
from pibuddy.openclaw.errors import ErrorShape, FrameError, OpenClawError
from pibuddy.openclaw.frames import EventFrame, ResponseFrame, encode, parse_frame
from pibuddy.openclaw.handshake import HelloOk
from pibuddy.openclaw.topics import Kind, SessionTopics, bridge_filters, parse_topic
from pibuddy.openclaw.transport import WebSocketTransport
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)
_PRE_AUTH_MAX_BYTES: Final = 64 * 1024  # current gateways cap frames before hello-ok at 64 KiB
_OPEN_TIMEOUT_SECONDS: Final = 10.0
_CLOSE_GOING_AWAY: Final = 1001
_CLOSE_TRY_AGAIN_LATER: Final = 1013
_CLOSE_INTERNAL_ERROR: Final = 1011
_LANE_DEPTH: Final = 64  # messages one client may have waiting (e.g. while its WebSocket opens); more are dropped


class BridgeConfigError(OpenClawError):
    """The bridge cannot run as configured (no usable forwarded-for address)."""


def forwarded_for(configured: str | None) -> str:
    """The non-loopback address to report; the LAN address when none is configured."""
    if configured is None:
        interface = primary_interface()
        configured = ipv4_address(interface.name) if interface is not None else None
        if configured is None:
            raise BridgeConfigError("openclaw.bridge_forwarded_for is empty and this host has no LAN address")
    try:
        address = ipaddress.ip_address(configured)
    except ValueError:
        raise BridgeConfigError(f"openclaw.bridge_forwarded_for: {configured!r} is not an IP address") from None
    if address.is_loopback or address.is_unspecified:
        raise BridgeConfigError("openclaw.bridge_forwarded_for must not be a loopback address: the gateway "
                                "would treat bridged clients as local and pair them silently")
    return str(address)


@dataclass(eq=False)
class _Session:
    """One client's gateway WebSocket and the task pumping its frames to MQTT."""

    topics: SessionTopics
    link: WebSocketTransport
    max_payload: int
    pump: asyncio.Task[None] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass(eq=False)
class _Lane:
    """One client's (and role's) MQTT messages waiting to be handled in order by `worker`."""

    inbox: asyncio.Queue[tuple[SessionTopics, Kind, bytes]] = field(
        default_factory=lambda: asyncio.Queue(_LANE_DEPTH))
    worker: asyncio.Task[None] | None = None


class OpenClawBridge(Service):
    """The bridge as a supervised service. Args: config (openclaw.mqtt_*, gateway_url, bridge_*)."""

    name = "openclaw-bridge"

    def __init__(self, config: Config) -> None:
        cfg = config.openclaw
        self._cfg = cfg
        self._prefix = cfg.mqtt_topic_prefix
        self._max_frame = cfg.bridge_max_frame_bytes
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._lane_drops = DropCounter("MQTT messages from OpenClaw clients (their lane is full)", _LOGGER)
        self._opening = 0
        self._client: aiomqtt.Client | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._forwarded_for = ""

    async def start(self) -> None:
        self._forwarded_for = forwarded_for(self._cfg.bridge_forwarded_for)
        password = self._cfg.mqtt_password.get_secret_value() if self._cfg.mqtt_password else None
        client = aiomqtt.Client(self._cfg.mqtt_host, self._cfg.mqtt_port, username=self._cfg.mqtt_username,
                                password=password, identifier=f"pibuddy-openclaw-bridge-{uuid.uuid4().hex[:8]}",
                                clean_session=True, timeout=_OPEN_TIMEOUT_SECONDS)
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(client)
            await client.subscribe([(topic, 1) for topic in bridge_filters(self._prefix)])
        except aiomqtt.MqttError as exc:
            await stack.aclose()
            raise ConnectionLost(f"MQTT broker {self._cfg.mqtt_host}:{self._cfg.mqtt_port}: {exc}") from exc
        self._client, self._stack = client, stack
        _LOGGER.info("OpenClaw bridge: %s:%d %s/# <-> %s (clients reported as %s)", self._cfg.mqtt_host,
                     self._cfg.mqtt_port, self._prefix, self._cfg.gateway_url, self._forwarded_for)

    async def serve(self) -> None:
        assert self._client is not None, "start() first"
        try:
            async for message in self._client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                self._dispatch(str(message.topic), payload)
        except aiomqtt.MqttError as exc:
            raise ConnectionLost(f"OpenClaw bridge lost the MQTT broker: {exc}") from exc
        raise ConnectionLost("OpenClaw bridge: the MQTT message stream ended")

    async def stop(self) -> None:
        workers = [lane.worker for lane in self._lanes.values() if lane.worker is not None]
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for session in list(self._sessions.values()):
            await self._end(session, notify=(_CLOSE_GOING_AWAY, "bridge stopping"))
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()

    def health(self) -> Health:
        return Health(self._client is not None, f"{len(self._sessions)} gateway sessions")

    # --- MQTT -> gateway ---------------------------------------------------------------------------

    def _dispatch(self, topic: str, payload: bytes) -> None:
        """Queue a message behind the earlier ones of its client and role, in that lane's own task."""
        parsed = parse_topic(self._prefix, topic)
        if parsed is None:
            _LOGGER.warning("OpenClaw bridge: dropping a message on unexpected topic %r", topic[:120])
            return
        topics, kind = parsed
        key = (topics.client_id, topics.role)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
            lane.worker = asyncio.create_task(self._run_lane(key, lane), name=f"openclaw-bridge lane {key}")
        try:
            lane.inbox.put_nowait((topics, kind, payload))
        except asyncio.QueueFull:
            self._lane_drops.count(f"{key[0]}/{key[1]} has {_LANE_DEPTH} waiting")

    async def _run_lane(self, key: tuple[str, str], lane: _Lane) -> None:
        """Handle the lane's messages until it is empty, then retire it (the next message starts a new one)."""
        try:
            while not lane.inbox.empty():
                topics, kind, payload = lane.inbox.get_nowait()
                try:
                    await self._on_message(topics, kind, payload)
                except Exception:
                    _LOGGER.exception("OpenClaw bridge: handling %s from %s/%s failed", kind, *key)
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _on_message(self, topics: SessionTopics, kind: Kind, payload: bytes) -> None:
        key = (topics.client_id, topics.role)
        if kind is Kind.ANNOUNCE:
            await self._open(topics)
        elif kind is Kind.CLOSE:
            session = self._sessions.get(key)
            if session is not None:
                _LOGGER.info("OpenClaw bridge: %s/%s closed its session", *key)
                await self._end(session, notify=None)
        elif kind is Kind.REQ:
            await self._forward_request(topics, payload)

    async def _open(self, topics: SessionTopics) -> None:
        key = (topics.client_id, topics.role)
        if (old := self._sessions.get(key)) is not None:
            await self._end(old, notify=None)
        if len(self._sessions) + self._opening >= self._cfg.bridge_max_sessions:
            _LOGGER.warning("OpenClaw bridge: refusing %s/%s: %d sessions open, %d opening", *key,
                            len(self._sessions), self._opening)
            await self._publish(topics, Kind.CLOSED, _closed(_CLOSE_TRY_AGAIN_LATER, "bridge session limit"))
            return
        self._opening += 1
        try:
            link = await WebSocketTransport.open(self._cfg.gateway_url, open_timeout=_OPEN_TIMEOUT_SECONDS,
                                                 max_size=MAX_INCOMING_BYTES,
                                                 headers={"X-Forwarded-For": self._forwarded_for})
        except ConnectionLost as exc:
            reason = str(exc)
            if "HTTP 403" in reason:
                reason += " (the gateway must trust the bridge: add its address to gateway.trustedProxies)"
            _LOGGER.error("OpenClaw bridge: cannot open a gateway session for %s/%s: %s", *key, reason)
            await self._publish(topics, Kind.CLOSED, _closed(_CLOSE_INTERNAL_ERROR, reason))
            return
        finally:
            self._opening -= 1
        session = _Session(topics, link, min(self._max_frame, _PRE_AUTH_MAX_BYTES))
        session.pump = asyncio.create_task(self._pump(session), name=f"openclaw-bridge {key}")
        self._sessions[key] = session
        _LOGGER.info("OpenClaw bridge: session %s for %s/%s opened", session.id, *key)

    async def _forward_request(self, topics: SessionTopics, payload: bytes) -> None:
        session = self._sessions.get((topics.client_id, topics.role))
        if len(payload) > self._max_frame or (session is not None and len(payload) > session.max_payload):
            limit = session.max_payload if session is not None else self._max_frame
            await self._answer_error(topics, payload, "PAYLOAD_TOO_LARGE",
                                     f"request of {len(payload)} bytes exceeds the {limit}-byte limit")
            return
        if session is None:
            await self._answer_error(topics, payload, "BRIDGE_ERROR",
                                     "no gateway session for this client: publish to announce first")
            return
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            _LOGGER.warning("OpenClaw bridge: dropping a non-UTF-8 request from %s", topics.client_id)
            return
        try:
            await session.link.send(text)
        except ConnectionLost as exc:
            _LOGGER.info("OpenClaw bridge: %s", exc)  # the pump sees the close and tells the client

    async def _answer_error(self, topics: SessionTopics, payload: bytes, code: str, message: str) -> None:
        """Answer a request we will not forward; a request without a readable id is only logged."""
        request_id = _request_id(payload)
        _LOGGER.warning("OpenClaw bridge: %s from %s/%s: %s", code, topics.client_id, topics.role, message)
        if request_id is not None:
            response = ResponseFrame(request_id, False, error=ErrorShape(code, message, {}))
            await self._publish(topics, Kind.RES, encode(response).encode("utf-8"))

    # --- gateway -> MQTT ---------------------------------------------------------------------------

    async def _pump(self, session: _Session) -> None:
        try:
            while True:
                text = await session.link.receive()
                await self._relay(session, text)
        except ConnectionLost as exc:
            code = session.link.close_code or _CLOSE_INTERNAL_ERROR
            _LOGGER.info("OpenClaw bridge: session %s ended: %s", session.id, exc)
            if self._sessions.get((session.topics.client_id, session.topics.role)) is session:
                del self._sessions[(session.topics.client_id, session.topics.role)]
                await self._publish(session.topics, Kind.CLOSED, _closed(code, str(exc)))

    async def _relay(self, session: _Session, text: str) -> None:
        data = text.encode("utf-8")
        try:
            frame = parse_frame(data, max_bytes=self._max_frame)
        except FrameError as exc:
            if len(data) > self._max_frame and (request_id := _response_id(data)) is not None:
                response = ResponseFrame(request_id, False, error=ErrorShape("PAYLOAD_TOO_LARGE", str(exc), {}))
                await self._publish(session.topics, Kind.RES, encode(response).encode("utf-8"))
            _LOGGER.warning("OpenClaw bridge: dropping a gateway frame for %s: %s", session.topics.client_id, exc)
            return
        if isinstance(frame, ResponseFrame):
            if frame.ok and isinstance(frame.payload, dict) and frame.payload.get("type") == "hello-ok":
                with contextlib.suppress(FrameError):
                    session.max_payload = min(self._max_frame, HelloOk.from_payload(frame.payload).max_payload)
            await self._publish(session.topics, Kind.RES, data)
        elif isinstance(frame, EventFrame):
            await self._publish(session.topics, Kind.EVT, data)

    async def _publish(self, topics: SessionTopics, kind: Kind, payload: bytes) -> None:
        if self._client is None:
            return
        try:
            await self._client.publish(topics.topic(kind), payload, qos=1)
        except aiomqtt.MqttError as exc:
            _LOGGER.warning("OpenClaw bridge: cannot publish to %s: %s", topics.topic(kind), exc)

    async def _end(self, session: _Session, *, notify: tuple[int, str] | None) -> None:
        key = (session.topics.client_id, session.topics.role)
        if self._sessions.get(key) is session:
            del self._sessions[key]
        if session.pump is not None:
            session.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await session.pump
        await session.link.close()
        if notify is not None:
            await self._publish(session.topics, Kind.CLOSED, _closed(*notify))


def _closed(code: int, reason: str) -> bytes:
    return json.dumps({"code": code, "reason": reason[:300]}).encode("utf-8")


def _request_id(payload: bytes) -> str | None:
    return _string_field(payload, "id", "req")


def _response_id(payload: bytes) -> str | None:
    return _string_field(payload, "id", "res")


def _string_field(payload: bytes, name: str, frame_type: str) -> str | None:
    try:
        data: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("type") != frame_type or not isinstance(data.get(name), str):
        return None
    return str(data[name])
