"""Operator requests PiBuddy makes: chat with an agent, invoke a node, approve pairing requests.

Thin typed wrappers over `GatewayConnection.request`, so the method names and params live in one place.
Needed scopes: operator.write (chat.send, node.invoke), operator.pairing (approvals).
"""

from __future__ import annotations

import uuid
from typing import Any

from pibuddy.openclaw.connection import GatewayConnection
from pibuddy.openclaw.frames import EventFrame


class Operator:
    def __init__(self, session: GatewayConnection) -> None:
        self.session = session

    async def approve_device(self, request_id: str) -> Any:
        return await self.session.request("device.pair.approve", {"requestId": request_id})

    async def approve_node(self, request_id: str) -> Any:
        return await self.session.request("node.pair.approve", {"requestId": request_id})

    async def pending_devices(self) -> list[dict[str, Any]]:
        return _list(await self.session.request("device.pair.list", {}), "pending")

    async def pending_nodes(self) -> list[dict[str, Any]]:
        return _list(await self.session.request("node.pair.list", {}), "pending")

    async def nodes(self) -> list[dict[str, Any]]:
        return _list(await self.session.request("node.list", {}), "nodes")

    async def invoke(self, node_id: str, command: str, params: dict[str, Any], *, timeout_ms: int) -> Any:
        """`node.invoke`; the gateway answers within `timeout_ms` (plus a margin for the round trip)."""
        return await self.session.request(
            "node.invoke", {"nodeId": node_id, "command": command, "params": params, "timeoutMs": timeout_ms,
                            "idempotencyKey": str(uuid.uuid4())},
            timeout=timeout_ms / 1000 + 5)

    async def chat_send(self, session_key: str, message: str) -> str:
        """Start an agent run; returns its runId (the reply arrives as `chat` events)."""
        payload = await self.session.request(
            "chat.send", {"sessionKey": session_key, "message": message, "idempotencyKey": str(uuid.uuid4())})
        run_id = payload.get("runId") if isinstance(payload, dict) else None
        return run_id if isinstance(run_id, str) else ""


def _list(payload: Any, key: str) -> list[dict[str, Any]]:
    items = payload.get(key) if isinstance(payload, dict) else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def chat_outcome(event: EventFrame, run_id: str) -> tuple[str, str] | None:
    """`("final", text)`, `("error", message)` or `("aborted", text)` when `event` ends run `run_id`."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    if event.event != "chat" or payload.get("runId") != run_id:
        return None
    state = payload.get("state")
    if state == "final":
        return "final", message_text(payload.get("message"))
    if state in ("error", "aborted"):
        return str(state), str(payload.get("errorMessage") or message_text(payload.get("message")))
    return None


def message_text(message: object) -> str:
    """The text of a chat message: a string, `{text}`, or `{content: str | [{type:"text", text}]}`."""
    if isinstance(message, str):
        return message
    if not isinstance(message, dict):
        return ""
    if isinstance(message.get("text"), str):
        return str(message["text"])
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content
                       if isinstance(part, dict) and part.get("type") in (None, "text"))
    return ""
