"""OpenClaw as PiBuddy's brain (optional): final transcripts go to an agent, the reply is spoken.

An operator session (scopes operator.read + operator.write) sends each `Transcript` from the event bus
with `chat.send` to the configured session (default: the gateway's main session) and waits for that run's
terminal `chat` event: `final` is spoken as is, `error`/`aborted` and a timeout become a short sentence.
One question at a time; transcripts arriving meanwhile wait in the bus subscription's bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from pibuddy.config import Config
from pibuddy.errors import ConnectionLost
from pibuddy.events import BRAIN_OPENCLAW, EventBus, Say, Transcript, TurnProgress, TurnStage
from pibuddy.openclaw.connection import GatewayConnection, RequestTimedOut
from pibuddy.openclaw.errors import RequestFailed
from pibuddy.openclaw.handshake import SessionSpec
from pibuddy.openclaw.operator import Operator, chat_outcome
from pibuddy.openclaw.profile import OPERATOR_ROLE, OPERATOR_SCOPES
from pibuddy.openclaw.session_service import GatewaySessionService

_LOGGER = logging.getLogger(__name__)
_MAX_SPOKEN_ERROR_CHARS: Final = 200


class OpenClawBrain(GatewaySessionService):
    """The `operator` session that answers transcripts. Args: config, bus."""

    name = "openclaw-operator"
    role = OPERATOR_ROLE

    def __init__(self, config: Config, *, bus: EventBus) -> None:
        super().__init__(config, bus=bus)
        self._runs: dict[str, asyncio.Future[tuple[str, str]]] = {}

    def spec(self) -> SessionSpec:
        return SessionSpec(role=OPERATOR_ROLE, scopes=OPERATOR_SCOPES)

    async def run_session(self, session: GatewayConnection) -> None:
        assert session.hello is not None
        session_key = self._config.openclaw.operator_session_key or session.hello.main_session_key
        operator = Operator(session)
        reader = asyncio.create_task(self._read_outcomes(session))
        try:
            with self._bus.subscribe() as bus_events:
                while True:
                    next_event = asyncio.create_task(bus_events.get())
                    await asyncio.wait({next_event, reader}, return_when=asyncio.FIRST_COMPLETED)
                    if reader.done():
                        next_event.cancel()
                        reader.result()  # raises why the session ended
                        raise ConnectionLost("the operator session ended")
                    event = next_event.result()
                    if isinstance(event, Transcript) and event.text.strip():
                        answer = await self._ask(operator, session_key, event.text.strip())
                        # The history's turn that handed the text over gets who answered and what (recorder).
                        self._bus.publish(TurnProgress(TurnStage.REPLY, BRAIN_OPENCLAW, answer))
                        self._bus.publish(Say(answer))
                        self._bus.publish(TurnProgress(TurnStage.END, BRAIN_OPENCLAW))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionLost):
                await reader

    async def _ask(self, operator: Operator, session_key: str, text: str) -> str:
        """The sentence to speak for `text`: the agent's reply, or why there is none."""
        try:
            run_id = await operator.chat_send(session_key, text)
        except (RequestFailed, RequestTimedOut) as exc:
            _LOGGER.warning("OpenClaw chat.send failed: %s", exc)
            return "OpenClaw did not take the question."
        outcome: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()
        self._runs[run_id] = outcome
        timeout = self._config.openclaw.operator_reply_timeout
        try:
            async with asyncio.timeout(timeout):
                state, reply = await outcome
        except TimeoutError:
            _LOGGER.warning("OpenClaw run %s gave no reply within %g s", run_id, timeout)
            return "OpenClaw did not answer in time."
        finally:
            self._runs.pop(run_id, None)
        if state == "final" and reply.strip():
            return reply.strip()
        _LOGGER.warning("OpenClaw run %s ended with %s: %s", run_id, state, reply)
        return f"OpenClaw could not answer: {reply.strip()[:_MAX_SPOKEN_ERROR_CHARS] or state}"

    async def _read_outcomes(self, session: GatewayConnection) -> None:
        try:
            async for event in session.events():
                for run_id, waiter in self._runs.items():
                    outcome = chat_outcome(event, run_id)
                    if outcome is not None and not waiter.done():
                        waiter.set_result(outcome)
        except ConnectionLost as exc:
            for waiter in self._runs.values():
                if not waiter.done():
                    waiter.set_exception(exc)
            raise
