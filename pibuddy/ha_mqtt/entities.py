"""PiBuddy's Home Assistant entities: their MQTT discovery configs, and their states from a control snapshot.

Pure: no broker, no event loop. Every entity has a state topic `<base>/<key>` (plain payloads; JSON only for
attributes and events), and the controllable ones a command topic `<base>/<key>/set`. Discovery configs go
to `<prefix>/<component>/<node id>/<key>/config`, retained, and name one device, so Home Assistant shows
"PiBuddy <name>" with its entities (entity ids follow: `number.pibuddy_kitchen_volume`).

The gateway's ESP32 devices are not devices of their own in Home Assistant: PiBuddy knows one only while it
is connected, so each would need a retained config that outlives it (a ghost device once it has left for
good), and PiBuddy has nothing to control on it from Home Assistant. The "gateway devices" sensor counts
them and lists each (MAC, address, in conversation) in its attributes, which is what an automation needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from pibuddy.control import AssistantState, Snapshot, TimerStatus

ONLINE: Final = "online"
OFFLINE: Final = "offline"
NONE_PAYLOAD: Final = "None"
"""What Home Assistant's MQTT sensor and number take as "unknown"."""
HA_STATE_MAX: Final = 255
"""Home Assistant refuses a state longer than this."""
ANNOUNCE_MAX: Final = 255
"""Home Assistant's text entity holds at most this many characters."""
WAKE_EVENT: Final = "wake_word"

STATE: Final = "state"
LAST_HEARD: Final = "last_heard"
LAST_REPLY: Final = "last_reply"
BRAIN: Final = "brain"
UPSTREAM: Final = "upstream"
VOLUME: Final = "volume"
MUTE: Final = "mute"
ANNOUNCE: Final = "announce"
WAKE: Final = "wake"
GATEWAY_DEVICES: Final = "gateway_devices"
TIMER: Final = "timer"
COMMANDS: Final = (VOLUME, MUTE, ANNOUNCE)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The one Home Assistant device that is this PiBuddy."""

    node_id: str
    """Unique per PiBuddy, [a-z0-9_]: `pibuddy_<device id without colons>`."""
    name: str
    sw_version: str
    model: str = "PiBuddy voice buddy"
    manufacturer: str = "PiBuddy"
    configuration_url: str | None = None

    @classmethod
    def for_buddy(cls, device_id: str, name: str, sw_version: str, *, configuration_url: str | None = None
                  ) -> DeviceInfo:
        """`device_id` is the buddy's MAC; `name` is device.name ("PiBuddy <name>" in Home Assistant)."""
        shown = name if name.lower().startswith("pibuddy") else f"PiBuddy {name}"
        return cls("pibuddy_" + device_id.replace(":", "").lower(), shown, sw_version,
                   configuration_url=configuration_url)

    def to_json(self) -> dict[str, Any]:
        device: dict[str, Any] = {"identifiers": [self.node_id], "name": self.name, "manufacturer": self.manufacturer,
                                  "model": self.model, "sw_version": self.sw_version}
        if self.configuration_url:
            device["configuration_url"] = self.configuration_url
        return device


@dataclass(frozen=True, slots=True)
class Topics:
    """Where everything goes: `base` for PiBuddy's states and commands, `prefix` for discovery."""

    base: str
    prefix: str = "homeassistant"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def ha_status(self) -> tuple[str, ...]:
        """Where Home Assistant's birth ("online") and last will ("offline") come: `<prefix>/status`, and
        Home Assistant's default `homeassistant/status` (its birth topic is a setting of its own)."""
        return tuple(dict.fromkeys((f"{self.prefix}/status", "homeassistant/status")))

    @property
    def command_filter(self) -> str:
        return f"{self.base}/+/set"

    def state(self, key: str) -> str:
        return f"{self.base}/{key}"

    def attributes(self, key: str) -> str:
        return f"{self.base}/{key}/attributes"

    def presence(self, key: str) -> str:
        return f"{self.base}/{key}/present"

    def command(self, key: str) -> str:
        return f"{self.base}/{key}/set"

    def command_key(self, topic: str) -> str | None:
        """The entity key of a command topic, or None when `topic` is not one of PiBuddy's commands."""
        head, _, key = topic.removesuffix("/set").rpartition("/")
        return key if topic.endswith("/set") and head == self.base and key in COMMANDS else None

    def discovery(self, component: str, node_id: str, key: str) -> str:
        return f"{self.prefix}/{component}/{node_id}/{key}/config"


@dataclass(frozen=True, slots=True)
class _Entity:
    component: str
    config: Mapping[str, Any]
    """What the discovery config says besides topics, ids, availability and device."""
    state: bool = True
    attributes: bool = False
    command: bool = False
    presence: bool = False
    """Available only while it has a value (`<base>/<key>/present` ON): Home Assistant 2024.3 takes no
    "unknown" for a timestamp sensor without a warning in its log."""


