"""MIoT-Spec-V2: parsing the fixtures, spec -> controls and tool schemas, value checks, and the spec cache
(checksummed files, fetched from a local spec server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pibuddy.drivers.miot.controls import Controls
from pibuddy.drivers.miot.spec import SpecError, parse_spec
from pibuddy.drivers.miot.spec_store import SpecStore
from pibuddy.errors import DeviceUnreachable, InvalidArguments, NotFound
from tests.peers.miio_device import load_spec

LAMP_URN = "urn:miot-spec-v2:device:light:0000A001:pibuddy-lamp1:1"
FAN_URN = "urn:miot-spec-v2:device:fan:0000A005:pibuddy-fan1:1"


def test_lamp_controls_have_real_names_ranges_and_units() -> None:
    controls = Controls(parse_spec(load_spec("lamp")))
    assert controls.spec.kind == "light"
    assert controls.names == ["on", "brightness", "color_temperature", "toggle"]  # device-information left out
    assert controls.describe() == "on on/off, brightness 1-100 %, color_temperature 2700-6500 K, toggle (action)"


def test_fan_modes_become_named_choices_and_clashing_names_get_the_service_prefix() -> None:
    controls = Controls(parse_spec(load_spec("fan")))
    assert controls.names == ["on", "fan_level", "mode", "off_delay_time", "toggle", "turn_off_later",
                              "indicator_light_on"]
    mode = controls.find("Mode")
    assert mode is not None
    assert mode.prop is not None
    assert [c.name for c in mode.prop.choices] == ["straight_wind", "natural_wind", "sleep"]
    assert [c.name for c in controls.readable] == ["on", "fan_level", "mode", "indicator_light_on"]  # write-only out


def test_tool_schema_from_the_spec() -> None:
    schema = Controls(parse_spec(load_spec("fan"))).tool_schema()
    assert schema["properties"]["on"]["type"] == "boolean"
    assert schema["properties"]["mode"]["enum"] == ["straight_wind", "natural_wind", "sleep"]
    assert schema["properties"]["off_delay_time"] | {"description": ""} == {
        "type": "integer", "minimum": 0, "maximum": 480, "description": ""}
    assert schema["properties"]["action"]["enum"] == ["toggle"]  # actions needing inputs go through miot_control
    assert "required" not in schema


@pytest.mark.parametrize(("name", "value", "wire"), [
    ("on", "on", True), ("on", False, False), ("on", "关", False), ("on", 1, True),
    ("brightness", 40, 40), ("brightness", "55%", 55), ("brightness", 40.4, 40),
    ("color_temperature", 4000.0, 4000),
])
def test_values_are_converted_for_the_wire(name: str, value: Any, wire: Any) -> None:
    control = Controls(parse_spec(load_spec("lamp"))).find(name)
    assert control is not None
    assert control.prop is not None
    result = control.prop.to_wire(value, device="desk lamp")
    assert result == wire
    assert type(result) is type(wire)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("brightness", 0, "brightness of desk lamp goes from 1 to 100 %"),
    ("brightness", "bright", "brightness of desk lamp takes a number"),
    ("color_temperature", 9000, "goes from 2700 to 6500 K"),
    ("on", "maybe", "on of desk lamp is on or off"),
])
def test_invalid_values_are_spoken_errors(name: str, value: Any, message: str) -> None:
    control = Controls(parse_spec(load_spec("lamp"))).find(name)
    assert control is not None
    assert control.prop is not None
    with pytest.raises(InvalidArguments, match=message):
        control.prop.to_wire(value, device="desk lamp")


def test_enum_values_by_name_or_number_and_spoken_back() -> None:
    mode = Controls(parse_spec(load_spec("fan"))).find("mode")
    assert mode is not None
    assert mode.prop is not None
    assert mode.prop.to_wire("Natural Wind", device="fan") == 1
    assert mode.prop.to_wire(2, device="fan") == 2
    assert mode.prop.spoken(2) == "sleep"
    with pytest.raises(InvalidArguments, match=r"straight_wind\|natural_wind\|sleep"):
        mode.prop.to_wire("turbo", device="fan")


def test_synonyms_find_controls() -> None:
    controls = Controls(parse_spec(load_spec("lamp")))
    assert [controls.find(n).name for n in ("power", "colour temperature", "亮度", "set_brightness")] == [  # type: ignore[union-attr]
        "on", "color_temperature", "brightness", "brightness"]
    assert controls.find("volume") is None


@pytest.mark.parametrize("document", [
    [], {"type": "urn:x"}, {"type": "urn:x", "services": [{"iid": "one", "type": "urn:s"}]},
    {"type": "urn:x", "services": [{"iid": 2, "type": "urn:a:service:s:1", "properties": [
        {"iid": 1, "type": "urn:a:property:p:1", "format": "uint8", "access": ["read"], "value-range": [1]}]}]},
])
def test_malformed_specs_raise_spec_error(document: Any) -> None:
    with pytest.raises(SpecError):
        parse_spec(document)


class SpecServer:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.documents = {LAMP_URN: load_spec("lamp"), FAN_URN: load_spec("fan")}
        self.server: TestServer | None = None

    async def instance(self, request: web.Request) -> web.Response:
        urn = request.query.get("type", "")
        self.requests.append(urn)
        if urn not in self.documents:
            return web.Response(status=404)
        return web.json_response(self.documents[urn])

    async def releases(self, request: web.Request) -> web.Response:
        self.requests.append("releases")
        return web.json_response({"instances": [
            {"model": "pibuddy.light.lamp1", "version": 1, "type": LAMP_URN[:-1] + "0", "status": "released"},
            {"model": "pibuddy.light.lamp1", "version": 2, "type": LAMP_URN, "status": "released"},
            {"model": "other.fan.x", "version": 1, "type": FAN_URN, "status": "released"}]})

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def spec_server() -> AsyncIterator[SpecServer]:
    served = SpecServer()
    app = web.Application()
    app.router.add_get("/miot-spec-v2/instance", served.instance)
    app.router.add_get("/miot-spec-v2/instances", served.releases)
    served.server = TestServer(app, host="127.0.0.1")
    await served.server.start_server()
    yield served
    await served.server.close()


async def test_specs_are_fetched_once_then_served_from_disk(tmp_path: Path, spec_server: SpecServer) -> None:
    store = SpecStore(tmp_path / "specs", base_url=spec_server.url)
    assert (await store.get(LAMP_URN)).kind == "light"
    fresh = SpecStore(tmp_path / "specs", base_url=spec_server.url)  # a new process: only the disk
    assert fresh.cached(LAMP_URN) is not None
    assert (await fresh.get(LAMP_URN)).kind == "light"
    assert spec_server.requests == [LAMP_URN]
    assert (await fresh.get(LAMP_URN, refresh=True)).kind == "light"
    assert spec_server.requests == [LAMP_URN, LAMP_URN]


async def test_a_tampered_cache_file_is_a_miss_and_refetched(tmp_path: Path, spec_server: SpecServer) -> None:
    store = SpecStore(tmp_path / "specs", base_url=spec_server.url)
    await store.get(FAN_URN)
    [path] = (tmp_path / "specs").glob("*.json")
    wrapper = json.loads(path.read_text())
    wrapper["document"]["services"][1]["properties"][0]["access"] = ["read"]  # someone edits the file
    path.write_text(json.dumps(wrapper))
    fresh = SpecStore(tmp_path / "specs", base_url=spec_server.url)
    assert fresh.cached(FAN_URN) is None
    assert Controls(await fresh.get(FAN_URN)).find("on").prop.writable  # type: ignore[union-attr]
    path.write_text("{truncated")
    assert SpecStore(tmp_path / "specs", base_url=spec_server.url).cached(FAN_URN) is None


async def test_unknown_urns_offline_and_unreachable_servers_are_typed(tmp_path: Path, spec_server: SpecServer) -> None:
    with pytest.raises(NotFound, match="does not know"):
        await SpecStore(tmp_path, base_url=spec_server.url).get("urn:miot-spec-v2:device:nope:0:x:1")
    with pytest.raises(NotFound, match="fetching specs is off"):
        await SpecStore(tmp_path, base_url=spec_server.url, fetch=False).get(LAMP_URN)
    with pytest.raises(DeviceUnreachable, match="cannot reach the spec server"):
        await SpecStore(tmp_path, base_url="http://127.0.0.1:9", timeout=1).get(LAMP_URN)


async def test_model_to_urn_picks_the_newest_release(tmp_path: Path, spec_server: SpecServer) -> None:
    store = SpecStore(tmp_path, base_url=spec_server.url)
    assert await store.urn_for_model("pibuddy.light.lamp1") == LAMP_URN
    assert await store.urn_for_model("unknown.model.x") is None
    assert spec_server.requests == ["releases"]  # the release list is cached too
