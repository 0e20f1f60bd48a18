"""A simulated miIO/MIoT device on 127.0.0.1 serving a spec fixture, with two interchangeable codecs:

- `ReferenceCodec` parses and builds packets with python-miio's own `miio.protocol.Message` (GPL-3.0, a
  test-time peer only; never imported by `pibuddy/`), so PiBuddy's client is checked against the reference;
- `PibuddyCodec` uses PiBuddy's codec in the device role, so python-miio's client checks PiBuddy's codec.

Like a real device it answers hello with its did and clock, drops packets whose checksum does not match its
token without a word, and keeps MIoT property state that `set_properties` and actions really change.
Fault modes make it silent or send malformed, non-object or oversized replies.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, cast

SPECS_DIR = Path(__file__).parent / "miot_specs"
STAMP = 1_700_000_000


def load_spec(name: str) -> dict[str, Any]:
    return json.loads((SPECS_DIR / f"{name}.json").read_text())


class Fault(Enum):
    NONE = "none"
    SILENT = "silent"  # answers nothing, not even hello (offline)
    NOT_JSON = "not_json"  # a well-sealed reply whose plaintext is not JSON
    NOT_OBJECT = "not_object"  # a well-sealed reply that is a JSON string
    OVERSIZED = "oversized"  # a well-sealed 20 kB reply


class Codec(Protocol):
    def hello_reply(self, did: int, stamp: int) -> bytes: ...
    def open(self, datagram: bytes) -> dict[str, Any] | None: ...
    def seal_json(self, message: Any, did: int, stamp: int) -> bytes: ...
    def seal_raw(self, plaintext: bytes, did: int, stamp: int) -> bytes: ...


class ReferenceCodec:
    """python-miio's `Message` construct; the did's upper 32 bits ride in its "unknown" field."""

    def __init__(self, token: bytes) -> None:
        self.token = token

    def hello_reply(self, did: int, stamp: int) -> bytes:
        return struct.pack(">HHQI", 0x2131, 32, did, stamp) + b"\xff" * 16

    def open(self, datagram: bytes) -> dict[str, Any] | None:
        from construct import ChecksumError  # noqa: PLC0415 - python-miio's dependency
        from miio.protocol import Message  # noqa: PLC0415 - GPL: imported only inside the test peer

        try:
            parsed = Message.parse(datagram, token=self.token)
        except ChecksumError:
            return None  # another token: a real device drops it silently
        value = parsed.data.value
        return value if isinstance(value, dict) else None

    def seal_json(self, message: Any, did: int, stamp: int) -> bytes:
        from miio.protocol import Message  # noqa: PLC0415

        header = {"length": 0, "unknown": did >> 32, "device_id": (did & 0xFFFFFFFF).to_bytes(4, "big"),
                  "ts": datetime.datetime.fromtimestamp(stamp, datetime.UTC).replace(tzinfo=None)}
        return Message.build({"data": {"value": message}, "header": {"value": header}, "checksum": 0},
                             token=self.token)

    def seal_raw(self, plaintext: bytes, did: int, stamp: int) -> bytes:
        from miio.protocol import Utils  # noqa: PLC0415

        ciphertext = Utils.encrypt(plaintext, self.token)
        head = struct.pack(">HHQI", 0x2131, 32 + len(ciphertext), did, stamp)
        return head + Utils.md5(head + self.token + ciphertext) + ciphertext


class PibuddyCodec:
    """PiBuddy's own codec in the device role."""

    def __init__(self, token: bytes) -> None:
        from pibuddy.drivers.miot.codec import Token  # noqa: PLC0415

        self.token = Token(token)

    def hello_reply(self, did: int, stamp: int) -> bytes:
        from pibuddy.drivers.miot.codec import hello_reply  # noqa: PLC0415

        return hello_reply(did, stamp)

    def open(self, datagram: bytes) -> dict[str, Any] | None:
        from pibuddy.drivers.miot.codec import decode_message, open_packet  # noqa: PLC0415
        from pibuddy.drivers.miot.errors import MiioProtocolError  # noqa: PLC0415

        try:
            return decode_message(open_packet(datagram, self.token)[1])
        except MiioProtocolError:
            return None

    def seal_json(self, message: Any, did: int, stamp: int) -> bytes:
        from pibuddy.drivers.miot.codec import encode_message  # noqa: PLC0415

        return self.seal_raw(encode_message(message), did, stamp)

    def seal_raw(self, plaintext: bytes, did: int, stamp: int) -> bytes:
        from pibuddy.drivers.miot.codec import seal  # noqa: PLC0415

        return seal(plaintext, token=self.token, did=did, stamp=stamp)


