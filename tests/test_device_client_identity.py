"""Device identity on disk, interface discovery, persisted OTA settings and the OTA view of the Pi."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import uuid
from pathlib import Path

import pytest

from pibuddy import netinfo
from pibuddy.config import Config
from pibuddy.device_client.identity import IDENTITY_FILE, Identity, IdentityError, load_identity
from pibuddy.device_client.settings import UPSTREAM_FILE, UpstreamSettingsStore
from pibuddy.device_client.sysinfo import application_sha256, build_ota_device
from pibuddy.statedir import StateDir
from pibuddy.xiaozhi.ota_response import OtaResponse, parse_response

ROUTE_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
ETH0_MAC = "dc:a6:32:00:00:01"
WLAN0_MAC = "dc:a6:32:00:00:02"


class FakeNet:
    """A /sys/class/net and /proc/net/route of our choosing."""

    def __init__(self, root: Path) -> None:
        self.sys = root / "sys-class-net"
        self.route = root / "route"
        self.sys.mkdir()
        self.set_default_routes()

    def add(self, name: str, mac: str, *, kind: str = "1", physical: bool = True) -> None:
        base = self.sys / name
        base.mkdir()
        (base / "address").write_text(mac + "\n")
        (base / "type").write_text(kind + "\n")
        if physical:
            (base / "device").mkdir()

    def set_default_routes(self, *routes: tuple[str, int]) -> None:
        lines = [f"{name}\t00000000\t0101A8C0\t0003\t0\t0\t{metric}\t00000000\t0\t0\t0\n" for name, metric in routes]
        lines.append("eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")  # a LAN route, not default
        self.route.write_text(ROUTE_HEADER + "".join(lines))

    def load(self, state: StateDir, configured: str | None = None) -> Identity:
        return load_identity(state, configured_device_id=configured, sys_class_net=self.sys, proc_route=self.route)


@pytest.fixture
def net(tmp_path: Path) -> FakeNet:
    fake = FakeNet(tmp_path)
    fake.add("lo", "00:00:00:00:00:00", kind="772", physical=False)
    fake.add("eth0", ETH0_MAC.upper())
    fake.add("wlan0", WLAN0_MAC)
    return fake


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state")


def stored(state: StateDir) -> dict[str, str]:
    return json.loads((state.path / IDENTITY_FILE).read_text())


# --- Identity ----------------------------------------------------------------------------------


def test_first_start_creates_a_private_identity_from_the_default_route_interface(
    net: FakeNet, state: StateDir
) -> None:
    net.set_default_routes(("eth0", 600), ("wlan0", 100))
    identity = net.load(state)
    assert (identity.device_id, identity.device_id_source) == (WLAN0_MAC, "wlan0")  # lowest metric wins
    assert uuid.UUID(identity.client_id).version == 4
    assert re.fullmatch(r"SN-[0-9a-f]{29}", identity.serial_number)
    assert len(identity.hmac_key) == 32
    path = state.path / IDENTITY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o700
    assert stored(state) == {
        "device_id": WLAN0_MAC,
        "device_id_source": "wlan0",
        "client_id": identity.client_id,
        "serial_number": identity.serial_number,
        "hmac_key": identity.hmac_key.hex(),
    }
    assert identity.hmac_key.hex() not in repr(identity)


def test_identity_is_announced_when_created_not_on_every_reload(
    net: FakeNet, state: StateDir, caplog: pytest.LogCaptureFixture
) -> None:
    """The upstream service reloads the identity on each retry; the log says it once."""
    with caplog.at_level(logging.INFO, logger="pibuddy.device_client.identity"):
        identity = net.load(state)
        net.load(state)
        net.load(state)
    announced = [r for r in caplog.records if r.levelno >= logging.INFO and identity.client_id in r.getMessage()]
    assert len(announced) == 1


def test_identity_is_stable_across_reloads_and_route_changes(net: FakeNet, state: StateDir) -> None:
    net.set_default_routes(("wlan0", 100))
    first = net.load(state)
    before = (state.path / IDENTITY_FILE).read_bytes()
    net.set_default_routes(("eth0", 0))  # Ethernet plugged in: the id must not change
    second = net.load(state)
    assert second == first
    assert (state.path / IDENTITY_FILE).read_bytes() == before


def test_config_device_id_overrides_without_replacing_the_stored_one(net: FakeNet, state: StateDir) -> None:
    net.set_default_routes(("eth0", 0))
    identity = net.load(state, configured="02:00:00:00:00:99")
    assert (identity.device_id, identity.device_id_source) == ("02:00:00:00:00:99", "config")
    assert stored(state)["device_id"] == ETH0_MAC
    assert net.load(state).device_id == ETH0_MAC


def test_without_a_default_route_a_physical_interface_beats_a_virtual_one(tmp_path: Path, state: StateDir) -> None:
    fake = FakeNet(tmp_path)
    fake.add("br0", "02:42:ac:11:00:01", physical=False)  # sorts first but is virtual
    fake.add("eth0", ETH0_MAC)
    assert fake.load(state).device_id == ETH0_MAC


def test_no_usable_mac_means_a_generated_locally_administered_one(
    tmp_path: Path, state: StateDir, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeNet(tmp_path)
    fake.add("lo", "00:00:00:00:00:00", kind="772", physical=False)
    fake.add("tun0", "00:00:00:00:00:00", kind="65534", physical=False)
    with caplog.at_level(logging.WARNING):
        identity = fake.load(state)
    first_octet = int(identity.device_id[:2], 16)
    assert first_octet & 0x02  # locally administered
    assert not first_octet & 0x01  # unicast
    assert identity.device_id_source == "generated"
    assert "locally administered" in caplog.text
    assert fake.load(state).device_id == identity.device_id  # generated once, then kept


def test_corrupt_identity_is_moved_aside_and_regenerated_with_a_warning(
    net: FakeNet, state: StateDir, caplog: pytest.LogCaptureFixture
) -> None:
    state.write_text(IDENTITY_FILE, '{"device_id": "dc:a6:32:00:00:01", "client_id": ')
    with caplog.at_level(logging.WARNING):
        identity = net.load(state)
    assert "damaged" in caplog.text
    assert (state.path / (IDENTITY_FILE + ".corrupt")).read_text().startswith('{"device_id"')
    assert stored(state)["client_id"] == identity.client_id
    assert stat.S_IMODE(os.stat(state.path / IDENTITY_FILE).st_mode) == 0o600


@pytest.mark.parametrize("raw", [b"[1, 2]", b"null", b"\x00\x01garbage", b"\xff\xfe not utf-8", b""])
def test_identity_that_is_not_an_object_is_regenerated(net: FakeNet, state: StateDir, raw: bytes) -> None:
    state.ensure()
    (state.path / IDENTITY_FILE).write_bytes(raw)
    identity = net.load(state)
    assert stored(state)["device_id"] == identity.device_id


def test_only_the_damaged_fields_are_regenerated(net: FakeNet, state: StateDir,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    original = net.load(state)
    data = stored(state) | {"hmac_key": "not-hex", "future_field": 1}
    state.write_json(IDENTITY_FILE, data)
    with caplog.at_level(logging.WARNING):
        repaired = net.load(state)
    assert "invalid hmac_key" in caplog.text
    assert (repaired.client_id, repaired.serial_number, repaired.device_id) == (
        original.client_id, original.serial_number, original.device_id)
    assert repaired.hmac_key != original.hmac_key
    assert stored(state)["future_field"] == 1  # unknown keys from a newer version survive


def test_a_pinned_mac_missing_here_warns_about_a_cloned_card(net: FakeNet, state: StateDir,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    net.load(state)
    state.write_json(IDENTITY_FILE, stored(state) | {"device_id": "b8:27:eb:00:00:07", "device_id_source": "eth0"})
    with caplog.at_level(logging.WARNING):
        assert net.load(state).device_id == "b8:27:eb:00:00:07"
    assert "cloned" in caplog.text


def test_unreadable_state_dir_is_a_typed_error(tmp_path: Path, net: FakeNet) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(IdentityError, match="cannot read"):
        net.load(StateDir(blocker))


# --- Interface discovery -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DC-A6-32-01-02-03\n", "dc:a6:32:01:02:03"),
        ("dc:a6:32:01:02:03", "dc:a6:32:01:02:03"),
        ("00:00:00:00:00:00", None),
        ("ff:ff:ff:ff:ff:ff", None),
        ("01:00:5e:00:00:01", None),
        ("dc:a6:32:01:02", None),
        ("", None),
    ],
)
def test_normalize_mac(text: str, expected: str | None) -> None:
    assert netinfo.normalize_mac(text) == expected


def test_malformed_route_lines_are_skipped(tmp_path: Path) -> None:
    route = tmp_path / "route"
    lines = ["short line", "wlan0\tZZZZ\t0\t0003\t0\t0\t0\t00000000", "wlan1\t00000000\t0\t0003\t0\t0\t5\t0"]
    route.write_text(ROUTE_HEADER + "\n".join(lines) + "\n")
    assert netinfo.default_route_interfaces(route) == ["wlan1"]
    assert netinfo.default_route_interfaces(tmp_path / "missing") == []


def test_this_machine_has_a_primary_interface_in_canonical_form() -> None:
    interface = netinfo.primary_interface()
    if interface is None:
        pytest.skip("this machine has no interface with a hardware MAC")
    assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", interface.mac)
    assert interface.mac in netinfo.local_macs()


def test_loopback_ipv4_address() -> None:
    assert netinfo.ipv4_address("lo") == "127.0.0.1"
    assert netinfo.ipv4_address("no-such-if0") is None


# --- The OTA view of the Pi --------------------------------------------------------------------


def test_ota_device_from_config_identity_and_device_tree(tmp_path: Path, net: FakeNet, state: StateDir) -> None:
    tree = tmp_path / "device-tree"
    tree.mkdir()
    (tree / "model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    (tree / "compatible").write_bytes(b"raspberrypi,5-model-b\x00brcm,bcm2712\x00")
    identity = net.load(state)
    config = Config.model_validate({"device": {"language": "en-US"}, "upstream": {"board_type": "pibuddy-test"}})
    device = build_ota_device(config, identity, device_tree=tree)
    assert (device.board_name, device.chip_model_name) == ("Raspberry Pi 5 Model B Rev 1.0", "bcm2712")
    assert (device.board_type, device.language, device.app_name) == ("pibuddy-test", "en-US", "pibuddy")
    assert device.activation_version == 1
    assert device.serial_number is None
    assert device.elf_sha256 == application_sha256()
    v2 = build_ota_device(Config.model_validate({"upstream": {"activation_version": 2}}), identity,
                          device_tree=tmp_path / "absent")
    assert (v2.serial_number, v2.hmac_key) == (identity.serial_number, identity.hmac_key)
    assert v2.board_name == "pibuddy"  # no device tree: the board type stands in
    assert v2.chip_model_name  # the CPU architecture off a Pi


def test_application_sha256_is_a_stable_hex_digest() -> None:
    digest = application_sha256()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    application_sha256.cache_clear()
    assert application_sha256() == digest


# --- Persisted OTA settings --------------------------------------------------------------------

_BOTH = parse_response(
    b'{"mqtt":{"endpoint":"m.example:1883","client_id":"GID_x@@@a_b@@@c","password":"pw-secret","keepalive":60},'
    b'"websocket":{"url":"ws://w.example/xiaozhi/v1/","token":"tok-secret","version":1}}'
)


def test_settings_round_trip_privately(state: StateDir) -> None:
    store = UpstreamSettingsStore(state)
    assert store.load() == OtaResponse()
    assert store.merge(_BOTH) is _BOTH
    assert stat.S_IMODE(os.stat(state.path / UPSTREAM_FILE).st_mode) == 0o600
    reloaded = UpstreamSettingsStore(state).load()
    assert (reloaded.mqtt, reloaded.websocket) == (_BOTH.mqtt, _BOTH.websocket)
    assert reloaded.mqtt is not None
    assert dict(reloaded.mqtt.members) == dict(_BOTH.mqtt.members)  # type: ignore[union-attr]


def test_an_answer_without_transports_uses_the_stored_ones(state: StateDir) -> None:
    store = UpstreamSettingsStore(state)
    store.merge(_BOTH)
    filled = store.merge(parse_response(b'{"firmware":{"version":"1.0","url":""}}'))
    assert (filled.mqtt, filled.websocket) == (_BOTH.mqtt, _BOTH.websocket)
    assert filled.firmware is not None


def test_a_new_answer_replaces_what_was_stored(state: StateDir) -> None:
    store = UpstreamSettingsStore(state)
    store.merge(_BOTH)
    store.merge(parse_response(b'{"websocket":{"url":"wss://new.example/v1/"}}'))
    reloaded = store.load()
    assert reloaded.mqtt is None
    assert reloaded.websocket is not None
    assert reloaded.websocket.url == "wss://new.example/v1/"


def test_damaged_settings_are_ignored_with_a_warning(state: StateDir, caplog: pytest.LogCaptureFixture) -> None:
    state.write_text(UPSTREAM_FILE, "{not json")
    with caplog.at_level(logging.WARNING):
        assert UpstreamSettingsStore(state).load() == OtaResponse()
    assert "damaged" in caplog.text
    (state.path / UPSTREAM_FILE).write_bytes(b"\xff\xfe")
    assert UpstreamSettingsStore(state).load() == OtaResponse()
    state.write_json(UPSTREAM_FILE, {"mqtt": {"endpoint": 5}, "websocket": {"url": "ws://ok/"}})
    partial = UpstreamSettingsStore(state).load()
    assert partial.mqtt is None
    assert partial.websocket is not None
