"""The gateway's WebSocket client delivers plain binary frames without websockets' parser: for any byte stream
a server may send, cut at any read boundary, it must do exactly what websockets alone does (split_frames=False):
the same messages in the same order, the same frames sent back (pongs, close), the same end state.

Sans-I/O on purpose: read boundaries cannot be chosen over a real socket. websockets' own ServerProtocol
decodes what the client wrote, so both sides of the comparison are the library's reading of the bytes.
"""

from __future__ import annotations

import contextlib
import random
import struct
from dataclasses import dataclass, field

from websockets.frames import Frame
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from pibuddy.gateway.ws_client import WsClient, WsConnectFailed

_MAX_SIZE = 300
_SEEDS = 800  # bounded; each seed is a few microseconds of parsing
_REFUSAL = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!"


@dataclass
class _Wire:
    """A transport that keeps what the client writes."""

    written: bytearray = field(default_factory=bytearray)
    ends: list[str] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        self.written += data

    def write_eof(self) -> None:
        self.ends.append("eof")

    def abort(self) -> None:
        self.ends.append("abort")

    def set_write_buffer_limits(self, high: int) -> None:
        del high


def _frame(first: int, payload: bytes, *, masked: bool = False, length_bytes: int = 0) -> bytes:
    size, mask_bit = len(payload), 0x80 if masked else 0
    if length_bytes == 8 or size > 65535:
        header = struct.pack("!BBQ", first, 127 | mask_bit, size)
    elif length_bytes == 2 or size > 125:
        header = struct.pack("!BBH", first, 126 | mask_bit, size)
    else:
        header = bytes((first, size | mask_bit))
    return header + (b"\0\0\0\0" if masked else b"") + payload


def _server_stream(rng: random.Random) -> bytes:
    """What a server (or garbage) might send after the handshake: mostly audio, and every kind of other frame."""
    out = bytearray()
    for _ in range(rng.randint(0, 12)):
        kind = rng.random()
        payload = rng.randbytes(rng.choice([0, 1, 16, 120, 125, 126, 200, 300, 301, 1000]))
        if kind < 0.45:
            out += _frame(0x82, payload, length_bytes=rng.choice([0, 0, 2, 8]))  # audio
        elif kind < 0.55:
            out += _frame(0x81, rng.choice([b"hi", b'{"type":"tts"}', "\u00e9".encode() * 50, b"\xff\xfe"]))
        elif kind < 0.65:  # a fragmented message, sometimes left open
            out += _frame(rng.choice([0x01, 0x02]), rng.randbytes(rng.choice([1, 100, 200])))
            for _ in range(rng.randint(0, 2)):
                out += _frame(0x00, rng.randbytes(rng.choice([1, 50, 150])))
            if rng.random() < 0.8:
                out += _frame(0x80, rng.randbytes(rng.choice([0, 10, 100])))
        elif kind < 0.72:
            out += _frame(0x89, rng.randbytes(rng.choice([0, 4, 125])))  # ping
        elif kind < 0.75:
            out += _frame(0x8A, rng.randbytes(4))  # pong
        elif kind < 0.78:
            out += _frame(0x88, struct.pack("!H", rng.choice([1000, 1001, 1011, 999])) + b"bye")
        elif kind < 0.81:
            out += _frame(0x82, payload, masked=True)  # a server must not mask
        elif kind < 0.84:
            out += _frame(rng.choice([0xC2, 0xA2, 0x92, 0x83, 0x8B, 0x02]), payload)  # reserved bits, bad opcode
        elif kind < 0.87:
            out += rng.randbytes(rng.randint(1, 20))
        else:
            out += _frame(0x80, rng.randbytes(10))  # a continuation nobody started
    return bytes(out)


@dataclass
class _Outcome:
    messages: list[tuple[str, bytes | str]]
    sent: list[tuple[int, bytes]]
    ends: list[str]
    state: str
    close_received: object


async def _run(split: bool, frames: bytes, refuse: bool, cuts: list[int], eof: bool) -> _Outcome:
    messages: list[tuple[str, bytes | str]] = []
    client = WsClient(parse_uri("ws://127.0.0.1:1/xiaozhi/v1/"), on_text=lambda t: messages.append(("text", t)),
                      on_binary=lambda b: messages.append(("binary", bytes(b))), max_size=_MAX_SIZE,
                      split_frames=split)
    wire = _Wire()
    client.connection_made(wire)  # type: ignore[arg-type]
    client.start_handshake({"Device-Id": "aa:bb:cc:dd:ee:ff"})
    request_end = len(wire.written)
    server = ServerProtocol()
    server.receive_data(bytes(wire.written))
    request = next(e for e in server.events_received() if isinstance(e, Request))
    server.send_response(server.accept(request))
    head = _REFUSAL if refuse else b"".join(server.data_to_send())
    stream, previous = head + frames, 0
    for cut in [*cuts, len(stream)]:
        if cut > previous:
            client.data_received(stream[previous:cut])
            previous = cut
    if eof:
        client.eof_received()
    if not refuse:  # what the client sent after its request, as websockets decodes it
        server.receive_data(bytes(wire.written[request_end:]))
    sent = [(f.opcode.value, f.data) for f in server.events_received() if isinstance(f, Frame)]
    protocol_state = client._protocol  # the end state is what is compared
    outcome = _Outcome(messages, sent, wire.ends, protocol_state.state.name, protocol_state.close_rcvd)
    client.connection_lost(None)  # ends the close timer and a pending handshake
    with contextlib.suppress(WsConnectFailed):
        await client.wait_open()
    return outcome


async def test_the_fast_path_does_what_websockets_alone_does_for_any_stream_and_any_read_boundaries() -> None:
    delivered = answered = 0
    for seed in range(_SEEDS):
        rng = random.Random(seed)
        frames = _server_stream(rng)
        refuse = rng.random() < 0.05
        length = len(frames) + 200
        cuts = sorted(rng.sample(range(1, length), min(length - 1, rng.randint(0, 8))))
        if rng.random() < 0.3:  # tiny reads: headers split across them
            cuts = sorted({*cuts, *range(1, length, rng.choice([1, 2, 3, 5]))})
        eof = rng.random() < 0.5
        reference = await _run(False, frames, refuse, cuts, eof)
        fast = await _run(True, frames, refuse, cuts, eof)
        assert fast == reference, f"seed {seed}"
        delivered += len(reference.messages)
        answered += len(reference.sent)
    print(f"{delivered} messages delivered, {answered} frames sent back over {_SEEDS} streams")
    assert delivered > _SEEDS / 2, "the streams must exercise delivery"
    assert answered > _SEEDS / 4, "and replies (pongs, close)"
