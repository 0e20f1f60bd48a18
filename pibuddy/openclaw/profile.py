"""Who PiBuddy is to a gateway: client metadata per role, the token to present, and the link to use.

Client ids and modes come from the gateway's closed lists: the node is `node-host`/`node` on platform
`linux` (family `Linux`), like OpenClaw's own headless node host; the operator session is `cli`/`cli`, as
OpenClaw's Windows tray does. These never change for an identity: the gateway would ask for approval again.
"""

from __future__ import annotations

from typing import Final

from pibuddy import __version__
from pibuddy.config import Config, OpenClawTransport
from pibuddy.openclaw.connection import MAX_INCOMING_BYTES, GatewayConnection
from pibuddy.openclaw.handshake import ClientInfo, SessionSpec
from pibuddy.openclaw.identity import DeviceIdentity, TokenStore
from pibuddy.openclaw.transport import FrameTransport, MqttSettings, MqttTransport, TransportFactory, WebSocketTransport

NODE_ROLE: Final = "node"
OPERATOR_ROLE: Final = "operator"
_CLIENTS: Final = {NODE_ROLE: ("node-host", "node"), OPERATOR_ROLE: ("cli", "cli")}
OPERATOR_SCOPES: Final = ("operator.read", "operator.write")


def display_name(config: Config) -> str:
    return config.openclaw.display_name or config.device.name


def client_info(config: Config, identity: DeviceIdentity, role: str) -> ClientInfo:
    client_id, mode = _CLIENTS[role]
    return ClientInfo(id=client_id, mode=mode, version=__version__, display_name=display_name(config),
                      instance_id=identity.device_id[:16])


def mqtt_client_id(config: Config, identity: DeviceIdentity) -> str:
    return config.openclaw.mqtt_client_id or identity.device_id[:16]


def mqtt_settings(config: Config) -> MqttSettings:
    cfg = config.openclaw
    return MqttSettings(cfg.mqtt_host, cfg.mqtt_port, cfg.mqtt_topic_prefix, cfg.mqtt_username,
                        cfg.mqtt_password.get_secret_value() if cfg.mqtt_password else None)


def transport_factory(config: Config, identity: DeviceIdentity, role: str) -> TransportFactory:
    """Opens the configured link for one session of `role`."""
    cfg = config.openclaw

    async def open_link() -> FrameTransport:
        if cfg.transport is OpenClawTransport.MQTT:
            return await MqttTransport.open(mqtt_settings(config), client_id=mqtt_client_id(config, identity),
                                            role=role, open_timeout=cfg.connect_timeout)
        return await WebSocketTransport.open(cfg.gateway_url, open_timeout=cfg.connect_timeout,
                                             max_size=MAX_INCOMING_BYTES)

    return open_link


def shared_token(config: Config) -> str | None:
    return config.openclaw.token.get_secret_value() if config.openclaw.token else None


def open_session(config: Config, identity: DeviceIdentity, tokens: TokenStore, spec: SessionSpec) -> GatewayConnection:
    """A session presenting the stored device token for the role if there is one, else the shared token."""
    token = tokens.get(spec.role) or shared_token(config)
    return GatewayConnection(transport_factory(config, identity, spec.role), identity=identity,
                             client=client_info(config, identity, spec.role), spec=spec, token=token,
                             timeout=config.openclaw.connect_timeout, locale=config.device.language)
