"""The OpenClaw node section."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, SecretStr

from pibuddy.config.base import (
    Port,
    Seconds,
    Section,
)


class OpenClawTransport(StrEnum):
    WS = "ws"
    MQTT = "mqtt"


class OpenClawConfig(Section):
    enabled: bool = False
    """Run PiBuddy as an OpenClaw node (commands: system.notify, device.info, pibuddy.tools.*)."""
    gateway_url: str = Field(default="ws://127.0.0.1:18789", pattern=r"^wss?://")
    """WebSocket URL of the OpenClaw gateway (ws:// or wss://), for the node and for the bridge."""
    token: SecretStr | None = None
    """The gateway's shared token (gateway.auth.token). Secret; or PIBUDDY_OPENCLAW_TOKEN."""
    transport: OpenClawTransport = OpenClawTransport.WS
    """ws: connect to gateway_url directly; mqtt: through an MQTT broker and a bridge (openclaw-bridge)."""
    display_name: str | None = None
    """Name shown in the gateway's node list; empty: device.name."""
    connect_timeout: Seconds = 10.0
    """Seconds to wait for the gateway's challenge and for hello-ok."""
    pairing_retry_seconds: Seconds = 10.0
    """Seconds between quiet reconnects while the gateway waits for approval."""
    mqtt_host: str = "127.0.0.1"
    """MQTT broker for the mqtt transport and the bridge."""
    mqtt_port: Port = 1883
    """TCP port of that broker."""
    mqtt_username: str | None = None
    """Broker user name; empty: anonymous."""
    mqtt_password: SecretStr | None = None
    """Broker password. Secret; or PIBUDDY_OPENCLAW_MQTT_PASSWORD."""
    mqtt_topic_prefix: str = Field(default="moltbot/gw", pattern=r"^[^+#]+[^/+#]$")
    """Topics are <prefix>/<client id>/<node|operator>/<req|res|evt|announce|close|closed>."""
    mqtt_client_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    """This node's client id in those topics; empty: the first 16 hex digits of its device id."""
    bridge_enabled: bool = False
    """Run the MQTT-to-gateway bridge as a service (also `pibuddy openclaw-bridge`)."""
    bridge_forwarded_for: str | None = None
    """Origin address the bridge reports for MQTT clients (X-Forwarded-For), never loopback, so the gateway
    treats them as remote and never pairs them silently; empty: this host's LAN address. The gateway must
    list the bridge's address in gateway.trustedProxies (e.g. ["127.0.0.1"])."""
    bridge_max_frame_bytes: Annotated[int, Field(ge=1024)] = 1048576
    """Largest frame in bytes the bridge relays either way; the gateway's maxPayload lowers it."""
    bridge_max_sessions: Annotated[int, Field(ge=1)] = 32
    """Most gateway WebSockets the bridge holds open (one per MQTT client and role)."""
    operator_enabled: bool = False
    """OpenClaw as the brain: send final transcripts to an agent (chat.send) and speak the reply. The
    operator role needs its own approval on the gateway."""
    operator_session_key: str | None = None
    """Chat session the transcripts go to; empty: the gateway's main session (agent:main:main)."""
    operator_reply_timeout: Seconds = 90.0
    """Seconds to wait for the agent's reply before saying it did not answer."""
