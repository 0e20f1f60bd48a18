"""PiBuddy's miIO client against a device simulator built on python-miio's codec, and python-miio's client
against a device built on PiBuddy's codec, all over real UDP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
from miio import MiotDevice  # GPL: a test-time reference peer only

from pibuddy.drivers.miot.codec import PORT, Token
from pibuddy.drivers.miot.discovery import discover
from pibuddy.drivers.miot.errors import BadReply, DeviceRejected
from pibuddy.drivers.miot.inventory import Device
from pibuddy.drivers.miot.lan import MiioClient
from pibuddy.drivers.miot.lan_transport import LanTransport
from pibuddy.errors import DeviceUnreachable, TokenInvalid
from tests.peers.miio_device import Fault, SimulatedDevice, load_spec
from tests.peers.ports import free_port

TOKEN = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
LAMP_DID = 0x1_0000_0002  # over 32 bits, as newer devices have


@pytest.fixture
async def lamp() -> AsyncIterator[SimulatedDevice]:
    async with SimulatedDevice(load_spec("lamp"), token=TOKEN, did=LAMP_DID) as device:
        yield device


def _client(device: SimulatedDevice, token: bytes = TOKEN, timeout: float = 0.2) -> MiioClient:
    return MiioClient(device.host, Token(token), port=device.port, timeout=timeout, name="the desk lamp")


async def test_info_handshakes_and_learns_the_64_bit_did(lamp: SimulatedDevice) -> None:
    async with _client(lamp) as client:
        info = await client.call("miIO.info")
    assert info["model"] == "pibuddy.light.lamp1"
    assert client.did == LAMP_DID
    assert lamp.hellos == 1


async def test_set_really_changes_state_and_get_reads_it_back(lamp: SimulatedDevice) -> None:
    device = Device("desk lamp", ip=lamp.host, token=Token(TOKEN))
    transport = LanTransport(timeout=0.2, port=lamp.port)
    try:
        written = await transport.set_properties(device, [(2, 1, True), (2, 2, 40)])
        read = await transport.get_properties(device, [(2, 1), (2, 2), (2, 3)])
    finally:
        await transport.close()
    assert [r.code for r in written] == [0, 0]
    assert lamp.state.values[(2, 1)] is True
    assert [(r.code, r.value) for r in read] == [(0, True), (0, 40), (0, 2700)]


async def test_per_item_codes_come_back_for_a_bad_value(lamp: SimulatedDevice) -> None:
    transport = LanTransport(timeout=0.2, port=lamp.port)
    try:
        results = await transport.set_properties(Device("desk lamp", ip=lamp.host, token=Token(TOKEN)), [(2, 2, 500)])
    finally:
        await transport.close()
    assert results[0].code == -4005
    assert lamp.state.values[(2, 2)] == 1


async def test_more_than_15_properties_go_in_batches(lamp: SimulatedDevice) -> None:
    transport = LanTransport(timeout=0.2, port=lamp.port)
    pairs = [(2, 1)] * 16
    try:
        results = await transport.get_properties(Device("desk lamp", ip=lamp.host, token=Token(TOKEN)), pairs)
    finally:
        await transport.close()
    assert len(results) == 16
    assert [len(r["params"]) for r in lamp.requests] == [15, 1]


async def test_action_runs_on_the_device(lamp: SimulatedDevice) -> None:
    transport = LanTransport(timeout=0.2, port=lamp.port)
    try:
        result = await transport.action(Device("desk lamp", ip=lamp.host, token=Token(TOKEN)), 2, 1, [])
    finally:
        await transport.close()
    assert result.code == 0
    assert lamp.state.actions_run == [(2, 1, [])]
    assert lamp.state.values[(2, 1)] is True  # toggled from off


async def test_wrong_token_is_diagnosed_from_hello_without_replies(lamp: SimulatedDevice) -> None:
    async with _client(lamp, token=bytes(16)) as client:
        with pytest.raises(TokenInvalid, match="token is wrong"):
            await client.call("miIO.info")
    assert lamp.requests == []  # the device dropped every packet, as real ones do
    assert lamp.hellos == 3  # one handshake per try


async def test_silent_device_is_offline(lamp: SimulatedDevice) -> None:
    lamp.fault = Fault.SILENT
    async with _client(lamp) as client:
        with pytest.raises(DeviceUnreachable, match="does not answer"):
            await client.call("miIO.info")


async def test_nobody_listening_fails_fast() -> None:
    client = MiioClient("127.0.0.1", Token(TOKEN), port=free_port(socket.SOCK_DGRAM), timeout=2.0, name="the desk lamp")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with client:
        with pytest.raises(DeviceUnreachable):
            await client.call("miIO.info")
    assert loop.time() - started < 1.0  # ICMP port unreachable, not three timeouts


@pytest.mark.parametrize("fault", [Fault.NOT_JSON, Fault.NOT_OBJECT, Fault.OVERSIZED])
async def test_unreadable_replies_become_bad_reply(lamp: SimulatedDevice, fault: Fault,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    lamp.fault = fault
    async with _client(lamp) as client:
        with pytest.raises(BadReply, match="cannot read"):
            await client.call("miIO.info")
    assert "dropped a datagram from the desk lamp" in caplog.text
    lamp.fault = Fault.NONE  # the client keeps working once the device behaves
    async with _client(lamp) as client:
        assert (await client.call("miIO.info"))["model"] == "pibuddy.light.lamp1"


async def test_device_error_replies_are_rejections(lamp: SimulatedDevice) -> None:
    async with _client(lamp) as client:
        with pytest.raises(DeviceRejected, match="unknown method"):
            await client.call("set_power", ["on"])


async def test_a_late_reply_to_an_abandoned_id_is_ignored(lamp: SimulatedDevice) -> None:
    async with _client(lamp) as client:
        await client.call("miIO.info")
        client._on_datagram(lamp.codec.seal_json({"id": 424242, "result": "late"}, lamp.did, 1))
        assert (await client.call("miIO.info"))["model"] == "pibuddy.light.lamp1"


async def test_discovery_finds_devices_on_listed_addresses() -> None:
    fan_spec = load_spec("fan")
    async with SimulatedDevice(load_spec("lamp"), token=TOKEN, did=11, host="127.0.0.1") as one:
        try:
            two = await SimulatedDevice(fan_spec, token=TOKEN, did=22, host="127.0.0.2", port=one.port).start()
        except OSError:
            pytest.skip("127.0.0.2 is not usable on this host")
        try:
            found = await discover(["127.0.0.1", "127.0.0.2"], port=one.port, duration=0.3)
        finally:
            await two.stop()
    assert [(f.ip, f.did, f.token) for f in found] == [("127.0.0.1", 11, None), ("127.0.0.2", 22, None)]


@contextlib.contextmanager
def _port_54321_free() -> object:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", PORT))
        except OSError:
            pytest.skip("UDP 54321 on 127.0.0.1 is taken; python-miio's client only talks to that port")
    yield


async def test_python_miio_client_drives_a_device_built_on_our_codec() -> None:
    with _port_54321_free():
        async with SimulatedDevice(load_spec("lamp"), token=TOKEN, did=LAMP_DID, port=PORT, codec="pibuddy") as dev:

            def drive() -> tuple[object, ...]:
                client = MiotDevice("127.0.0.1", TOKEN.hex(), timeout=2, mapping={})
                info = client.info()
                client.set_property_by(2, 2, 77)
                got = client.get_property_by(2, 2)
                acted = client.call_action_by(2, 1)
                return info.model, got, acted

            model, got, acted = await asyncio.to_thread(drive)
    assert model == "pibuddy.light.lamp1"
    assert got == [{"did": "2-2", "siid": 2, "piid": 2, "code": 0, "value": 77}]
    assert acted == {"code": 0, "out": []}
    assert dev.state.values[(2, 1)] is True
