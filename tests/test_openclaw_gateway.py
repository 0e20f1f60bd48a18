"""PiBuddy as an OpenClaw node against a real gateway (npm openclaw 2026.9.6) on 127.0.0.1.

The gateway runs with manual pairing (`autoApproveLocal: false`), PiBuddy's commands allowed, and the
bridge's 127.0.0.1 trusted as a proxy (tests/peers/openclaw_gateway.py). Approvals come from a test
operator session (`gateway-client`/`backend` with the shared token: the gateway's own trusted backend
path, which needs no pairing). Each test pairs a fresh PiBuddy identity. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from pibuddy.backoff import Backoff
from pibuddy.brain import LocalBrain, Outcome
from pibuddy.brain.service import LocalBrainService
from pibuddy.brain.vocabulary import from_homeassistant
from pibuddy.brain.voice import EspeakVoice
from pibuddy.config import Config
from pibuddy.control import Control, History, TurnRecord
from pibuddy.drivers.homeassistant.index import Index
from pibuddy.errors import ConnectionLost
from pibuddy.events import Event, EventBus, Say, Subscription
from pibuddy.openclaw.brain import OpenClawBrain
from pibuddy.openclaw.connection import MAX_INCOMING_BYTES, GatewayConnection
from pibuddy.openclaw.errors import AuthRejected, RequestFailed, SignatureExpired, SignatureRejected
from pibuddy.openclaw.handshake import ClientInfo, SessionSpec
from pibuddy.openclaw.identity import DeviceIdentity, TokenStore
from pibuddy.openclaw.node import OpenClawNode
from pibuddy.openclaw.operator import Operator
from pibuddy.openclaw.status import STATUS_FILE
from pibuddy.openclaw.transport import FrameTransport, WebSocketTransport
from pibuddy.statedir import StateDir
from pibuddy.supervisor import Service, Supervisor
from pibuddy.tools.registry import ToolRegistry, tool
from pibuddy.wiring.services import build_services
from pibuddy.wiring.tools import build_registry
from tests.brain.conftest import FixedVocabulary
from tests.brain.test_confidence_gate import OneUtterance
from tests.brain.test_hand_off import FreeText
from tests.peers.fixtures_homeassistant import SNAPSHOT
from tests.peers.mosquitto import MosquittoBroker, mosquitto_fixture  # noqa: F401
from tests.peers.openclaw_gateway import OpenClawGateway, default_config, openclaw_gateway_fixture  # noqa: F401
from tests.polling import eventually

# The first test may also install Node and openclaw into the cache (about a minute) and start the gateway.
pytestmark = [pytest.mark.peer, pytest.mark.timeout(300)]
_WAIT = 20.0  # seconds for any one protocol milestone (gateway RPCs take well under a second)


def _config(gateway: OpenClawGateway, state: Path, **openclaw: Any) -> Config:
    return Config.model_validate({
        "device": {"state_dir": str(state), "name": "PiBuddy test"},
        "upstream": {"enabled": False}, "gateway": {"enabled": False}, "audio": {"enabled": False},
        "openclaw": {"enabled": True, "gateway_url": gateway.url, "token": gateway.token,
                     "pairing_retry_seconds": 0.3, **openclaw},
    })


def _registry(config: Config) -> ToolRegistry:
    """PiBuddy's own tools plus one that outlives any short invoke timeout."""
    registry = build_registry(config)

    @tool("test.slow", "Takes ten seconds.", timeout=30)
    async def slow(arguments: dict[str, Any]) -> str:
        del arguments
        await asyncio.sleep(10)
        return "too late"

    registry.register(slow)
    return registry


@contextlib.asynccontextmanager
async def _admin(gateway: OpenClawGateway) -> AsyncIterator[Operator]:
    async def open_link() -> FrameTransport:
        return await WebSocketTransport.open(gateway.url, open_timeout=_WAIT, max_size=MAX_INCOMING_BYTES)

    client = ClientInfo(id="gateway-client", mode="backend", version="test", display_name="pibuddy tests",
                        instance_id="tests")
    session = GatewayConnection(open_link, identity=DeviceIdentity.generate(), client=client, token=gateway.token,
                                spec=SessionSpec(role="operator", scopes=("operator.admin",)), timeout=_WAIT)
    async with session:
        yield Operator(session)