_ENTITIES: Final = {
    STATE: _Entity("sensor", {"name": "Assistant state", "icon": "mdi:robot", "device_class": "enum",
                              "options": [s.value for s in AssistantState]}),
    LAST_HEARD: _Entity("sensor", {"name": "Last heard", "icon": "mdi:ear-hearing"}),
    LAST_REPLY: _Entity("sensor", {"name": "Last reply", "icon": "mdi:message-reply-text"}),
    BRAIN: _Entity("sensor", {"name": "Who answers", "icon": "mdi:brain"}),
    UPSTREAM: _Entity("binary_sensor", {"name": "Upstream link", "device_class": "connectivity",
                                        "entity_category": "diagnostic"}, attributes=True),
    VOLUME: _Entity("number", {"name": "Volume", "icon": "mdi:volume-high", "min": 0, "max": 100, "step": 1,
                               "mode": "slider", "unit_of_measurement": "%"}, command=True),
    MUTE: _Entity("switch", {"name": "Mute", "icon": "mdi:microphone-off"}, command=True),
    ANNOUNCE: _Entity("text", {"name": "Announce", "icon": "mdi:bullhorn", "min": 1, "max": ANNOUNCE_MAX,
                               "mode": "text"}, state=False, command=True),
    WAKE: _Entity("event", {"name": "Wake word", "icon": "mdi:account-voice", "event_types": [WAKE_EVENT]}),
    GATEWAY_DEVICES: _Entity("sensor", {"name": "Gateway devices", "icon": "mdi:access-point-network",
                                        "state_class": "measurement"}, attributes=True),
    TIMER: _Entity("sensor", {"name": "Timer", "icon": "mdi:timer-outline", "device_class": "timestamp"},
                   attributes=True, presence=True),
}


def discovery_messages(device: DeviceInfo, topics: Topics) -> dict[str, bytes]:
    """Topic -> retained discovery config, one per entity."""
    messages = {}
    for key, entity in _ENTITIES.items():
        config: dict[str, Any] = {**entity.config, "unique_id": f"{device.node_id}_{key}",
                                  "availability": [{"topic": topics.availability}], "device": device.to_json()}
        if entity.presence:
            config["availability"].append({"topic": topics.presence(key), "payload_available": "ON",
                                           "payload_not_available": "OFF"})
            config["availability_mode"] = "all"
        if entity.state:
            config["state_topic"] = topics.state(key)
        if entity.attributes:
            config["json_attributes_topic"] = topics.attributes(key)
        if entity.command:
            config["command_topic"] = topics.command(key)
        messages[topics.discovery(entity.component, device.node_id, key)] = _json(config)
    return messages


def state_messages(snapshot: Snapshot, topics: Topics) -> dict[str, bytes]:
    """Topic -> retained state payload for every entity that has a state (the wake event is not retained:
    see `wake_message`)."""
    upstream = snapshot.upstream
    running = [t for t in snapshot.timers if not t.ringing]
    soonest = min(running, key=lambda t: t.ends_at, default=None)
    states: dict[str, str | bytes] = {
        topics.state(STATE): snapshot.state.value,
        topics.state(LAST_HEARD): _fit(snapshot.last_heard),
        topics.state(LAST_REPLY): _fit(snapshot.last_reply),
        topics.state(BRAIN): snapshot.brain,
        topics.state(UPSTREAM): "ON" if upstream is not None and upstream.connected else "OFF",
        topics.attributes(UPSTREAM): _json({"transport": upstream.transport if upstream else "",
                                            "detail": upstream.detail if upstream else "not tried yet"}),
        topics.state(VOLUME): str(snapshot.volume) if snapshot.volume is not None else NONE_PAYLOAD,
        topics.state(MUTE): "ON" if snapshot.muted else "OFF",
        topics.state(GATEWAY_DEVICES): str(len(snapshot.gateway_devices)),
        topics.attributes(GATEWAY_DEVICES): _json({"devices": [
            {"mac": d.mac, "ip": d.ip, "client_id": d.client_id, "in_conversation": d.in_conversation}
            for d in snapshot.gateway_devices]}),
        # the value before the presence; without a timer the last end stays retained, behind the presence "OFF"
        **({topics.state(TIMER): _iso(soonest.ends_at)} if soonest is not None else {}),
        topics.presence(TIMER): "ON" if soonest is not None else "OFF",
        topics.attributes(TIMER): _json({"timers": [_timer(t) for t in snapshot.timers]}),
    }
    return {topic: value if isinstance(value, bytes) else value.encode() for topic, value in states.items()}


def wake_message(wake_word: str, score: float, topics: Topics) -> tuple[str, bytes]:
    """The event for a heard wake word (not retained: Home Assistant would replay it after a restart)."""
    return topics.state(WAKE), _json({"event_type": WAKE_EVENT, "wake_word": wake_word, "score": round(score, 3)})


def _timer(timer: TimerStatus) -> dict[str, Any]:
    return {"name": timer.name, "seconds": timer.seconds, "ends_at": _iso(timer.ends_at), "ringing": timer.ringing}


def _fit(text: str) -> str:
    """A text as a state Home Assistant accepts (at most 255 characters)."""
    return text if len(text) <= HA_STATE_MAX else text[: HA_STATE_MAX - 1] + "…"


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def _json(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
