#!/usr/bin/env python3
"""Differential fuzzing of the UDP packet path: the C extension `_udp_packet` against its Python twin.

Every input runs one operation on both implementations, which must agree exactly: equal bytes or
AudioPacket, or the same exception type and message. MalformedPacket (bad datagrams and frames) and
LocalProtocolError (a key that is not 16 bytes) are the only exceptions expected; any other is a bug.

Input layout (tests/corpus/packet/*.bin are inputs in this layout):
  byte 0   the operation: value % 5 -> open_packet (firmware rule), open_packet (gateway rule),
           udp_to_ws, ws_to_udp, seal
  byte 1   the key length: 16, or (byte & 0x1f) when bit 7 is set, which reaches the key check
  then     the key, then per operation:
           ws_to_udp: ssrc u32, sequence u32, the chat-server frame
           seal:      ssrc u32, timestamp u32, sequence u32, the payload
           otherwise: the datagram

Usage: .venv/bin/python scripts/fuzz_packet.py [--seconds 60] [--max-len 2048] [--workdir DIR]
atheris (x86_64, the test extra) drives libFuzzer for a bounded time from a scratch corpus seeded with
tests/corpus/packet/; libFuzzer's coverage comes from the Python side (the twin mirrors the C
branches). A failing input lands in DIR/artifacts/: once fixed, copy it into tests/corpus/packet/,
which the default test run replays through both implementations.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

from pibuddy.xiaozhi import udp_packet
from pibuddy.xiaozhi.errors import LocalProtocolError, MalformedPacket

CORPUS: Final = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "packet"
OPERATIONS: Final = ("open_exact", "open_gateway", "udp_to_ws", "ws_to_udp", "seal")

Outcome = tuple[object, ...]


def operation(codec: ModuleType, data: bytes) -> tuple[str, Callable[[], object]]:
    """Decode one fuzz input into the named call it stands for on `codec`."""
    name = OPERATIONS[data[0] % len(OPERATIONS)] if data else OPERATIONS[0]
    key_size = data[1] & 0x1F if len(data) > 1 and data[1] & 0x80 else 16
    key, rest = data[2:2 + key_size], data[2 + key_size:]

    def u32(index: int) -> int:
        return int.from_bytes(rest[4 * index:4 * index + 4], "big")

    calls: dict[str, Callable[[], object]] = {
        "open_exact": lambda: codec.open_packet(key, rest),
        "open_gateway": lambda: codec.open_packet(key, rest, exact_length=False),
        "udp_to_ws": lambda: codec.udp_to_ws(key, rest),
        "ws_to_udp": lambda: codec.ws_to_udp(key, rest[8:], u32(0), u32(1)),
        "seal": lambda: codec.seal(key, u32(0), u32(1), u32(2), rest[12:]),
    }
    return name, calls[name]


def outcome(call: Callable[[], object]) -> Outcome:
    """What a call gave: its result, or the expected exception's type and message."""
    try:
        return ("result", call())
    except (MalformedPacket, LocalProtocolError) as exc:
        return (type(exc), str(exc))


def check(data: bytes, codecs: Sequence[ModuleType]) -> None:
    """Run `data` through every codec; raise AssertionError unless all agree (or on a foreign exception)."""
    results = []
    for codec in codecs:
        name, call = operation(codec, data)
        results.append(outcome(call))
    if any(result != results[0] for result in results[1:]):
        raise AssertionError(f"{name} disagrees on input {data.hex()}: {results}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="how long to fuzz (default 60)")
    parser.add_argument("--max-len", type=int, default=2048, help="longest input libFuzzer tries (default 2048)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "pibuddy-fuzz-packet",
                        help="scratch corpus and crash artifacts (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        import atheris  # noqa: PLC0415 (a test extra, x86_64 only)

        from pibuddy.xiaozhi import _udp_packet  # noqa: PLC0415
    except ImportError as exc:
        print(f"fuzz_packet: {exc}; needs atheris and the built extension (./setup.sh --dev)", file=sys.stderr)
        return 2
    scratch, artifacts = args.workdir / "corpus", args.workdir / "artifacts"
    scratch.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(exist_ok=True)
    for seed in CORPUS.glob("*.bin"):
        shutil.copy(seed, scratch / seed.name)
    codecs = (_udp_packet, udp_packet)
    atheris.instrument_all()
    atheris.Setup(
        [sys.argv[0], f"-max_total_time={args.seconds}", f"-max_len={args.max_len}", "-timeout=5",
         f"-artifact_prefix={artifacts}/", str(scratch)],
        lambda data: check(data, codecs),
    )
    atheris.Fuzz()  # exits the process when the time is up or an input fails
    return 0


if __name__ == "__main__":
    sys.exit(main())
