"""The C packet path (`_udp_packet`) against its pure-Python twin (`udp_packet`).

`TestNativeUdpCodec` reruns the twin's whole vector table on the extension (websockets' SpeedupsTests);
the rest compares the two directly: identical bytes, each opens the other's output, the same exception
type and message on malformed input, the fuzz corpus replayed through both, the choice between them,
and the install's fallback when the extension cannot be built.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import os
import pickle
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from setuptools import Distribution, Extension

from pibuddy.config import Config
from pibuddy.probe import ProbeResult
from pibuddy.wiring import check
from pibuddy.xiaozhi import udp_codec, udp_packet
from pibuddy.xiaozhi.errors import LocalProtocolError, MalformedPacket
from tests import test_xiaozhi_udp_codec as twin_tests
from tests.conftest import REPO_ROOT

try:
    from pibuddy.xiaozhi import _udp_packet as native
except ImportError as exc:
    native = None
    NATIVE_MISSING = f"the C extension is not built ({exc}); ./setup.sh --dev builds it"
else:
    NATIVE_MISSING = ""

needs_native = pytest.mark.skipif(native is None, reason=NATIVE_MISSING)
KEY = twin_tests.VECTOR_KEY
DATAGRAM = twin_tests.VECTOR_HEADER + twin_tests.VECTOR_CIPHERTEXT
u32 = st.integers(0, 2**32 - 1)


def _load(path: Path) -> ModuleType:
    """A script that is not in a package (scripts/, setup.py), imported by its path."""
    spec = importlib.util.spec_from_file_location(f"pibuddy_test_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fuzz_packet = _load(REPO_ROOT / "scripts" / "fuzz_packet.py")


def outcome(call: Callable[[], object]) -> tuple[object, ...]:
    """A call's result, or the type and message of what it raised (any exception)."""
    try:
        return ("result", call())
    except Exception as exc:
        return (type(exc), str(exc))


def same_on_both(call: Callable[[ModuleType], object]) -> tuple[object, ...]:
    """Run `call` on the extension and the twin, assert identical outcomes, return the twin's."""
    assert native is not None
    twin = outcome(lambda: call(udp_packet))
    assert outcome(lambda: call(native)) == twin
    return twin


def test_native_extension_is_built_when_required() -> None:
    if os.environ.get("PIBUDDY_REQUIRE_NATIVE") != "1":
        pytest.skip("PIBUDDY_REQUIRE_NATIVE is not set (scripts/test.sh sets it)")
    assert native is not None, NATIVE_MISSING


@needs_native
class TestNativeUdpCodec(twin_tests.TestUdpCodec):
    codec: ClassVar[ModuleType] = native  # type: ignore[assignment]


# ---- the two implementations side by side ------------------------------------------------------------


