"""The lifecycle every OpenClaw session shares, as a supervised service: connect, wait out approvals
quietly, remember device tokens, report status, and hand the open session to the role's own loop.

A refused device token is forgotten and the shared token tried at once. While pairing is pending the
service retries every `pairing_retry_seconds` without crashing (so the supervisor's log stays quiet).
Any other refusal or a dropped link leaves `serve()` as `ConnectionLost` with a clear reason; the
supervisor restarts it with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod

from pibuddy.config import Config
from pibuddy.errors import ConnectionLost
from pibuddy.events import EventBus, Say
from pibuddy.openclaw.connection import GatewayConnection
from pibuddy.openclaw.errors import AuthRejected, GatewayRejected, PairingRequired
from pibuddy.openclaw.handshake import HelloOk, SessionSpec
from pibuddy.openclaw.identity import DeviceIdentity, TokenStore
from pibuddy.openclaw.pairing import Announcement, PairingGuide
from pibuddy.openclaw.profile import display_name, open_session, shared_token
from pibuddy.openclaw.status import SessionState, StatusFile
from pibuddy.statedir import StateDir
from pibuddy.supervisor import Health, Service

_LOGGER = logging.getLogger(__name__)


class GatewaySessionService(Service):
    """Base of the node and operator services. Subclasses give `spec()` and `run_session()`."""

    role: str

    def __init__(self, config: Config, *, bus: EventBus) -> None:
        self._config = config
        self._bus = bus
        self._state = StateDir(config.device.resolved_state_dir)
        self._status = StatusFile(self._state)
        self.guide = PairingGuide(self.role, display_name(config))
        self._identity: DeviceIdentity | None = None
        self._tokens: TokenStore | None = None
        self._health = Health(False, "not connected yet")
        self._session_fields: dict[str, object] = {}

    @property
    def identity(self) -> DeviceIdentity:
        if self._identity is None:
            raise RuntimeError("the service has not started")
        return self._identity

    async def start(self) -> None:
        self._identity = DeviceIdentity.load_or_create(self._state)
        self._tokens = TokenStore(self._state, self._identity.device_id)

    async def stop(self) -> None:
        self._health = Health(False, "stopped")

    def health(self) -> Health:
        return self._health

    @abstractmethod
    def spec(self) -> SessionSpec: ...

    @abstractmethod
    async def run_session(self, session: GatewayConnection) -> None:
        """Serve an open session until it ends (raise `ConnectionLost`)."""

    async def serve(self) -> None:
        assert self._tokens is not None, "start() first"
        tokens = self._tokens
        while True:
            used_device_token = tokens.get(self.role) is not None
            self._status.update(self.role, SessionState.CONNECTING, gateway=self._config.openclaw.gateway_url)
            try:
                async with open_session(self._config, self.identity, tokens, self.spec()) as session:
                    assert session.hello is not None
                    self._connected(session.hello, tokens)
                    await self.run_session(session)
            except PairingRequired as exc:
                self._waiting(exc)
                await asyncio.sleep(self._config.openclaw.pairing_retry_seconds)
            except AuthRejected as exc:
                if used_device_token and shared_token(self._config):
                    _LOGGER.warning("OpenClaw %s: the gateway refused the stored device token; trying the "
                                    "shared token", self.role)
                    tokens.forget(self.role)
                    continue
                raise self._failed(exc) from None
            except GatewayRejected as exc:
                raise self._failed(exc) from None
            except ConnectionLost as exc:
                self._health = Health(False, str(exc))
                self._status.update(self.role, SessionState.ERROR, lastError=str(exc))
                raise

    def announce(self, announcement: Announcement | None) -> None:
        if announcement is not None:
            _LOGGER.warning(announcement.log)
            self._bus.publish(Say(announcement.say))

    def _connected(self, hello: HelloOk, tokens: TokenStore) -> None:
        if hello.device_token:
            tokens.put(self.role, hello.device_token, hello.scopes)
        _LOGGER.info("OpenClaw %s connected to gateway %s (protocol %d, auth %s)", self.role,
                     hello.server_version, hello.protocol, hello.auth_method)
        self._health = Health(True, f"connected to OpenClaw {hello.server_version}")
        self._session_fields = {"gateway": self._config.openclaw.gateway_url, "serverVersion": hello.server_version,
                                "protocol": hello.protocol, "authMethod": hello.auth_method,
                                "scopes": list(hello.scopes)}
        self.set_status(SessionState.CONNECTED)
        self.announce(self.guide.approved(f"the {self.role} session"))

    def _waiting(self, exc: PairingRequired) -> None:
        self._health = Health(False, f"waiting for approval ({exc.request_id})")
        self._status.update(self.role, SessionState.WAITING_APPROVAL, pairingRequestId=exc.request_id,
                            pairingReason=exc.reason, advice=exc.advice)
        announcement = self.guide.device_pending(exc.request_id, exc.reason)
        if announcement is None:
            _LOGGER.debug("OpenClaw %s: still waiting for approval of %s", self.role, exc.request_id)
        self.announce(announcement)

    def _failed(self, exc: GatewayRejected) -> ConnectionLost:
        self._health = Health(False, str(exc))
        self._status.update(self.role, SessionState.ERROR, lastError=str(exc))
        return ConnectionLost(str(exc))

    def set_status(self, state: SessionState, **fields: object) -> None:
        """Record `state` for an open session, keeping what hello-ok said about it."""
        self._status.update(self.role, state, **self._session_fields, **fields)