@dataclass
class MiotState:
    """A device's MIoT behaviour over one spec: properties with values, actions that change them."""

    spec: Mapping[str, Any]
    values: dict[tuple[int, int], Any] = field(default_factory=dict)
    actions_run: list[tuple[int, int, list[Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for siid, piid, prop in self._properties():
            if "value-list" in prop:
                self.values[(siid, piid)] = prop["value-list"][0]["value"]
            elif prop["format"] == "bool":
                self.values[(siid, piid)] = False
            elif "value-range" in prop:
                self.values[(siid, piid)] = prop["value-range"][0]
            else:
                self.values[(siid, piid)] = "pibuddy" if prop["format"] == "string" else 0

    def _properties(self) -> list[tuple[int, int, dict[str, Any]]]:
        return [(s["iid"], p["iid"], p) for s in self.spec["services"] for p in s.get("properties", [])]

    def _prop(self, siid: int, piid: int) -> dict[str, Any] | None:
        return next((p for s, i, p in self._properties() if (s, i) == (siid, piid)), None)

    def get(self, item: Mapping[str, Any]) -> dict[str, Any]:
        prop = self._prop(item["siid"], item["piid"])
        answer = {"did": item.get("did"), "siid": item["siid"], "piid": item["piid"]}
        if prop is None:
            return {**answer, "code": -4003}
        if "read" not in prop["access"]:
            return {**answer, "code": -4001}
        return {**answer, "code": 0, "value": self.values[(item["siid"], item["piid"])]}

    def set(self, item: Mapping[str, Any]) -> dict[str, Any]:
        prop = self._prop(item["siid"], item["piid"])
        answer = {"did": item.get("did"), "siid": item["siid"], "piid": item["piid"]}
        if prop is None:
            return {**answer, "code": -4003}
        if "write" not in prop["access"]:
            return {**answer, "code": -4002}
        if not _valid(prop, item.get("value")):
            return {**answer, "code": -4005}
        self.values[(item["siid"], item["piid"])] = item["value"]
        return {**answer, "code": 0}

    def action(self, params: Mapping[str, Any]) -> dict[str, Any]:
        siid, aiid, ins = params.get("siid"), params.get("aiid"), params.get("in", [])
        service = next((s for s in self.spec["services"] if s["iid"] == siid), None)
        action = next((a for a in (service or {}).get("actions", []) if a["iid"] == aiid), None)
        if action is None:
            return {"code": -4003}
        if len(ins) != len(action["in"]):
            return {"code": -4006}
        self.actions_run.append((siid, aiid, list(ins)))
        if action["type"].split(":")[3] == "toggle":
            self.values[(siid, 1)] = not self.values[(siid, 1)]
        return {"code": 0, "out": []}


def _valid(prop: Mapping[str, Any], value: Any) -> bool:
    if prop["format"] == "bool":
        return isinstance(value, bool)
    if "value-list" in prop:
        return value in [v["value"] for v in prop["value-list"]]
    if "value-range" in prop:
        low, high = prop["value-range"][:2]
        return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
    return True


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, device: SimulatedDevice) -> None:
        self.device = device
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        for reply in self.device.answer(data):
            self.transport.sendto(reply, addr)


class SimulatedDevice:
    """One device on `host:port` (port 0 picks a free one).

    Args:
        spec: the spec fixture it serves.
        token: its 16-byte token.
        did: its device id (may exceed 32 bits).
        codec: "reference" (python-miio's Message) or "pibuddy".
    """

    def __init__(self, spec: Mapping[str, Any], *, token: bytes, did: int, model: str = "pibuddy.light.lamp1",
                 host: str = "127.0.0.1", port: int = 0, codec: str = "reference") -> None:
        self.state = MiotState(spec)
        self.did, self.model, self.host, self.port = did, model, host, port
        self.codec: Codec = ReferenceCodec(token) if codec == "reference" else PibuddyCodec(token)
        self.fault = Fault.NONE
        self.hellos = 0
        self.requests: list[dict[str, Any]] = []
        self._endpoint: _Endpoint | None = None

    async def start(self) -> SimulatedDevice:
        loop = asyncio.get_running_loop()
        transport, endpoint = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self), local_addr=(self.host, self.port))
        self._endpoint = endpoint
        self.port = transport.get_extra_info("sockname")[1]
        return self

    async def stop(self) -> None:
        if self._endpoint is not None and self._endpoint.transport is not None:
            self._endpoint.transport.close()

    async def __aenter__(self) -> SimulatedDevice:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def answer(self, data: bytes) -> list[bytes]:
        if self.fault is Fault.SILENT:
            return []
        if len(data) == 32:
            self.hellos += 1
            return [self.codec.hello_reply(self.did, STAMP + self.hellos)]
        request = self.codec.open(data)
        if request is None:
            return []
        self.requests.append(request)
        stamp = STAMP + self.hellos
        match self.fault:
            case Fault.NOT_JSON:
                truncated = b'{"id": ' + str(request["id"]).encode() + b', "result": ['
                return [self.codec.seal_raw(truncated, self.did, stamp)]
            case Fault.NOT_OBJECT:
                return [self.codec.seal_json("ok", self.did, stamp)]
            case Fault.OVERSIZED:
                return [self.codec.seal_json({"id": request["id"], "result": ["x" * 20_000]}, self.did, stamp)]
        return [self.codec.seal_json({"id": request["id"], **self._handle(request)}, self.did, stamp)]

    def _handle(self, request: Mapping[str, Any]) -> dict[str, Any]:
        method, params = request.get("method"), request.get("params")
        match method:
            case "miIO.info":
                return {"result": {"model": self.model, "fw_ver": "1.0.0", "hw_ver": "esp32",
                                   "mac": "28:6c:07:00:00:01", "netif": {"localIp": self.host}}}
            case "get_properties":
                return {"result": [self.state.get(item) for item in params]}
            case "set_properties":
                return {"result": [self.state.set(item) for item in params]}
            case "action":
                return {"result": self.state.action(params)}
        return {"error": {"code": -9999, "message": f"unknown method {method}"}}