@st.composite
def near_datagrams(draw: st.DrawFn) -> bytes:
    """Random bytes, or a valid datagram with its type, length field or size disturbed."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=48))
    data = bytearray(udp_packet.seal(draw(st.binary(min_size=16, max_size=16)), draw(u32), draw(u32), draw(u32),
                                     draw(st.binary(max_size=64))))
    if draw(st.booleans()):
        data[0] = draw(st.sampled_from([0x00, 0x01, 0x02, 0xFF]))
    if draw(st.booleans()):
        data[2:4] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=8))


@st.composite
def near_frames(draw: st.DrawFn) -> bytes:
    """A chat-server frame with any first 8 bytes, a declared length near or far from the truth."""
    payload = draw(st.binary(max_size=64))
    declared = draw(st.one_of(st.just(len(payload)), st.integers(0, 80), u32))
    frame = draw(st.binary(min_size=8, max_size=8)) + draw(u32).to_bytes(4, "big") + declared.to_bytes(4, "big")
    return (frame + payload)[:draw(st.integers(0, 16 + len(payload)))] + draw(st.binary(max_size=8))


@needs_native
class TestSideBySide:
    @settings(max_examples=200, deadline=None)
    @given(key=st.binary(min_size=16, max_size=16), ssrc=u32, timestamp=u32, sequence=u32,
           payload=st.binary(max_size=1500))
    def test_identical_datagrams_each_opens_the_other(self, key: bytes, ssrc: int, timestamp: int, sequence: int,
                                                      payload: bytes) -> None:
        assert native is not None
        ours = native.seal(key, ssrc, timestamp, sequence, payload)
        assert ours == udp_packet.seal(key, ssrc, timestamp, sequence, payload)
        expected = udp_packet.AudioPacket(ssrc, timestamp, sequence, payload)
        assert udp_packet.open_packet(key, ours) == native.open_packet(key, ours) == expected

    @settings(max_examples=150, deadline=None)
    @given(key=st.binary(min_size=16, max_size=16), datagram=near_datagrams(), new_ssrc=u32, new_seq=u32)
    def test_same_verdict_on_any_datagram(self, key: bytes, datagram: bytes, new_ssrc: int, new_seq: int) -> None:
        same_on_both(lambda c: c.open_packet(key, datagram))
        same_on_both(lambda c: c.open_packet(key, datagram, exact_length=False))
        verdict = same_on_both(lambda c: c.udp_to_ws(key, datagram))
        if verdict[0] == "result":
            _, frame = verdict[1]
            same_on_both(lambda c: c.ws_to_udp(key, frame, new_ssrc, new_seq))
        else:
            assert verdict[0] is MalformedPacket

    @settings(max_examples=150, deadline=None)
    @given(key=st.binary(min_size=16, max_size=16), frame=near_frames(), ssrc=u32, sequence=u32)
    def test_same_verdict_on_any_frame(self, key: bytes, frame: bytes, ssrc: int, sequence: int) -> None:
        verdict = same_on_both(lambda c: c.ws_to_udp(key, frame, ssrc, sequence))
        assert verdict[0] in ("result", MalformedPacket)

    @pytest.mark.parametrize(
        ("call", "error", "reason"),
        [
            (lambda c: c.open_packet(KEY, b""), MalformedPacket, "UDP packet too short: 0 bytes"),
            (lambda c: c.open_packet(KEY, DATAGRAM[:15]), MalformedPacket, "UDP packet too short: 15 bytes"),
            (lambda c: c.open_packet(KEY, b"\x00" + DATAGRAM[1:]), MalformedPacket, "wrong type 0x00"),
            (lambda c: c.open_packet(KEY, b"\xab" + DATAGRAM[1:]), MalformedPacket, "wrong type 0xab"),
            (lambda c: c.open_packet(KEY, DATAGRAM + b"x"), MalformedPacket, "header says 20 bytes, packet carries 21"),
            (lambda c: c.open_packet(KEY, DATAGRAM[:-2], exact_length=False), MalformedPacket, "carries 18"),
            (lambda c: c.udp_to_ws(KEY, DATAGRAM[:16]), MalformedPacket, "header says 20 bytes, packet carries 0"),
            (lambda c: c.open_packet(bytes(15), DATAGRAM), LocalProtocolError, "key must be 16 bytes, got 15"),
            (lambda c: c.open_packet(bytes(15), DATAGRAM[:3]), MalformedPacket, "too short: 3 bytes"),
            (lambda c: c.ws_to_udp(KEY, bytes(15), 1, 1), MalformedPacket, "gateway frame too short: 15 bytes"),
            (lambda c: c.ws_to_udp(KEY, bytes(12) + b"\xff" * 4, 1, 1), MalformedPacket,
             "declares 4294967295 bytes, over 65535"),
            (lambda c: c.ws_to_udp(KEY, bytes(12) + b"\x00\x00\x00\x05abc", 1, 1), MalformedPacket,
             "declares 5 bytes but carries 3"),
            (lambda c: c.ws_to_udp(KEY, bytes(15), -1, 1), MalformedPacket, "too short"),
            (lambda c: c.ws_to_udp(KEY, bytes(16), 2**32, 1), LocalProtocolError,
             "UDP header field ssrc out of range 0..4294967295: 4294967296"),
            (lambda c: c.ws_to_udp(bytes(3), bytes(16), 1, -5), LocalProtocolError, "field sequence out of range"),
            (lambda c: c.ws_to_udp(bytes(3), bytes(16), 1, 1), LocalProtocolError, "got 3"),
            (lambda c: c.seal(KEY, 1, 0, 1, bytes(65536)), LocalProtocolError,
             "UDP header field payload_len out of range 0..65535: 65536"),
            (lambda c: c.seal(bytes(32), 1, 0, 1, b""), LocalProtocolError, "key must be 16 bytes, got 32"),
            (lambda c: c.seal(bytes(32), 1, 2**40, 1, b""), LocalProtocolError, "field timestamp out of range"),
            (lambda c: c.seal(KEY, 1.0, 0, 1, b""), LocalProtocolError,
             "UDP header field ssrc is not an integer: 1.0"),
            (lambda c: c.pack_header(0, 1, 2, 3, type=256), LocalProtocolError, "field type out of range 0..255"),
            (lambda c: c.pack_header(0, 1, 2, 3, flags=-1), LocalProtocolError, "field flags out of range"),
            (lambda c: c.pack_header("1", 1, 2, 3), LocalProtocolError, "payload_len is not an integer: '1'"),
        ],
    )
    def test_same_exception_and_message(self, call: Callable[[ModuleType], object], error: type[Exception],
                                        reason: str) -> None:
        kind, message = same_on_both(call)
        assert kind is error
        assert reason in str(message)

    @pytest.mark.parametrize("key", ["0123456789abcdef", bytearray(16), None], ids=type)
    def test_a_key_that_is_not_bytes_is_a_type_error_on_both(self, key: object) -> None:
        assert native is not None
        for codec in (native, udp_packet):
            with pytest.raises(TypeError):
                codec.seal(key, 1, 0, 1, b"opus")

    def test_header_fields_accept_what_struct_accepts(self) -> None:
        class Index:
            def __index__(self) -> int:
                return 7

        same_on_both(lambda c: c.pack_header(True, Index(), 2**32 - 1, 0, type=0, flags=255))
        assert native is not None
        assert native.pack_header(True, Index(), 1, 0).hex() == "01000001 00000007 00000001 00000000".replace(" ", "")

    def test_any_bytes_like_datagram(self) -> None:
        for wrapped in (bytearray(DATAGRAM), memoryview(DATAGRAM), memoryview(b"xx" + DATAGRAM)[2:]):
            assert same_on_both(lambda c, data=wrapped: c.open_packet(KEY, data))[0] == "result"
            assert same_on_both(lambda c, data=wrapped: c.seal(KEY, 1, 2, 3, data))[0] == "result"

    @pytest.mark.parametrize("name", ["pack_header", "seal", "open_packet", "udp_to_ws", "ws_to_udp"])
    def test_same_parameters(self, name: str) -> None:
        def shape(function: Callable[..., object]) -> list[tuple[str, object, object]]:
            return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

        assert shape(getattr(native, name)) == shape(getattr(udp_packet, name))

    def test_the_packet_is_the_twins_frozen_dataclass(self) -> None:
        assert native is not None
        ours, twin = native.open_packet(KEY, DATAGRAM), udp_packet.open_packet(KEY, DATAGRAM)
        assert type(ours) is udp_packet.AudioPacket
        assert (ours, hash(ours), repr(ours)) == (twin, hash(twin), repr(twin))
        assert pickle.loads(pickle.dumps(ours)) == twin
        assert dataclasses.replace(ours, sequence=9) == dataclasses.replace(twin, sequence=9)
        with pytest.raises(dataclasses.FrozenInstanceError):
            ours.sequence = 2  # type: ignore[misc]

    def test_cipher_cache_overflow_keeps_every_key_right(self) -> None:
        assert native is not None
        keys = [i.to_bytes(16, "big") for i in range(udp_packet.CIPHER_CACHE_SIZE + 40)]
        for key in [*keys, *keys[:5], *reversed(keys)]:
            assert native.seal(key, 1, 2, 3, b"opus frame") == udp_packet.seal(key, 1, 2, 3, b"opus frame")

    def test_no_memory_leak_on_any_path(self) -> None:
        assert native is not None
        codec = native
        frame = codec.udp_to_ws(KEY, DATAGRAM)[1]
        paths = [
            lambda: codec.seal(KEY, 1, 2, 3, bytes(150)), lambda: codec.open_packet(KEY, DATAGRAM),
            lambda: codec.udp_to_ws(KEY, DATAGRAM), lambda: codec.ws_to_udp(KEY, frame, 4, 5),
            lambda: codec.pack_header(1, 2, 3, 4), lambda: codec.udp_to_ws(KEY, DATAGRAM[:9]),
            lambda: codec.seal(KEY, -1, 0, 0, b""), lambda: codec.ws_to_udp(bytes(3), frame, 1, 1),
            lambda: codec.open_packet(KEY, DATAGRAM, x=1), lambda: codec.seal(None, 1, 2, 3, b""),
        ]
        failures = 0

        def every_path() -> None:
            nonlocal failures
            for path in paths:
                try:
                    path()
                except (MalformedPacket, LocalProtocolError, TypeError):
                    failures += 1

        every_path()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for _ in range(3000):
                every_path()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        assert failures == 5 * 3001
        assert grown < 16 * 1024, f"{grown} bytes still allocated after 3000 rounds"


# ---- the fuzz corpus -----------------------------------------------------------------------------------

CORPUS = sorted(fuzz_packet.CORPUS.glob("*.bin"))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_input_agrees_on_both(path: Path) -> None:
    fuzz_packet.check(path.read_bytes(), [udp_packet] if native is None else [native, udp_packet])


def test_corpus_reaches_every_operation_both_ways() -> None:
    reached = set()
    for path in CORPUS:
        name, call = fuzz_packet.operation(udp_packet, path.read_bytes())
        reached.add((name, fuzz_packet.outcome(call)[0] == "result"))
    assert reached == {(name, ok) for name in fuzz_packet.OPERATIONS for ok in (True, False)}


def test_the_harness_reports_a_disagreement() -> None:
    class Broken:
        def __getattr__(self, name: str) -> object:
            return lambda *args, **kwargs: b"wrong"

    with pytest.raises(AssertionError, match="disagrees on input"):
        fuzz_packet.check(CORPUS[0].read_bytes(), [udp_packet, Broken()])


# ---- which implementation runs -------------------------------------------------------------------------

_REPORT = (
    "import json, sys\n"
    "from pibuddy.xiaozhi import udp_codec, udp_packet\n"
    "print(json.dumps([udp_codec.PACKET_PATH, udp_codec.NATIVE_PACKET_PATH,\n"
    "                  udp_codec.seal is udp_packet.seal, udp_codec.udp_to_ws is udp_packet.udp_to_ws]))\n"
)


def _selection(env_changes: dict[str, str], prelude: str = "") -> list[object]:
    env = {k: v for k, v in os.environ.items() if k != "PIBUDDY_NATIVE"} | env_changes
    done = subprocess.run([sys.executable, "-c", prelude + _REPORT], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


def test_pibuddy_native_0_forces_the_twin() -> None:
    assert _selection({"PIBUDDY_NATIVE": "0"}) == ["python (PIBUDDY_NATIVE=0)", False, True, True]


def test_an_unimportable_extension_falls_back_to_the_twin() -> None:
    path, native_flag, *twin = _selection({}, "import sys; sys.modules['pibuddy.xiaozhi._udp_packet'] = None\n")
    assert isinstance(path, str)
    assert path.startswith("python (C extension unavailable: ")
    assert (native_flag, twin) == (False, [True, True])


@needs_native
def test_the_extension_is_chosen_when_built() -> None:
    path, native_flag, *twin = _selection({})
    assert isinstance(path, str)
    assert path.startswith("native C, OpenSSL ")
    assert (native_flag, twin) == (True, [False, False])


async def test_pibuddy_check_reports_the_packet_path() -> None:
    config = Config()
    assert any(p.name == "udp packet path" and p.applies(config) for p in check.PROBES)
    assert await check.probe_packet_path(config) == ProbeResult(True, udp_codec.PACKET_PATH)


# ---- the install without a compiler, headers or libcrypto -----------------------------------------------


@pytest.mark.parametrize("broken", ["no compiler", "no header", "no library"])
def test_a_failed_build_warns_once_and_installs_without_the_extension(
    broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    setup_script = _load(REPO_ROOT / "setup.py")
    extension = setup_script.UDP_PACKET_EXTENSION
    source = tmp_path / "probe.c"
    source.write_text("#include <openssl/no-such-header.h>\n")
    match broken:
        case "no compiler":
            monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
            extension = Extension(extension.name, [str(REPO_ROOT / s) for s in extension.sources],
                                  libraries=extension.libraries)
        case "no header":
            extension = Extension(extension.name, [str(source)])
        case "no library":
            source.write_text("int PyInit__udp_packet(void) { return 0; }\n")
            extension = Extension(extension.name, [str(source)], libraries=["pibuddy-no-such-lib"])
    command = setup_script.OptionalBuildExt(Distribution({"name": "probe", "ext_modules": [extension]}))
    command.build_lib, command.build_temp = str(tmp_path / "lib"), str(tmp_path / "tmp")
    command.ensure_finalized()
    command.run()
    assert command.extensions == []
    assert command.get_outputs() == []
    warnings = [line for line in capfd.readouterr().err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1
    assert "pure-Python twin will be used" in warnings[0]
    assert not list((tmp_path / "lib").rglob("*.so"))


def test_this_test_run_uses_the_packet_path_its_environment_asks_for() -> None:
    """scripts/test.sh runs the conversation and gateway tests a second time with PIBUDDY_NATIVE=0; this
    proves that pass really went through the pure-Python twin (and the first through C, when it is built)."""
    forced_twin = os.environ.get("PIBUDDY_NATIVE", "").strip() == "0"
    assert udp_codec.NATIVE_PACKET_PATH is (not forced_twin and native is not None), udp_codec.PACKET_PATH
