"""Per-packet cost of the UDP audio path: the C extension against its pure-Python twin, in one run.

Seal, open and the gateway's two re-framings, each over Opus-sized payloads (100-200 bytes, what one
60 ms frame encodes to), timed as ns/packet with the two implementations interleaved round by round so
both see the same machine noise; the ratio is twin / native (the target is >= 5).

A second table answers whether calling libopus from C would pay: the project's opuslib-next path per
60 ms frame against a bare ctypes call into libopus doing the same work with preallocated buffers.

Usage: .venv/bin/python bench/packet_path.py [--packets N] [--rounds N] [--record]
`--record` appends the tables to bench/RESULTS.md under today's date.
"""

from __future__ import annotations

import argparse
import array
import ctypes
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Final

from _results import publish

from pibuddy.xiaozhi import udp_packet

_SSRC: Final = 0x12345678

Loop = Callable[[], None]


def packet_loops(codec: ModuleType, payloads: list[bytes]) -> dict[str, Loop]:
    """One loop per operation, each over every payload once, for `codec` (native or twin)."""
    key = bytes(range(16))
    datagrams = [udp_packet.seal(key, _SSRC, 960 * i, i, p) for i, p in enumerate(payloads, 1)]
    frames = [udp_packet.udp_to_ws(key, d)[1] for d in datagrams]
    seal, open_packet, udp_to_ws, ws_to_udp = codec.seal, codec.open_packet, codec.udp_to_ws, codec.ws_to_udp

    def seal_loop() -> None:
        for i, payload in enumerate(payloads):
            seal(key, _SSRC, 0, i, payload)

    def open_loop() -> None:
        for datagram in datagrams:
            open_packet(key, datagram)

    def udp_to_ws_loop() -> None:
        for datagram in datagrams:
            udp_to_ws(key, datagram)

    def ws_to_udp_loop() -> None:
        for i, frame in enumerate(frames):
            ws_to_udp(key, frame, _SSRC, i)

    return {"seal": seal_loop, "open_packet": open_loop, "udp_to_ws": udp_to_ws_loop, "ws_to_udp": ws_to_udp_loop}


def time_rounds(contenders: dict[str, Loop], count: int, rounds: int) -> dict[str, float]:
    """Median ns per item of each loop over `rounds`, the contenders interleaved in alternating order."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for _ in range(rounds):
        for name in order:
            start = time.perf_counter_ns()
            contenders[name]()
            samples[name].append((time.perf_counter_ns() - start) / count)
        order.reverse()
    return {name: statistics.median(values) for name, values in samples.items()}


def packet_table(packets: int, rounds: int) -> list[str]:
    from pibuddy.xiaozhi import _udp_packet  # noqa: PLC0415 (the benchmark needs the built extension)

    rng = random.Random(6)
    payloads = [rng.randbytes(rng.randint(100, 200)) for _ in range(packets)]
    native, twin = packet_loops(_udp_packet, payloads), packet_loops(udp_packet, payloads)
    lines = [
        f"UDP packet path, {packets} packets of 100-200 bytes x {rounds} rounds, median ns/packet "
        f"({_udp_packet.OPENSSL_VERSION}):",
        "",
        "| operation | native C | Python twin | twin / native |",
        "|---|---:|---:|---:|",
    ]
    for op in native:
        result = time_rounds({"native": native[op], "twin": twin[op]}, packets, rounds)
        ratio = result["twin"] / result["native"]
        lines.append(f"| {op} | {result['native']:,.0f} | {result['twin']:,.0f} | {ratio:.1f}x |")
    return lines


def opus_table(frames: int, rounds: int) -> list[str]:
    """opuslib-next through pibuddy.audio.opus against the bare ctypes call, per 60 ms frame."""
    try:
        from opuslib_next.api import decoder as opus_decoder  # noqa: PLC0415
        from opuslib_next.api import encoder as opus_encoder  # noqa: PLC0415

        from pibuddy.audio.opus import OpusDecoder, OpusEncoder  # noqa: PLC0415
    except Exception as exc:  # opuslib-next raises a bare Exception when libopus is missing
        return ["", f"Opus: skipped ({exc})"]
    rng = random.Random(7)
    # A 440 Hz tone with a little noise, 16 kHz: speech-sized packets at complexity 0.
    tone = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * n / 16000)) + rng.randint(-300, 300)
                             for n in range(960 * frames)))
    pcm = [tone[960 * f:960 * (f + 1)].tobytes() for f in range(frames)]
    encoder, decoder = OpusEncoder(), OpusDecoder(sample_rate=24000)
    packets = [encoder.encode(frame) for frame in pcm]
    raw_encoder = encoder._encoder.encoder_state
    raw_decoder = decoder._decoder.decoder_state
    out = (ctypes.c_char * 4000)()
    pcm_out = (ctypes.c_int16 * 1440)()
    pcm_pointers = [ctypes.cast(frame, ctypes.POINTER(ctypes.c_int16)) for frame in pcm]
    pcm_out_pointer = ctypes.cast(pcm_out, ctypes.POINTER(ctypes.c_int16))

    def wrapped_encode() -> None:
        for frame in pcm:
            encoder.encode(frame)

    def bare_encode() -> None:
        for pointer in pcm_pointers:
            opus_encoder.libopus_encode(raw_encoder, pointer, 960, out, 4000)

    def wrapped_decode() -> None:
        for packet in packets:
            decoder.decode(packet)

    def bare_decode() -> None:
        for packet in packets:
            opus_decoder.libopus_decode(raw_decoder, packet, len(packet), pcm_out_pointer, 1440, 0)

    lines = [
        "",
        f"Opus per 60 ms frame (encode 16 kHz mono complexity 0, decode 24 kHz), {frames} frames x {rounds} "
        "rounds, median ns/frame:",
        "",
        "| operation | pibuddy.audio.opus (opuslib-next) | bare ctypes call | wrapper overhead | CPU per stream |",
        "|---|---:|---:|---:|---:|",
    ]
    for op, wrapped, bare in (("encode", wrapped_encode, bare_encode), ("decode", wrapped_decode, bare_decode)):
        result = time_rounds({"wrapped": wrapped, "bare": bare}, frames, rounds)
        overhead = result["wrapped"] - result["bare"]
        lines.append(f"| {op} | {result['wrapped']:,.0f} | {result['bare']:,.0f} | {overhead:,.0f} | "
                     f"{overhead / 60e6:.3%} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=20000, help="packets per round (default 20000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per operation (default 7)")
    parser.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args(argv)
    try:
        lines = packet_table(args.packets, args.rounds)
    except ImportError as exc:
        print(f"packet_path: the C extension is not built ({exc}); run ./setup.sh", file=sys.stderr)
        return 1
    lines += opus_table(max(args.packets // 100, 50), args.rounds)
    publish("packet path", __file__, lines, record=args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