@contextlib.asynccontextmanager
async def _running(services: list[Service], bus: EventBus) -> AsyncIterator[None]:
    supervisor = Supervisor(services, bus=bus, backoff_factory=lambda: Backoff(initial=0.2, maximum=1.0))
    task = asyncio.create_task(supervisor.run())
    try:
        yield
    finally:
        supervisor.request_stop()
        await asyncio.wait_for(task, 15)


async def _said(events: Subscription, match: Callable[[str], bool], within: float = _WAIT) -> str:
    async with asyncio.timeout(within):
        while True:
            event: Event = await events.get()
            if isinstance(event, Say) and match(event.text):
                return event.text


async def _status(state: Path, role: str, match: Callable[[dict[str, Any]], bool],
                  within: float = _WAIT) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            entry = (StateDir(state).read_json(STATUS_FILE) or {}).get(role)
            if isinstance(entry, dict) and match(entry):
                return entry
            await asyncio.sleep(0.05)


async def _approve_device(admin: Operator, state: Path, role: str) -> str:
    """Wait until `role` of the identity in `state` waits for approval, and approve it."""
    entry = await _status(state, role, lambda e: bool(e.get("pairingRequestId")))
    request_id = str(entry["pairingRequestId"])
    pending = {p["requestId"]: p for p in await admin.pending_devices()}
    assert pending[request_id]["role"] == role or role in pending[request_id].get("roles", [role])
    await admin.approve_device(request_id)
    return request_id


async def _approve_commands(admin: Operator, node_id: str) -> list[str]:
    """Approve the node's pending command request (polled: the gateway pushes none to this session)."""
    for _ in range(int(_WAIT / 0.1)):
        if mine := [p for p in await admin.pending_nodes() if p["nodeId"] == node_id]:
            approved = await admin.approve_node(mine[0]["requestId"])
            return list(approved["node"]["commands"])
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no node.pair request for {node_id} within {_WAIT:g} s")


async def _pair(gateway: OpenClawGateway, admin: Operator, state: Path, events: Subscription) -> str:
    """Device approval, then command approval, with PiBuddy's announcements checked; returns the node id."""
    await _said(events, lambda t: "OpenClaw needs approval" in t)
    await _approve_device(admin, state, "node")
    await _said(events, lambda t: t == "OpenClaw approved PiBuddy test.")
    await _said(events, lambda t: "approve its commands" in t)
    node_id = str(StateDir(state).read_json("openclaw_identity.json")["deviceId"])  # type: ignore[index]
    commands = await _approve_commands(admin, node_id)
    assert set(commands) == {"system.notify", "device.info", "pibuddy.tools.list", "pibuddy.tools.call"}
    await _said(events, lambda t: t == "OpenClaw approved PiBuddy test.")
    return node_id


