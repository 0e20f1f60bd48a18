"""`node.invoke.request` in, `node.invoke.result` params out, with the caller's `timeoutMs` honoured.

The gateway sends `{id, nodeId, command, paramsJSON, timeoutMs?, idempotencyKey?}`; newer builds may
send `requestId` or `params`/`args` instead, so those are accepted too. The result echoes `id` and
`nodeId` exactly, puts JSON in `payload`, and never sends `payloadJSON: null`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, Final

from pibuddy.jsonvalues import is_int
from pibuddy.openclaw.commands import CommandError, NodeCommands
from pibuddy.openclaw.errors import FrameError

_LOGGER = logging.getLogger(__name__)
INVOKE_EVENT: Final = "node.invoke.request"
CANCEL_EVENT: Final = "node.invoke.cancel"
RESULT_METHOD: Final = "node.invoke.result"
_DEFAULT_TIMEOUT_MS: Final = 30_000  # the gateway registry's own default
_MAX_TIMEOUT_MS: Final = 10 * 60_000


@dataclass(frozen=True, slots=True)
class InvokeRequest:
    id: str
    node_id: str
    command: str
    params: dict[str, Any]
    timeout_ms: int

    @classmethod
    def from_payload(cls, payload: object) -> InvokeRequest:
        if not isinstance(payload, dict):
            raise FrameError("node.invoke.request without a payload object")
        invoke_id = payload.get("id") or payload.get("requestId")
        node_id, command = payload.get("nodeId"), payload.get("command")
        if not isinstance(invoke_id, str) or not invoke_id or not isinstance(command, str) or not command:
            raise FrameError("node.invoke.request without an id and a command")
        timeout = payload.get("timeoutMs")
        return cls(invoke_id, node_id if isinstance(node_id, str) else "", command, _params(payload),
                   min(timeout, _MAX_TIMEOUT_MS) if is_int(timeout) and timeout > 0 else _DEFAULT_TIMEOUT_MS)


def _params(payload: dict[str, Any]) -> dict[str, Any]:
    raw = payload.get("paramsJSON")
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FrameError(f"paramsJSON is not JSON ({exc})") from None
    else:
        decoded = payload.get("params", payload.get("args"))
    if decoded is None:
        return {}
    if not isinstance(decoded, dict):
        raise FrameError(f"invoke params are a JSON {type(decoded).__name__}, not an object")
    return decoded


def cancel_target(payload: object) -> str | None:
    """The invoke id a `node.invoke.cancel` names (`invokeId`, `requestId` or `id`)."""
    if not isinstance(payload, dict):
        return None
    for key in ("invokeId", "requestId", "id"):
        if isinstance(payload.get(key), str):
            return str(payload[key])
    return None


def result_ok(request: InvokeRequest, payload: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"id": request.id, "nodeId": request.node_id, "ok": True}
    if payload is not None:
        params["payload"] = payload
    return params


def result_error(request: InvokeRequest, code: str, message: str) -> dict[str, Any]:
    return {"id": request.id, "nodeId": request.node_id, "ok": False,
            "error": {"code": code, "message": f"{code}: {message}"}}


async def run_invoke(request: InvokeRequest, commands: NodeCommands) -> dict[str, Any]:
    """Run the command within `timeoutMs` and return the `node.invoke.result` params; never raises."""
    seconds = request.timeout_ms / 1000
    try:
        async with asyncio.timeout(seconds):
            payload = await commands.run(request.command, request.params)
    except CommandError as exc:
        return result_error(request, exc.code, exc.detail)
    except TimeoutError:
        _LOGGER.warning("OpenClaw command %s did not finish within %g s", request.command, seconds)
        return result_error(request, "TIMEOUT", f"{request.command} did not finish within {seconds:g} s")
    except Exception:
        _LOGGER.exception("OpenClaw command %s failed", request.command)
        return result_error(request, "UNAVAILABLE", f"{request.command} failed inside PiBuddy")
    return result_ok(request, payload)
