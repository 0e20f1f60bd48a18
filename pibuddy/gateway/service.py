"""The gateway as a supervised service of `pibuddy run`: MQTT, UDP relay, bridge, API, local OTA, mDNS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from pibuddy import netinfo
from pibuddy.config import Config, GatewayConfig
from pibuddy.control.model import ControlError, GatewayDevice
from pibuddy.events import Command, CommandName, EventBus, GatewayDevicesChanged
from pibuddy.gateway import admission as admission_rules
from pibuddy.gateway.admission import Admission
from pibuddy.gateway.api import ManagementApi
from pibuddy.gateway.bridge import ChatServerPool
from pibuddy.gateway.credentials import (
    CredentialRejected,
    DeviceIdentity,
    generate_signature_key,
    key_weakness,
    validate_client,
)
from pibuddy.gateway.device import DeviceSession, GatewayContext
from pibuddy.gateway.mcp_cache import HostTools
from pibuddy.gateway.mqtt_codec import ConnackCode, Connect
from pibuddy.gateway.mqtt_server import DeviceConnection, MqttServer
from pibuddy.gateway.ota_server import LocalOta, MdnsAdvertiser, MdnsFailed
from pibuddy.gateway.registry import DeviceRegistry
from pibuddy.gateway.udp_relay import UdpRelay
from pibuddy.gateway.webapp import WebApp
from pibuddy.ports import binding
from pibuddy.statedir import StateDir
from pibuddy.supervisor import Health, Service
from pibuddy.tools.registry import ToolRegistry

_LOGGER = logging.getLogger(__name__)
SIGNATURE_KEY_FILE: Final = "gateway_signature_key"
_MCP_TIMEOUT_SECONDS: Final = 10.0  # the reference gateway's per-request discovery timeout (§5.3)
_WILDCARDS: Final = ("", "0.0.0.0")
_DRAIN_SECONDS: Final = 2.0


def signature_key(config: GatewayConfig, state_dir: StateDir) -> str:
    """The configured key, else the one kept in the state dir, else a new one saved there (mode 600)."""
    if config.signature_key is not None and config.signature_key.get_secret_value():
        return config.signature_key.get_secret_value()
    stored = (state_dir.read_text(SIGNATURE_KEY_FILE) or "").strip()
    if stored:
        return stored
    key = generate_signature_key()
    path = state_dir.write_text(SIGNATURE_KEY_FILE, key + "\n")
    _LOGGER.info("gateway: generated a signature key in %s", path)
    return key


def advertised_host(config: GatewayConfig) -> str:
    """Where devices are told to connect: public_ip, else the bind address, else the LAN address."""
    if config.public_ip:
        return config.public_ip
    if config.host not in _WILDCARDS:
        return config.host
    interface = netinfo.primary_interface()
    address = netinfo.ipv4_address(interface.name) if interface else None
    return address or "127.0.0.1"


class GatewayService(Service):
    """Args:
    config: the gateway section.
    state_dir: where a generated signature key is kept.
    registry: PiBuddy's tools, offered to devices when `config.host_tools` is on.
    mdns_interfaces: limit mDNS to these addresses (tests: ["127.0.0.1"]); None means all.
    bus: where a button's `open_pairing` command comes from, and where each device's turn stages
        (`TurnProgress`, microphone = its MAC, for the history) and `GatewayDevicesChanged` go; None: neither.
    """

    name = "gateway"

    def __init__(self, config: GatewayConfig, *, state_dir: StateDir, registry: ToolRegistry | None = None,
                 mdns_interfaces: list[str] | None = None, bus: EventBus | None = None) -> None:
        self.config = config
        self._bus = bus
        self._state_dir = state_dir
        self._registry = registry
        self._mdns_interfaces = mdns_interfaces
        self.sessions: dict[str, DeviceSession] = {}
        self.relay: UdpRelay | None = None
        self.mqtt: MqttServer | None = None
        self.pool = ChatServerPool(list(config.chat_servers), cooldown=config.upstream_cooldown)
        self.api: WebApp | None = None
        self.ota: WebApp | None = None
        self.advertised_host = ""
        self.admission: Admission
        self.hello_deadlines: dict[DeviceSession, asyncio.TimerHandle] = {}
        """Sessions of devices not known yet (open admission), closed unless they say hello in time."""
        """Which devices are served (set by start())."""
        self.mdns: MdnsAdvertiser | None = None
        """The mDNS advertisement, while it runs."""
        self.device_registry: DeviceRegistry | None = None
        """Where this gateway's devices are written for the others (gateway.registry_url), while it runs."""

    @classmethod
    def from_config(cls, config: Config, registry: ToolRegistry, bus: EventBus | None = None) -> GatewayService:
        """The service `pibuddy run` starts; `registry` is PiBuddy's one tool registry."""
        return cls(config.gateway, state_dir=StateDir(config.device.resolved_state_dir),
                   registry=registry if config.gateway.host_tools else None, bus=bus)

    async def serve(self) -> None:
        """Open pairing when a button asks (`open_pairing` on the bus); otherwise the servers run by themselves."""
        if self._bus is None:
            await super().serve()
            return
        with self._bus.subscribe() as events:
            async for event in events:
                if isinstance(event, Command) and event.name == CommandName.OPEN_PAIRING:
                    self.admission.open_pairing(self.config.pairing_minutes * 60)

    async def start(self) -> None:
        config = self.config
        key = signature_key(config, self._state_dir)
        self.advertised_host = advertised_host(config)
        self.relay = UdpRelay(bind_host=config.host, port=config.udp_port, advertised_host=self.advertised_host)
        with binding(config.udp_port, "udp", "gateway.udp_port"):
            await self.relay.start()
        context = GatewayContext(
            relay=self.relay, pool=self.pool, advertised_host=self.advertised_host,
            server_secret=config.server_secret.get_secret_value() if config.server_secret else None,
            host_tools=HostTools(self._registry) if self._registry is not None else None,
            max_tools=config.max_tools_count, mcp_timeout=_MCP_TIMEOUT_SECONDS,
            on_turn=self._bus.publish if self._bus is not None else None,
            on_conversation=self._devices_changed,
        )

        admission = self.admission = Admission(self._state_dir, mode=config.admission,
                                               pairing_seconds=config.pairing_minutes * 60)

        def authenticate(connect: Connect, peer_ip: str) -> DeviceIdentity:
            identity = validate_client(connect.client_id, connect.username, connect.password, peer_ip, key=key,
                                       allow_two_part=config.allow_two_part_client_ids)
            if not admission.admit(identity.mac):
                raise CredentialRejected(f"device {identity.mac} is not paired (pairing is closed)",
                                         hint=ConnackCode.NOT_AUTHORIZED)
            return identity

        def on_connect(connection: DeviceConnection) -> DeviceSession:
            session = DeviceSession(connection, context, on_closed=self._forget, on_greeted=self._greeted)
            self.sessions[connection.identity.client_id] = session
            if not admission.known(connection.identity.mac):  # open admission: it must say hello to stay
                self.hello_deadlines[session] = asyncio.get_running_loop().call_later(
                    admission_rules.NO_HELLO_SECONDS, self._close_unproven, session)
            if self.device_registry is not None:
                self.device_registry.connected(connection.identity.client_id)
            self._devices_changed()
            return session

        self.mqtt = MqttServer(host=config.host, port=config.mqtt_port, authenticate=authenticate,
                               on_connect=on_connect, max_connections=config.max_connections,
                               max_per_address=config.max_connections_per_address)
        with binding(config.mqtt_port, "tcp", "gateway.mqtt_port"):
            await self.mqtt.start()
        await self._start_http(key, self.mqtt.port, self.relay.port)
        if config.registry_url is not None and self.api is not None:
            self.device_registry = DeviceRegistry(config.registry_url.get_secret_value(),
                                                  api_url=f"http://{self.advertised_host}:{self.api.port}")
            await self.device_registry.start()
            for client_id in self.sessions:
                self.device_registry.connected(client_id)
        if not config.chat_servers:
            _LOGGER.warning("gateway.chat_servers is empty: devices can connect, but their hello will fail")
        _LOGGER.info("gateway up: MQTT %s:%d, UDP %d, API %d, OTA http://%s:%d/xiaozhi/ota/", self.advertised_host,
                     self.mqtt.port, self.relay.port, self.api.port if self.api else 0, self.advertised_host,
                     self.ota.port if self.ota else 0)

    async def _start_http(self, key: str, mqtt_port: int, udp_port: int) -> None:
        config = self.config
        weakness = key_weakness(key)
        if weakness is None:
            locate = self._locate_elsewhere if config.registry_url is not None else None
            api = ManagementApi(self.sessions, self.pool, key=key, admission=self.admission,
                                pairing_seconds=config.pairing_minutes * 60, locate=locate)
            self.api = WebApp(api.app(), "management API")
            with binding(config.api_port, "tcp", "gateway.api_port"):
                await self.api.start(config.host, config.api_port)
        else:  # as the reference: the API lets anyone with the key call device tools (§9.1)
            _LOGGER.error("gateway: management API not started: the signature key is weak (%s)", weakness)
        local_ota = LocalOta(key=key, mqtt_endpoint=f"{self.advertised_host}:{mqtt_port}", admit=self.admission.admit)
        self.ota = WebApp(local_ota.app(), "local OTA")
        with binding(config.ota_port, "tcp", "gateway.ota_port"):
            await self.ota.start(config.host, config.ota_port)
        if config.mdns:
            try:
                self.mdns = MdnsAdvertiser(address=self.advertised_host, ota_port=self.ota.port,
                                           mqtt_port=mqtt_port, udp_port=udp_port, interfaces=self._mdns_interfaces)
                await self.mdns.start()
            except MdnsFailed as exc:
                _LOGGER.warning("gateway: no mDNS advertisement (%s); devices need the OTA URL by hand", exc)
                self.mdns = None

    async def stop(self) -> None:
        sessions = list(self.sessions.values())
        if self.device_registry is not None:
            await self.device_registry.stop()
            self.device_registry = None
        for part in (self.mdns, self.ota, self.api, self.mqtt):
            if part is not None:
                with contextlib.suppress(OSError):
                    await part.stop()
        self.mdns = self.ota = self.api = self.mqtt = None
        with contextlib.suppress(TimeoutError):  # the chat servers get their close frames
            await asyncio.wait_for(asyncio.gather(*(s.drain() for s in sessions)), _DRAIN_SECONDS)
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None

    def _greeted(self, session: DeviceSession) -> None:
        """A hello: the device has proved itself (open admission remembers it)."""
        self.admission.remember(session.connection.identity.mac)
        self._cancel_hello_deadline(session)

    def _cancel_hello_deadline(self, session: DeviceSession) -> None:
        deadline = self.hello_deadlines.pop(session, None)
        if deadline is not None:  # a closed or greeted session is not kept alive by its timer
            deadline.cancel()

    def _close_unproven(self, session: DeviceSession) -> None:
        self.hello_deadlines.pop(session, None)
        if not session.connection.closed and not self.admission.known(session.connection.identity.mac):
            _LOGGER.info("gateway: device %s said no hello in %.0f s and is not known; disconnected",
                         session.client_id, admission_rules.NO_HELLO_SECONDS)
            session.connection.close()

    def _forget(self, session: DeviceSession) -> None:
        self._cancel_hello_deadline(session)
        if self.sessions.get(session.client_id) is session:  # a takeover may have put a newer one there
            del self.sessions[session.client_id]
            if self.device_registry is not None:
                self.device_registry.disconnected(session.client_id)
            self._devices_changed()

    def _devices_changed(self) -> None:
        """The device list changed: `pibuddy status`, the page and Home Assistant follow at once (no polling)."""
        if self._bus is not None:
            self._bus.publish(GatewayDevicesChanged())

    async def _locate_elsewhere(self, client_id: str) -> str | None:
        """The management API of the other gateway holding `client_id` (registry), None if none does."""
        registry = self.device_registry
        if registry is None:
            return None
        found = await registry.locate(client_id)
        return None if found == registry.api_url else found

    def devices(self) -> list[GatewayDevice]:
        """The connected devices, for the control layer (`pibuddy status`, the web page)."""
        return [GatewayDevice(s.client_id, s.connection.identity.mac, s.connection.peer_ip, s.bridge is not None)
                for s in self.sessions.values()]

    def alert(self, device: str, text: str) -> str:
        """Show `text` on the device whose MAC or client id is `device` (see `DeviceSession.alert`); its MAC."""
        wanted = device.lower()
        for session in self.sessions.values():
            if wanted in (session.connection.identity.mac, session.client_id.lower()):
                session.alert(text)
                return session.connection.identity.mac
        raise ControlError(f"no gateway device {device} is connected (see `pibuddy status`)")

    def health(self) -> Health:
        bridged = sum(1 for s in self.sessions.values() if s.bridge is not None)
        return Health(True, f"{len(self.sessions)} devices, {bridged} in conversation")
