"""PiBuddy's OpenClaw node session: serves `node.invoke` requests and reports PiBuddy's events.

Invocations run concurrently (at most `_MAX_INVOKES_IN_FLIGHT`; beyond that the gateway gets a BUSY
error at once), each within its `timeoutMs`, and can be cancelled by `node.invoke.cancel`. Wake and state
changes from the event bus go out as `node.event` (`pibuddy.wake`, `pibuddy.state`); a gateway that does
not handle them answers `handled:false`, which is fine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Final

from pibuddy.config import Config
from pibuddy.errors import ConnectionLost
from pibuddy.events import EventBus, StateChanged, Subscription, WakeDetected
from pibuddy.openclaw.commands import NodeCommands
from pibuddy.openclaw.connection import FrameTooLarge, GatewayConnection, RequestTimedOut
from pibuddy.openclaw.errors import FrameError, RequestFailed
from pibuddy.openclaw.frames import EventFrame
from pibuddy.openclaw.handshake import SessionSpec
from pibuddy.openclaw.invoke import (
    CANCEL_EVENT,
    INVOKE_EVENT,
    RESULT_METHOD,
    InvokeRequest,
    cancel_target,
    result_error,
    run_invoke,
)
from pibuddy.openclaw.profile import NODE_ROLE
from pibuddy.openclaw.session_service import GatewaySessionService
from pibuddy.openclaw.status import SessionState
from pibuddy.tools.registry import ToolRegistry

_LOGGER = logging.getLogger(__name__)
_MAX_INVOKES_IN_FLIGHT: Final = 8
_CAPS: Final = ("device", "voice")
_PAIR_RESOLVED_EVENT: Final = "node.pair.resolved"
# The gateway answers node events with this while the node's commands await approval (2026.9.6).
_PAIRING_CHANGED: Final = "PAIRING_CHANGED"


class OpenClawNode(GatewaySessionService):
    """The `node` session. Args: config, bus (for `Say` and the events it reports), registry (tools)."""

    name = "openclaw-node"
    role = NODE_ROLE

    def __init__(self, config: Config, *, bus: EventBus, registry: ToolRegistry) -> None:
        super().__init__(config, bus=bus)
        self.commands = NodeCommands(bus=bus, registry=registry, display_name=self.guide.name)
        self._invokes: dict[str, asyncio.Task[None]] = {}

    def spec(self) -> SessionSpec:
        return SessionSpec(role=NODE_ROLE, caps=_CAPS, commands=self.commands.names)

    async def run_session(self, session: GatewayConnection) -> None:
        with self._bus.subscribe() as bus_events:  # before the probe, so no event of the session is missed
            await self._probe_approval(session)
            forwarder = asyncio.create_task(self._forward_bus_events(session, bus_events))
            try:
                async for event in session.events():
                    self._on_event(session, event)
            finally:
                forwarder.cancel()
                for task in list(self._invokes.values()):
                    task.cancel()
                await asyncio.gather(forwarder, *self._invokes.values(), return_exceptions=True)

    def _on_event(self, session: GatewayConnection, event: EventFrame) -> None:
        if event.event == INVOKE_EVENT:
            self._start_invoke(session, event.payload)
        elif event.event == CANCEL_EVENT:
            target = cancel_target(event.payload)
            task = self._invokes.get(target or "")
            if task is not None:
                _LOGGER.info("OpenClaw cancelled invoke %s", target)
                task.cancel()
        elif event.event == _PAIR_RESOLVED_EVENT:
            payload = event.payload if isinstance(event.payload, dict) else {}
            if payload.get("nodeId") == self.identity.device_id and payload.get("decision") == "approved":
                self.set_status(SessionState.CONNECTED, commands="approved")
                self.announce(self.guide.approved("the node's commands"))
        elif event.event == "shutdown":
            _LOGGER.info("OpenClaw gateway is shutting down: %s", event.payload)

    def _start_invoke(self, session: GatewayConnection, payload: object) -> None:
        try:
            request = InvokeRequest.from_payload(payload)
        except FrameError as exc:
            _LOGGER.warning("dropping a malformed node.invoke.request: %s", exc)
            return
        if request.id in self._invokes:
            _LOGGER.warning("dropping a repeated node.invoke.request %s", request.id)
            return
        if len(self._invokes) >= _MAX_INVOKES_IN_FLIGHT:
            _LOGGER.warning("OpenClaw invoke %s (%s) refused: busy", request.id, request.command)
            busy = result_error(request, "BUSY", "PiBuddy is already running too many commands")
            self._invokes[request.id] = asyncio.create_task(self._send_result(session, request, busy))
            return
        _LOGGER.info("OpenClaw invokes %s", request.command)
        self._invokes[request.id] = asyncio.create_task(self._invoke(session, request))

    async def _invoke(self, session: GatewayConnection, request: InvokeRequest) -> None:
        await self._send_result(session, request, await run_invoke(request, self.commands))

    async def _send_result(self, session: GatewayConnection, request: InvokeRequest, result: dict[str, Any]) -> None:
        try:
            try:
                await session.request(RESULT_METHOD, result)
            except FrameTooLarge as exc:
                await session.request(RESULT_METHOD, result_error(request, "PAYLOAD_TOO_LARGE", str(exc)))
        except (RequestFailed, RequestTimedOut, ConnectionLost, FrameTooLarge) as exc:
            _LOGGER.warning("could not deliver the result of %s: %s", request.command, exc)
        finally:
            self._invokes.pop(request.id, None)

    async def _probe_approval(self, session: GatewayConnection) -> None:
        """Announce presence; the answer tells whether the node's commands still await approval."""
        try:
            await self._node_event(session, "node.presence.alive", {"trigger": "connect",
                                                                    "sentAtMs": int(time.time() * 1000)})
        except RequestFailed as exc:
            if exc.error.detail_code != _PAIRING_CHANGED:
                _LOGGER.info("OpenClaw presence event refused: %s", exc.error.message)
                return
            self.set_status(SessionState.WAITING_APPROVAL, commands="pending approval",
                            advice="openclaw nodes pending; openclaw nodes approve <requestId>")
            self.announce(self.guide.commands_pending(self.identity.device_id))
        except RequestTimedOut as exc:
            _LOGGER.info("OpenClaw presence event: %s", exc)

    async def _forward_bus_events(self, session: GatewayConnection, events: Subscription) -> None:
        async for event in events:
            if isinstance(event, WakeDetected):
                name, payload = "pibuddy.wake", {"wakeWord": event.wake_word}
            elif isinstance(event, StateChanged):
                name, payload = "pibuddy.state", {"state": str(event.new), "previous": str(event.old)}
            else:
                continue
            try:
                await self._node_event(session, name, payload)
            except (RequestFailed, RequestTimedOut) as exc:
                _LOGGER.debug("OpenClaw did not take %s: %s", name, exc)

    @staticmethod
    async def _node_event(session: GatewayConnection, name: str, payload: dict[str, Any]) -> Any:
        # payloadJSON (a string) is what every gateway version accepts; never send it as null.
        return await session.request("node.event", {"event": name, "payloadJSON": json.dumps(payload)})
