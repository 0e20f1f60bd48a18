"""OpenClaw protocol units: identity, frames, handshake, errors, invoke, topics; protocol-3 shapes from
recorded frames played by an in-memory gateway (no protocol-3 gateway can be installed here)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from pibuddy.config import Config
from pibuddy.errors import ConnectionLost
from pibuddy.events import EventBus, Say, WakeDetected
from pibuddy.openclaw.bridge import BridgeConfigError, forwarded_for
from pibuddy.openclaw.commands import NodeCommands
from pibuddy.openclaw.connection import GatewayConnection
from pibuddy.openclaw.errors import (
    AuthRejected,
    ErrorShape,
    FrameError,
    GatewayRejected,
    PairingRequired,
    ProtocolMismatch,
    SignatureExpired,
    SignatureRejected,
    rejection,
)
from pibuddy.openclaw.frames import EventFrame, ResponseFrame, parse_frame
from pibuddy.openclaw.handshake import ClientInfo, HelloOk, SessionSpec
from pibuddy.openclaw.identity import IDENTITY_FILE, DeviceIdentity, TokenStore
from pibuddy.openclaw.invoke import InvokeRequest, cancel_target, run_invoke
from pibuddy.openclaw.node import OpenClawNode
from pibuddy.openclaw.operator import chat_outcome
from pibuddy.openclaw.pairing import PairingGuide
from pibuddy.openclaw.topics import Kind, parse_topic
from pibuddy.statedir import StateDir
from pibuddy.tools.registry import ToolRegistry, tool
from tests.peers import openclaw_frames as rec

NODE = ClientInfo(id="node-host", mode="node", version="0.1.0", display_name="PiBuddy", instance_id="abc")


# --- identity ------------------------------------------------------------------------------------


def test_identity_is_created_once_private_and_derives_the_gateway_ids(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    first = DeviceIdentity.load_or_create(state)
    again = DeviceIdentity.load_or_create(state)
    assert again.device_id == first.device_id
    assert stat.S_IMODE((tmp_path / "state" / IDENTITY_FILE).stat().st_mode) == 0o600
    assert first.device_id == hashlib.sha256(first.public_key_raw).hexdigest()
    assert len(first.public_key) == 43
    assert "=" not in first.public_key
    assert len(first.sign("x")) == 86  # 64 bytes, base64url without padding


def test_a_damaged_identity_is_an_error_not_a_silent_new_device(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.write_text(IDENTITY_FILE, "{not json")
    with pytest.raises(ValueError, match="damaged"):
        DeviceIdentity.load_or_create(state)


def test_device_tokens_are_kept_per_role_and_per_identity(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    tokens = TokenStore(state, "a" * 64)
    tokens.put("node", "tok-node", [])
    tokens.put("operator", "tok-op", ["operator.read"])
    assert (tokens.get("node"), tokens.get("operator")) == ("tok-node", "tok-op")
    assert TokenStore(state, "b" * 64).get("node") is None  # another identity's tokens are useless
    tokens.forget("node")
    assert tokens.roles() == ["operator"]


# --- frames --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "reason"), [
    ("not json", "not JSON"),
    ("[1, 2]", "JSON list"),
    ('{"type": "hello"}', "unknown frame type"),
    ('{"type": "res", "id": 5, "ok": true}', "string id"),
    ('{"type": "event"}', "without an event name"),
    ('{"type": "event", "event": "tick", "pad": "' + "x" * 200 + '"}', "larger than"),
])
def test_bad_frames_raise_a_typed_error_saying_why(text: str, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        parse_frame(text, max_bytes=128)


def test_frames_parse_into_their_kinds() -> None:
    event = parse_frame(json.dumps(rec.CHAT_FINAL), max_bytes=4096)
    assert isinstance(event, EventFrame)
    assert event.seq == 14
    response = parse_frame(json.dumps({"type": "res", "id": "1", "ok": False, "error": rec.ERROR_TOKEN_P3}),
                           max_bytes=4096)
    assert isinstance(response, ResponseFrame)
    assert response.error is not None
    assert response.error.code == "INVALID_REQUEST"


# --- handshake and errors --------------------------------------------------------------------------


def test_protocol3_hello_ok_shapes_are_understood() -> None:
    may = HelloOk.from_payload(rec.HELLO_OK_2026_5_7)
    assert (may.protocol, may.server_version, may.auth_method) == (3, "2026.5.7", "unknown")
    assert may.main_session_key == "agent:main:main"
    january = HelloOk.from_payload(rec.HELLO_OK_2026_1)
    assert january.max_payload == 524288
    assert january.device_token == "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    with pytest.raises(FrameError):
        HelloOk.from_payload({"type": "something-else"})


@pytest.mark.parametrize(("error", "kind", "advice"), [
    (rec.ERROR_PAIRING_2026_9_6, PairingRequired, "openclaw devices approve 1f9974b2-4a51-4899-92d3-63176baace7d"),
    (rec.ERROR_TOKEN_2026_9_6, AuthRejected, "set openclaw.token"),
    (rec.ERROR_SIGNATURE_2026_9_6, SignatureRejected, "signature"),
    (rec.ERROR_STALE_2026_9_6, SignatureExpired, "clocks"),
    (rec.ERROR_PAIRING_P3, PairingRequired, "openclaw devices approve 7d0c5e8a-5b7e-4c43-9a43-2c4b8f0e9d21"),
    (rec.ERROR_TOKEN_P3, AuthRejected, "set openclaw.token"),
    (rec.ERROR_STALE_P3, SignatureExpired, "clocks"),
    (rec.ERROR_PROTOCOL_P3, ProtocolMismatch, "supports 3 and 4"),
])
def test_connect_errors_of_both_generations_map_to_typed_errors_with_advice(
        error: dict[str, Any], kind: type[GatewayRejected], advice: str) -> None:
    refused = rejection(ErrorShape.from_json(error))
    assert type(refused) is kind
    assert advice in str(refused)


async def test_connect_is_signed_over_the_challenge_and_hello_ok_opens_the_session() -> None:
    gateway = rec.RecordedGateway(rec.HELLO_OK_2026_1)
    identity = DeviceIdentity.generate()

    async def open_link() -> rec.RecordedGateway:
        return gateway

    connection = GatewayConnection(open_link, identity=identity, client=NODE, token="shared",
                                   spec=SessionSpec(role="node", commands=("system.notify",)))
    async with connection as session:
        assert session.hello is not None
        assert session.hello.protocol == 3
    [params] = gateway.connects  # the recorded gateway verified the v2 signature itself
    assert (params["minProtocol"], params["maxProtocol"]) == (3, 4)
    assert params["device"]["signedAt"] == rec.CHALLENGE_TS
    assert params["auth"] == {"token": "shared"}
    assert params["client"]["id"] == "node-host"
    assert params["client"]["platform"] == "linux"
    assert gateway.closed


async def test_a_refused_connect_raises_the_typed_error_and_closes_the_link() -> None:
    gateway = rec.RecordedGateway(error=rec.ERROR_PAIRING_P3)

    async def open_link() -> rec.RecordedGateway:
        return gateway

    connection = GatewayConnection(open_link, identity=DeviceIdentity.generate(), client=NODE, token=None,
                                   spec=SessionSpec(role="node"))
    with pytest.raises(PairingRequired) as refused:
        await connection.__aenter__()
    assert refused.value.request_id == "7d0c5e8a-5b7e-4c43-9a43-2c4b8f0e9d21"
    assert gateway.closed
    assert "auth" not in gateway.connects[0]  # no token: nothing to put in auth


async def test_no_tick_for_two_intervals_ends_the_session() -> None:
    gateway = rec.RecordedGateway({**rec.HELLO_OK_2026_1, "policy": {"maxPayload": 524288, "tickIntervalMs": 40}})

    async def open_link() -> rec.RecordedGateway:
        return gateway

    async with GatewayConnection(open_link, identity=DeviceIdentity.generate(), client=NODE, token="t",
                                 spec=SessionSpec(role="node")) as session:
        with pytest.raises(ConnectionLost, match="no tick"):
            await asyncio.wait_for(_read_all(session), 1)


async def _read_all(session: GatewayConnection) -> None:
    async for _event in session.events():
        pass


# --- the node over recorded protocol-3 frames --------------------------------------------------------


def _big_tool_registry() -> ToolRegistry:
    registry = ToolRegistry()

    @tool("test.big", "Returns 600 KB of text.")
    async def big(arguments: dict[str, Any]) -> str:
        del arguments
        return "x" * 600_000

    registry.register(big)
    return registry


async def test_node_serves_invokes_within_protocol3_limits_and_survives_garbage(tmp_path: Path) -> None:
    config = Config.model_validate({"device": {"state_dir": str(tmp_path)},
                                    "openclaw": {"enabled": True, "token": "shared"}})
    bus = EventBus()
    gateway = rec.RecordedGateway(rec.HELLO_OK_2026_1)
    node = OpenClawNode(config, bus=bus, registry=_big_tool_registry())
    await node.start()

    async def open_link() -> rec.RecordedGateway:
        return gateway

    said = bus.subscribe()
    connection = GatewayConnection(open_link, identity=node.identity, client=NODE, token="shared", spec=node.spec())
    async with connection as session:
        serving = asyncio.create_task(node.run_session(session))
        gateway.push("garbage {")  # dropped with one log line
        gateway.push({"type": "event", "event": "node.invoke.request", "payload": {"nodeId": "x"}})  # no id
        notify = json.loads(json.dumps(rec.INVOKE_NOTIFY).replace("<node id>", node.identity.device_id))
        gateway.push(notify)
        big = {"type": "event", "event": "node.invoke.request", "payload": {
            "id": "big-1", "nodeId": node.identity.device_id, "command": "pibuddy.tools.call",
            "paramsJSON": json.dumps({"name": "test.big"}), "timeoutMs": 5000}}
        gateway.push(big)
        results = await gateway.wait_sent("node.invoke.result", 2)
        gateway.drop()
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(serving, 2)
    by_id = {r["params"]["id"]: r["params"] for r in results}
    assert by_id[notify["payload"]["id"]] == {"id": notify["payload"]["id"], "nodeId": node.identity.device_id,
                                              "ok": True, "payload": {"spoken": True}}
    assert by_id["big-1"]["ok"] is False
    assert by_id["big-1"]["error"]["code"] == "PAYLOAD_TOO_LARGE"
    spoken = [e async for e in _drain(said) if isinstance(e, Say)]
    assert [s.text for s in spoken] == ["Hi. hello there"]
    assert all(len(json.dumps(f)) <= 524288 for f in gateway.sent)


async def _drain(subscription: Any) -> Any:
    while not subscription.queue.empty():
        yield subscription.queue.get_nowait()


# --- invoke parsing and results ---------------------------------------------------------------------


def test_invoke_requests_accept_every_documented_shape() -> None:
    assert InvokeRequest.from_payload({"id": "1", "nodeId": "n", "command": "c", "paramsJSON": None}).params == {}
    assert InvokeRequest.from_payload({"requestId": "2", "command": "c", "params": {"a": 1}}).params == {"a": 1}
    assert InvokeRequest.from_payload({"id": "3", "command": "c"}).timeout_ms == 30_000
    with pytest.raises(FrameError, match="not JSON"):
        InvokeRequest.from_payload({"id": "4", "command": "c", "paramsJSON": "{oops"})
    with pytest.raises(FrameError, match="not an object"):
        InvokeRequest.from_payload({"id": "5", "command": "c", "paramsJSON": "[1]"})
    assert cancel_target({"invokeId": "9"}) == "9"


async def test_invoke_results_report_errors_and_timeouts_with_codes() -> None:
    registry = ToolRegistry()

    @tool("test.slow", "Sleeps.", timeout=30)
    async def slow(arguments: dict[str, Any]) -> str:
        del arguments
        await asyncio.sleep(10)
        return "late"

    registry.register(slow)
    commands = NodeCommands(bus=EventBus(), registry=registry, display_name="PiBuddy")
    unknown = await run_invoke(InvokeRequest("1", "n", "camera.snap", {}, 1000), commands)
    assert unknown["error"]["code"] == "UNKNOWN_COMMAND"
    failed = await run_invoke(InvokeRequest("2", "n", "pibuddy.tools.call", {"name": "nope"}, 1000), commands)
    assert failed["error"] == {"code": "TOOL_FAILED", "message": "TOOL_FAILED: Unknown tool: nope"}
    started = asyncio.get_running_loop().time()
    late = await run_invoke(InvokeRequest("3", "n", "pibuddy.tools.call", {"name": "test.slow"}, 100), commands)
    assert late["error"]["code"] == "TIMEOUT"
    assert asyncio.get_running_loop().time() - started < 1
    assert "payloadJSON" not in late


# --- chat, topics, bridge address, pairing guidance --------------------------------------------------


def test_chat_outcomes_take_the_terminal_event_of_the_run() -> None:
    run = "e4480593-d847-4399-8c47-15da4c17fe46"
    final = parse_frame(json.dumps(rec.CHAT_FINAL), max_bytes=4096)
    error = parse_frame(json.dumps(rec.CHAT_ERROR), max_bytes=4096)
    assert isinstance(final, EventFrame)
    assert isinstance(error, EventFrame)
    assert chat_outcome(final, run) == ("final", "It is noon.")
    assert chat_outcome(error, run) == ("error", "No route-compatible authentication source is configured for openai.")
    assert chat_outcome(final, "another run") is None


def test_topics_parse_only_well_formed_client_topics() -> None:
    parsed = parse_topic("moltbot/gw", "moltbot/gw/abc_1/node/req")
    assert parsed is not None
    assert parsed[1] is Kind.REQ
    assert parsed[0].client_id == "abc_1"
    for bad in ("moltbot/gw/abc/worker/req", "moltbot/gw/a b/node/req", "moltbot/gw/abc/node/nope",
                "other/abc/node/req", "moltbot/gw/abc/node/req/extra"):
        assert parse_topic("moltbot/gw", bad) is None


def test_the_bridge_never_reports_a_loopback_origin() -> None:
    assert forwarded_for("192.0.2.10") == "192.0.2.10"
    for bad in ("127.0.0.1", "::1", "0.0.0.0", "not-an-ip"):
        with pytest.raises(BridgeConfigError):
            forwarded_for(bad)


def test_pairing_is_announced_once_per_request_and_approval_only_after_a_wait() -> None:
    guide = PairingGuide("node")
    assert guide.approved("x") is None
    first = guide.device_pending("req-1", "not-paired")
    assert first is not None
    assert "openclaw devices approve req-1" in first.log
    assert guide.device_pending("req-1", "not-paired") is None  # retries stay quiet
    assert guide.device_pending("req-2", "role-upgrade") is not None
    approved = guide.approved("device")
    assert approved is not None
    assert approved.say == "OpenClaw approved PiBuddy."
    commands = guide.commands_pending("f" * 64)
    assert commands is not None
    assert "openclaw nodes approve" in commands.log


async def test_a_refused_device_token_is_forgotten_and_the_shared_token_used_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config.model_validate({"device": {"state_dir": str(tmp_path)},
                                    "openclaw": {"enabled": True, "token": "shared"}})
    bus = EventBus()
    node = OpenClawNode(config, bus=bus, registry=ToolRegistry())
    await node.start()
    tokens = TokenStore(StateDir(tmp_path), node.identity.device_id)
    tokens.put("node", "revoked-device-token", [])
    links = [rec.RecordedGateway(rec.HELLO_OK_2026_1, refuse_token="revoked-device-token") for _ in range(2)]
    opened = iter(links)

    def recorded_links(*args: object) -> Any:
        del args

        async def open_link() -> rec.RecordedGateway:
            return next(opened)

        return open_link

    monkeypatch.setattr("pibuddy.openclaw.profile.transport_factory", recorded_links)
    serving = asyncio.create_task(node.serve())
    await links[1].wait_sent("node.event")  # connected with the shared token and announced presence
    bus.publish(WakeDetected("okay_nabu"))
    events = await links[1].wait_sent("node.event", 2)
    links[1].drop()
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(serving, 2)
    assert [c["auth"]["token"] for c in (*links[0].connects, *links[1].connects)] == ["revoked-device-token",
                                                                                      "shared"]
    assert tokens.get("node") == "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # the one hello-ok issued
    wake = next(e["params"] for e in events if e["params"]["event"] == "pibuddy.wake")
    assert json.loads(wake["payloadJSON"]) == {"wakeWord": "okay_nabu"}  # a string, never null


def test_the_spoken_pairing_hint_names_the_start_of_the_request_id() -> None:
    announcement = PairingGuide("node", "Buddy").device_pending("1f9974b2-4a51", "not-paired")
    assert announcement is not None
    assert "1 f 9 9 7 4" in announcement.say
    assert "Buddy" in announcement.say
