"""The no-protocol floor: a UDP <-> WebSocket relay that does only what any relay must, for bench/gateway_load.py.

    .venv/bin/python bench/floor_relay.py MQTT_PORT UDP_PORT CHAT_URL [--loop uvloop]

It answers the benchmark devices' MQTT CONNECT and hello (no credential check, no JSON validation), opens one
WebSocket per device to the chat server, and then, per packet, looks the route up by the UDP header's
connection id and writes the datagram as it came (no AES, no sequence window, no re-framing) as one masked
binary frame; each binary frame from the server goes back to the device's address unchanged. Sockets, event
loop, the UDP drain loop and the frame sizes are the gateway's, so the gateway's CPU divided by this one's
is the cost of its protocol work (the issue's target: at most 2x).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import sys
from typing import Final
from urllib.parse import urlsplit

_MAX_READS_PER_WAKEUP: Final = 256
_U16: Final = struct.Struct(">H")
_ZERO_MASK: Final = b"\x00\x00\x00\x00"  # a client must mask; XOR with zeros leaves the payload as it is


def _mqtt(first: int, body: bytes) -> bytes:
    size, encoded = len(body), bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        encoded.append(byte | (0x80 if size else 0))
        if not size:
            return bytes([first]) + bytes(encoded) + body


class ChatLink(asyncio.Protocol):
    """One device's WebSocket: a hand-made handshake, then binary frames both ways."""

    def __init__(self, relay: FloorRelay, address_of_device: list[tuple[str, int]]) -> None:
        self._relay, self._device = relay, address_of_device
        self._buffer = bytearray()
        self._open = False
        self.transport: asyncio.Transport | None = None
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        url = urlsplit(self._relay.chat_url)
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        .encode())

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            del buffer[: end + 4]
            self._open = True
            self.ready.set_result(None)
        while len(buffer) >= 2:
            opcode, size, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, start = _U16.unpack_from(buffer, 2)[0], 4
            if len(buffer) < start + size:
                return
            if opcode == 0x2 and self._device:
                self._relay.send(bytes(buffer[start : start + size]), self._device[0])
            del buffer[: start + size]

    def send(self, payload: bytes) -> None:
        size = len(payload)
        head = bytes([0x82, 0x80 | size]) if size < 126 else bytes([0x82, 0xFE]) + _U16.pack(size)
        assert self.transport is not None
        self.transport.write(head + _ZERO_MASK + payload)


class FloorRelay:
    def __init__(self, mqtt_port: int, udp_port: int, chat_url: str) -> None:
        self.mqtt_port, self.udp_port, self.chat_url = mqtt_port, udp_port, chat_url
        self.routes: dict[int, tuple[ChatLink, list[tuple[str, int]]]] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.bind(("127.0.0.1", udp_port))
        self._next_id = 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self._sock.fileno(), self._read_ready)
        server = await asyncio.start_server(self._device, "127.0.0.1", self.mqtt_port)
        async with server:
            await server.serve_forever()

    async def _device(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):  # a device gone mid-handshake
            await self._serve_device(reader, writer)
        writer.close()

    async def _serve_device(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_packet(reader)  # CONNECT
        writer.write(bytes([0x20, 2, 0, 0]))
        body = await _read_packet(reader)  # the hello PUBLISH
        topic_size = _U16.unpack_from(body, 0)[0]
        json.loads(body[2 + topic_size :])
        connection_id, self._next_id = self._next_id, self._next_id + 1
        nonce = bytes(4) + connection_id.to_bytes(4, "big") + bytes(8)
        address: list[tuple[str, int]] = []
        host, port = urlsplit(self.chat_url).hostname or "127.0.0.1", urlsplit(self.chat_url).port or 80
        _, link = await asyncio.get_running_loop().create_connection(lambda: ChatLink(self, address), host, port)
        await link.ready
        self.routes[connection_id] = (link, address)
        reply = {"type": "hello", "transport": "udp", "session_id": str(connection_id),
                 "udp": {"server": "127.0.0.1", "port": self.udp_port, "key": os.urandom(16).hex(),
                         "nonce": nonce.hex()},
                 "audio_params": {"format": "opus", "sample_rate": 24000, "channels": 1, "frame_duration": 60}}
        writer.write(_mqtt(0x30, _U16.pack(5) + b"reply" + json.dumps(reply).encode()))
        try:
            await reader.read()  # until the device goes
        finally:
            del self.routes[connection_id]
            assert link.transport is not None
            link.transport.close()

    def _read_ready(self) -> None:
        receive, routes = self._sock.recvfrom, self.routes
        for _ in range(_MAX_READS_PER_WAKEUP):
            try:
                data, address = receive(1500)
            except (BlockingIOError, InterruptedError):
                return
            route = routes.get(int.from_bytes(data[4:8], "big"))
            if route is not None:
                link, device = route
                if not device:
                    device.append(address)
                link.send(data)

    def send(self, datagram: bytes, address: tuple[str, int]) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):  # a full buffer drops, as UDP does
            self._sock.sendto(datagram, address)


async def _read_packet(reader: asyncio.StreamReader) -> bytes:
    await reader.readexactly(1)
    size, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        size |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return await reader.readexactly(size)


def main() -> None:
    mqtt_port, udp_port, chat_url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if sys.argv[4:] == ["--loop", "uvloop"]:
        import uvloop  # noqa: PLC0415

        uvloop.install()
    asyncio.run(FloorRelay(mqtt_port, udp_port, chat_url).run())


if __name__ == "__main__":
    main()