async def test_pairing_with_approvals_then_invoke_success_error_and_timeout(
        openclaw_gateway: OpenClawGateway, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pibuddy")
    config = _config(openclaw_gateway, tmp_path)
    bus = EventBus()
    events = bus.subscribe(256)
    async with _admin(openclaw_gateway) as admin, _running([OpenClawNode(config, bus=bus,
                                                                         registry=_registry(config))], bus):
        node_id = await _pair(openclaw_gateway, admin, tmp_path, events)
        assert any("openclaw devices approve" in r.message for r in caplog.records)
        status = json.loads((tmp_path / STATUS_FILE).read_text())["node"]
        assert (status["state"], status["commands"], status["serverVersion"]) == ("connected", "approved", "2026.9.6")
        assert "pairingRequestId" not in status  # the connected status replaced the pending one

        result = await admin.invoke(node_id, "system.notify", {"title": "Hi", "body": "dinner is ready"},
                                    timeout_ms=5000)
        assert result["ok"] is True
        assert result["payload"] == {"spoken": True}
        assert await _said(events, lambda t: "dinner" in t) == "Hi. dinner is ready"

        info = await admin.invoke(node_id, "device.info", {}, timeout_ms=5000)
        assert info["payload"]["deviceName"] == "PiBuddy test"

        listed = await admin.invoke(node_id, "pibuddy.tools.list", {}, timeout_ms=5000)
        assert "test.slow" in [t["name"] for t in listed["payload"]["tools"]]

        with pytest.raises(RequestFailed) as failed:
            await admin.invoke(node_id, "pibuddy.tools.call", {"name": "no.such.tool"}, timeout_ms=5000)
        assert "TOOL_FAILED: Unknown tool: no.such.tool" in failed.value.error.message

        started = time.monotonic()
        with pytest.raises(RequestFailed) as late:
            await admin.invoke(node_id, "pibuddy.tools.call", {"name": "test.slow"}, timeout_ms=1500)
        assert "TIMEOUT" in json.dumps([late.value.error.message, late.value.error.details])
        assert time.monotonic() - started < 5

    assert TokenStore(StateDir(tmp_path), node_id).get("node") is not None


class _ForgedIdentity(DeviceIdentity):
    """Publishes one key and signs with another: a signature the gateway must reject."""

    def sign(self, payload: str) -> str:
        return DeviceIdentity.generate().sign(payload)


class _StaleChallenge:
    """Moves the challenge's ts 200 s into the past before PiBuddy signs it (the gateway allows ~2 min)."""

    def __init__(self, link: FrameTransport) -> None:
        self._link = link
        self.description = link.description
        self._first = True

    async def receive(self) -> str:
        text = await self._link.receive()
        if self._first:
            self._first = False
            frame = json.loads(text)
            frame["payload"]["ts"] -= 200_000
            text = json.dumps(frame)
        return text

    async def send(self, text: str) -> None:
        await self._link.send(text)

    async def close(self) -> None:
        await self._link.close()


async def test_bad_signature_stale_signed_at_and_wrong_token_are_refused_clearly(
        openclaw_gateway: OpenClawGateway, tmp_path: Path) -> None:
    client = ClientInfo(id="node-host", mode="node", version="test", display_name="refused", instance_id="x")
    spec = SessionSpec(role="node", commands=("system.notify",))

    async def plain() -> FrameTransport:
        return await WebSocketTransport.open(openclaw_gateway.url, open_timeout=_WAIT, max_size=MAX_INCOMING_BYTES)

    async def stale() -> FrameTransport:
        return _StaleChallenge(await plain())

    forged = _ForgedIdentity(DeviceIdentity.generate().private_key)
    with pytest.raises(SignatureRejected) as bad:
        async with GatewayConnection(plain, identity=forged, client=client, spec=spec, token=openclaw_gateway.token):
            pass
    assert bad.value.error.detail_code == "DEVICE_AUTH_SIGNATURE_INVALID"
    assert "device signature" in str(bad.value)

    with pytest.raises(SignatureExpired) as expired:
        async with GatewayConnection(stale, identity=DeviceIdentity.generate(), client=client, spec=spec,
                                     token=openclaw_gateway.token):
            pass
    assert expired.value.error.detail_code == "DEVICE_AUTH_SIGNATURE_EXPIRED"
    assert "clocks are synchronised" in str(expired.value)

    with pytest.raises(AuthRejected) as wrong:
        async with GatewayConnection(plain, identity=DeviceIdentity.generate(), client=client, spec=spec,
                                     token="not-the-token"):
            pass
    assert wrong.value.error.detail_code == "AUTH_TOKEN_MISMATCH"

    # The node service turns the refusal into one clear ConnectionLost and records it for `status`.
    node = OpenClawNode(_config(openclaw_gateway, tmp_path, token="not-the-token"), bus=EventBus(),
                        registry=ToolRegistry())
    await node.start()
    with pytest.raises(ConnectionLost, match=r"set openclaw\.token to the gateway's token"):
        await asyncio.wait_for(node.serve(), _WAIT)
    status = json.loads((tmp_path / STATUS_FILE).read_text())["node"]
    assert status["state"] == "error"
    assert "gateway token mismatch" in status["lastError"]


def _cli(state: Path, gateway: OpenClawGateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIBUDDY_")}
    env.update({"PIBUDDY_DEVICE_STATE_DIR": str(state), "PIBUDDY_OPENCLAW_GATEWAY_URL": gateway.url,
                "PIBUDDY_OPENCLAW_TOKEN": gateway.token, "PIBUDDY_OPENCLAW_ENABLED": "true"})
    return subprocess.run([sys.executable, "-m", "pibuddy", "openclaw", *args, "--config", "/dev/null"],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


async def test_invoke_self_and_reconnect_with_the_device_token_after_a_gateway_restart(
        openclaw_gateway: OpenClawGateway, tmp_path: Path) -> None:
    config = _config(openclaw_gateway, tmp_path)
    bus = EventBus()
    events = bus.subscribe(256)
    async with _admin(openclaw_gateway) as admin, _running(build_services(config, bus), bus):
        await _pair(openclaw_gateway, admin, tmp_path, events)

        # `pibuddy openclaw invoke-self` opens the identity's operator session: a second approval.
        refused = await asyncio.to_thread(_cli, tmp_path, openclaw_gateway, "invoke-self", "system.notify",
                                          '{"body": "from the command line"}')
        assert refused.returncode == 1
        assert "openclaw devices approve" in refused.stderr, refused.stderr
        request_id = refused.stderr.split("openclaw devices approve ")[1].split(")")[0].strip()
        await admin.approve_device(request_id)
        done = await asyncio.to_thread(_cli, tmp_path, openclaw_gateway, "invoke-self", "system.notify",
                                       '{"body": "from the command line"}')
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["payload"] == {"spoken": True}
        await _said(events, lambda t: t == "from the command line")

    status = await asyncio.to_thread(_cli, tmp_path, openclaw_gateway, "status")
    assert "device tokens: node, operator" in status.stdout
    assert "node: connected" in status.stdout

    async with _running(build_services(config, bus), bus):
        await _status(tmp_path, "node", lambda e: e["state"] == "connected")
        restarted_at_ms = time.time() * 1000
        await asyncio.to_thread(openclaw_gateway.restart)
        entry = await _status(tmp_path, "node",
                              lambda e: e["state"] == "connected" and e["updatedAtMs"] > restarted_at_ms)
        assert entry["authMethod"] == "device-token"
        async with _admin(openclaw_gateway) as admin:
            node_id = DeviceIdentity.load_or_create(StateDir(tmp_path)).device_id
            result = await admin.invoke(node_id, "system.notify", {"body": "back again"}, timeout_ms=5000)
        assert result["payload"] == {"spoken": True}


async def test_operator_brain_answers_what_the_local_brain_hands_over_and_the_history_says_so(
        openclaw_gateway: OpenClawGateway, tmp_path: Path) -> None:
    """The local brain's turn (its real service; a free-form recogniser double, as tests/brain/test_hand_off.py)
    hands a question to the operator brain on the real gateway; PiBuddy speaks OpenClaw's outcome, and the
    history (the real control layer) records the turn as answered by openclaw, with that text as its reply."""
    config = _config(openclaw_gateway, tmp_path, operator_enabled=True, operator_reply_timeout=45)
    bus = EventBus()
    events = bus.subscribe(256)
    control = Control(bus, history=History(None))
    question = "what is the capital of france"
    household = FixedVocabulary(from_homeassistant(Index.from_snapshot(SNAPSHOT)))
    local = LocalBrainService(LocalBrain(ToolRegistry(), [household], language="en"), FreeText(question),
                              EspeakVoice("en"), OneUtterance(b"\0\0" * 16000), bus, offline_notice=False,
                              hand_off=True)
    recording = asyncio.create_task(control.serve())
    try:
        async with _admin(openclaw_gateway) as admin, _running([OpenClawBrain(config, bus=bus)], bus):
            await _said(events, lambda t: "OpenClaw needs approval" in t)
            await _approve_device(admin, tmp_path, "operator")
            await _said(events, lambda t: t == "OpenClaw approved PiBuddy test.")
            entry = await _status(tmp_path, "operator", lambda e: e["state"] == "connected")
            assert set(entry["scopes"]) >= {"operator.read", "operator.write"}
            assert (await local.turn("okay nabu")).outcome is Outcome.HANDED_OFF
            # The test gateway has no model provider: the agent run fails, and PiBuddy says why.
            spoken = await _said(events, lambda t: t.startswith("OpenClaw"), within=60)
            await eventually(lambda: bool(control.history()))
    finally:
        recording.cancel()
    assert spoken.startswith("OpenClaw could not answer: ")
    assert "authentication" in spoken
    [turn] = control.history()
    assert isinstance(turn, TurnRecord)
    assert (turn.microphone, turn.brain, turn.heard, turn.reply) == ("pi", "openclaw", question, spoken)
    assert list(turn.latency_ms) == ["wake", "listen_start", "heard", "end"]
    assert turn.latency_ms["end"] > turn.latency_ms["heard"], "the turn ends when OpenClaw answered"
    assert control.snapshot().last_reply == spoken


async def test_the_same_through_mosquitto_and_the_bridge(
        openclaw_gateway: OpenClawGateway, mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    # Silent local pairing on: a direct loopback node would be paired at once; a bridged one must not be.
    permissive = default_config()
    permissive["gateway"]["nodes"]["pairing"]["autoApproveLocal"] = True
    await asyncio.to_thread(openclaw_gateway.write_config, permissive, wait_reload=True)
    try:
        config = _config(openclaw_gateway, tmp_path, transport="mqtt", mqtt_host=mosquitto.host,
                         mqtt_port=mosquitto.port, bridge_enabled=True, bridge_forwarded_for="192.0.2.10")
        bus = EventBus()
        events = bus.subscribe(256)
        services = build_services(config, bus)
        assert [s.name for s in services] == ["openclaw-bridge", "openclaw-node", "timers", "brain-router", "control"]
        async with _admin(openclaw_gateway) as admin, _running(services, bus):
            node_id = await _pair(openclaw_gateway, admin, tmp_path, events)
            result = await admin.invoke(node_id, "system.notify", {"body": "over MQTT"}, timeout_ms=5000)
            assert result["payload"] == {"spoken": True}
            await _said(events, lambda t: t == "over MQTT")
            with pytest.raises(RequestFailed) as failed:
                await admin.invoke(node_id, "pibuddy.tools.call", {"name": "no.such.tool"}, timeout_ms=5000)
            assert "TOOL_FAILED" in failed.value.error.message
            nodes = {n["nodeId"]: n for n in await admin.nodes()}
            assert nodes[node_id]["connected"] is True

            # A request above the gateway's pre-auth limit never reaches it: the bridge answers for it.
            async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="raw-test-client") as raw:
                await raw.subscribe([("moltbot/gw/rawclient/node/res", 1), ("moltbot/gw/rawclient/node/evt", 1)])
                await raw.publish("moltbot/gw/rawclient/node/announce", b"", qos=1)
                messages = aiter(raw.messages)
                async with asyncio.timeout(_WAIT):
                    challenge = json.loads((await anext(messages)).payload)  # type: ignore[arg-type]
                    assert challenge["event"] == "connect.challenge"  # passed through, for the client to sign
                    big = {"type": "req", "id": "big-1", "method": "connect", "params": {"pad": "x" * 100_000}}
                    await raw.publish("moltbot/gw/rawclient/node/req", json.dumps(big).encode(), qos=1)
                    message = await anext(messages)
            answer = json.loads(message.payload)  # type: ignore[arg-type]
            assert answer["id"] == "big-1"
            assert answer["ok"] is False
            assert answer["error"]["code"] == "PAYLOAD_TOO_LARGE"
    finally:
        await asyncio.to_thread(openclaw_gateway.write_config, default_config(), wait_reload=True)
