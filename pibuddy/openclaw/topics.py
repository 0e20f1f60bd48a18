"""The MQTT topic scheme that carries gateway frames between a client and the bridge.

`{prefix}/{clientId}/{role}/{kind}`, `role` being `node` or `operator`, as the seed's Android MQTT app
used (`moltbot/gw/...`). Payloads are the unchanged WebSocket JSON frames. PiBuddy adds three kinds so
that every client signs its own challenge and sessions end cleanly:

- `req` (client -> bridge): request frames.
- `res`, `evt` (bridge -> client): response and event frames; `connect.challenge` included.
- `announce` (client -> bridge): open a fresh gateway WebSocket for this client and role; the gateway's
  challenge then arrives on `evt`.
- `close` (client -> bridge, also the client's MQTT will): close that WebSocket.
- `closed` (bridge -> client): the gateway side closed; payload `{"code": int, "reason": str}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

ROLES: Final = ("node", "operator")
_CLIENT_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Kind(StrEnum):
    REQ = "req"
    RES = "res"
    EVT = "evt"
    ANNOUNCE = "announce"
    CLOSE = "close"
    CLOSED = "closed"


FROM_CLIENT: Final = (Kind.REQ, Kind.ANNOUNCE, Kind.CLOSE)


def _valid_client_id(client_id: str) -> bool:
    """Topic-safe ids only: no `/`, `+` or `#`, so one client cannot address another's topics by accident."""
    return bool(_CLIENT_ID_RE.match(client_id))


@dataclass(frozen=True, slots=True)
class SessionTopics:
    prefix: str
    client_id: str
    role: str

    def topic(self, kind: Kind) -> str:
        return f"{self.prefix}/{self.client_id}/{self.role}/{kind}"


def bridge_filters(prefix: str) -> list[str]:
    """What the bridge subscribes to: only what clients publish, never its own `res`/`evt`/`closed`."""
    return [f"{prefix}/+/+/{kind}" for kind in FROM_CLIENT]


def parse_topic(prefix: str, topic: str) -> tuple[SessionTopics, Kind] | None:
    """`(session, kind)` for a well-formed topic under `prefix`, else None."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) != 3:
        return None
    client_id, role, kind = parts
    if not _valid_client_id(client_id) or role not in ROLES or kind not in Kind.__members__.values():
        return None
    return SessionTopics(prefix, client_id, role), Kind(kind)
