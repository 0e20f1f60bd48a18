"""Load benchmark of the local gateway: N simulated devices streaming 60 ms frames both ways on 127.0.0.1.

    .venv/bin/python bench/gateway_load.py                  # N = 10, 100, 300; 20 s each
    .venv/bin/python bench/gateway_load.py -n 100 --seconds 30 --pairs 5 --record

Three processes, so the gateway's CPU is its own: this load generator (the devices, built from the
firmware-like peer's hand-made MQTT bytes), the gateway (`pibuddy run` with only the gateway on), and a
minimal chat server that echoes every uplink frame back as a downlink frame, keeping its timestamp. Each
device sends one 120-byte frame every 60 ms (as the Node reference gateway was measured, bench/RESULTS.md),
so every device causes 33.3 relayed packets per second. The uplink timestamp is a unique packet number, so
the downlink header tells which packet came back (RTT, loss) and whether it reached the right device.

Reported: relayed packets/s, RTT p50/p99 through gateway and echo (an upper bound of the latency the
gateway adds), loss, misrouted packets, the gateway's CPU per 1000 relayed packets (from /proc over the
streaming window) and its RSS. Each gateway run is paired with a run of the no-protocol floor relay
(bench/floor_relay.py: same harness, same loop, no AES, no checks, no re-framing) right after it, and the
pair's ratio is printed: CPU figures on a shared machine move with its load, the ratio much less. With
`--pairs K` the medians over the K pairs close each N.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _results import publish  # noqa: E402

from tests.peers.firmware_device import connect_packet, publish_packet  # noqa: E402
from tests.peers.ports import free_port  # noqa: E402
from tests.peers.xiaozhi_wire import aes_ctr  # noqa: E402

KEY: Final = "Bench-Sign-Key7"
FRAME_SECONDS: Final = 0.060
PAYLOAD_BYTES: Final = 120
WARMUP_SECONDS: Final = 2.0
DRAIN_SECONDS: Final = 1.0
CONNECTS_AT_ONCE: Final = 4
"""The gateway takes 4 MQTT handshakes at a time from one address (mqtt_server.HANDSHAKES_PER_ADDRESS)."""
FLOOR: Final = Path(__file__).resolve().parent / "floor_relay.py"
_HEADER = struct.Struct(">BBHIII")
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


# --- the echo chat server (its own process) --------------------------------------------------------------


def run_echo_server(port: int) -> None:
    """A chat server reduced to what the benchmark needs: hello, then every uplink frame echoed back."""
    import aiohttp  # noqa: PLC0415
    from aiohttp import web  # noqa: PLC0415

    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        sequence = 0
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT and json.loads(message.data).get("type") == "hello":
                await ws.send_str(json.dumps({"type": "hello", "version": 1, "transport": "websocket",
                                              "session_id": os.urandom(8).hex(),
                                              "audio_params": {"format": "opus", "sample_rate": 16000,
                                                               "channels": 1, "frame_duration": 60}}))
            elif message.type is aiohttp.WSMsgType.BINARY:
                data = message.data
                sequence += 1
                size = len(data) - 16
                header = struct.pack(">BBHIII", 1, 0, size, sequence, int.from_bytes(data[8:12], "big"), size)
                await ws.send_bytes(header + data[16:])
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/xiaozhi/v1/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


# --- the devices -----------------------------------------------------------------------------------------


@dataclass
class Device(asyncio.DatagramProtocol):
    index: int
    sent_at: dict[int, float] = field(default_factory=dict)
    rtts: list[float] = field(default_factory=list)
    received: int = 0
    misrouted: int = 0
    key: bytes = b""
    nonce: bytes = b""
    sequence: int = 0
    """Uplink sequence, continuous across the warm-up and the measured stream."""
    transport: Any = None
    writer: asyncio.StreamWriter | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.perf_counter()
        packet_number = int.from_bytes(data[8:12], "big")
        sent = self.sent_at.pop(packet_number, None)
        if sent is None:
            self.misrouted += packet_number >> 20 != self.index
            return
        self.received += 1
        self.rtts.append(now - sent)

    def prepare(self, payload: bytes, frames: int) -> list[bytes]:
        """The datagrams of `frames` frames, sealed ahead so the generator's own CPU stays off the clock.

        The timestamp field carries a packet number unique across devices (index << 20 | sequence).
        """
        datagrams = []
        for _ in range(frames):
            self.sequence += 1
            header = self.nonce[:2] + struct.pack(">H", len(payload)) + self.nonce[4:8] + struct.pack(
                ">II", self.index << 20 | self.sequence, self.sequence)
            datagrams.append(header + aes_ctr(self.key, header, payload))
        return datagrams

    def send(self, datagram: bytes) -> None:
        self.sent_at[int.from_bytes(datagram[8:12], "big")] = time.perf_counter()
        self.transport.sendto(datagram)


async def open_device(index: int, mqtt_port: int) -> Device:
    """MQTT connect with signed credentials, hello, and the UDP socket the hello names."""
    mac = f"02:00:00:00:{index >> 8:02x}:{index & 0xFF:02x}"
    client_id = f"GID_bench@@@{mac.replace(':', '_')}@@@bench-{index}"
    username = base64.b64encode(b'{"ip":"127.0.0.1"}').decode()
    password = base64.b64encode(hmac.new(KEY.encode(), f"{client_id}|{username}".encode(),
                                         hashlib.sha256).digest()).decode()
    reader, writer = await asyncio.open_connection("127.0.0.1", mqtt_port)
    writer.write(connect_packet(client_id, username, password))
    hello = {"type": "hello", "version": 3, "transport": "udp", "features": {"mcp": False},
             "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 60}}
    writer.write(publish_packet("device-server", json.dumps(hello).encode()))
    reply = await asyncio.wait_for(_read_hello(reader), 15)
    device = Device(index, key=bytes.fromhex(reply["udp"]["key"]), nonce=bytes.fromhex(reply["udp"]["nonce"]),
                    writer=writer)
    await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: device, remote_addr=(reply["udp"]["server"], reply["udp"]["port"]))
    device.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return device


async def _read_hello(reader: asyncio.StreamReader) -> dict[str, Any]:
    while True:
        first = (await reader.readexactly(1))[0]
        size, shift = 0, 0
        while True:
            byte = (await reader.readexactly(1))[0]
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        body = await reader.readexactly(size)
        if first >> 4 == 3:
            topic_size = int.from_bytes(body[:2], "big")
            message = json.loads(body[2 + topic_size :])
            if message.get("type") == "hello":
                return dict(message)
            if message.get("type") == "error":
                raise RuntimeError(f"gateway refused hello: {message}")


def prepare(devices: list[Device], seconds: float) -> list[list[bytes]]:
    payload = os.urandom(PAYLOAD_BYTES)
    return [device.prepare(payload, int(seconds / FRAME_SECONDS)) for device in devices]


async def stream(devices: list[Device], prepared: list[list[bytes]]) -> None:
    """Every device sends a frame every 60 ms, phases spread evenly over the period."""
    loop = asyncio.get_running_loop()
    frames = len(prepared[0])
    start = loop.time() + 0.1
    slot = FRAME_SECONDS / len(devices)
    for frame in range(frames):
        for position, device in enumerate(devices):
            due = start + frame * FRAME_SECONDS + position * slot
            delay = due - loop.time()
            if delay > 0.001:
                await asyncio.sleep(delay)
            device.send(prepared[position][frame])


# --- one run ---------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    wanted = {"VmRSS", "VmHWM"}
    lines = (line.split() for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {parts[0].rstrip(":"): int(parts[1]) for parts in lines if parts and parts[0].rstrip(":") in wanted}


async def wait_port(port: int, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


_UVLOOP_RUNNER: Final = ("import sys, uvloop; uvloop.install(); from pibuddy.cli import main; "
                          "sys.exit(main(sys.argv[1:]))")


async def run_once(count: int, seconds: float, workdir: Path, *, loop: str, floor: bool = False) -> dict[str, Any]:
    """One run against the gateway (`pibuddy run`, gateway only) or, with `floor`, against the floor relay."""
    echo_port, mqtt_port, udp_port = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    config = {
        "device": {"state_dir": str(workdir / "state")},
        "audio": {"enabled": False}, "upstream": {"enabled": False}, "tools": {"builtin": False},
        "logging": {"level": "WARNING"},
        "gateway": {"host": "127.0.0.1", "mqtt_port": mqtt_port, "udp_port": udp_port, "api_port": free_port(),
                    "ota_port": free_port(), "mdns": False, "signature_key": KEY, "max_connections": count + 50,
                    "max_connections_per_address": count + 50,  # every simulated device is on 127.0.0.1
                    "admission": "open",  # hundreds of new devices at once: admission is not measured here
                    "chat_servers": [f"ws://127.0.0.1:{echo_port}/xiaozhi/v1/?from=mqtt_gateway"]},
    }
    config_path = workdir / f"gateway-{count}.yaml"
    config_path.write_text(json.dumps(config))
    python = sys.executable
    echo = await asyncio.create_subprocess_exec(python, __file__, "--echo-server", str(echo_port))
    if floor:
        command = [str(FLOOR), str(mqtt_port), str(udp_port), config["gateway"]["chat_servers"][0], "--loop", loop]
    elif loop == "uvloop":
        command = ["-c", _UVLOOP_RUNNER, "run", "--config", str(config_path)]
    else:
        command = ["-m", "pibuddy", "run", "--config", str(config_path)]
    gateway = await asyncio.create_subprocess_exec(python, *command, cwd=REPO)
    devices: list[Device] = []
    try:
        await wait_port(echo_port)
        await wait_port(mqtt_port)
        for batch in range(0, count, CONNECTS_AT_ONCE):
            devices += await asyncio.gather(*(open_device(i, mqtt_port)
                                              for i in range(batch, min(batch + CONNECTS_AT_ONCE, count))))
        await stream(devices, prepare(devices, WARMUP_SECONDS))
        measured = prepare(devices, seconds)
        await asyncio.sleep(DRAIN_SECONDS)
        for device in devices:
            device.rtts.clear()
            device.received = 0
            device.sent_at.clear()
        cpu_before, echo_before = cpu_seconds(gateway.pid), sum(cpu_seconds(echo.pid))
        wall_before = time.perf_counter()
        await stream(devices, measured)
        streamed = time.perf_counter() - wall_before
        cpu_after, echo_used = cpu_seconds(gateway.pid), sum(cpu_seconds(echo.pid)) - echo_before
        user, system = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
        cpu_used = user + system
        await asyncio.sleep(DRAIN_SECONDS)
        memory = memory_kib(gateway.pid)
    finally:
        for device in devices:
            if device.writer is not None:
                device.writer.close()
            if device.transport is not None:
                device.transport.close()
        for process in (gateway, echo):
            process.terminate()
        for process in (gateway, echo):
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
    sent = int(seconds / FRAME_SECONDS) * count
    received = sum(d.received for d in devices)
    rtts = sorted(r for d in devices for r in d.rtts)
    relayed = sent + received
    return {
        "relay": "floor" if floor else "gateway", "devices": count, "seconds": round(streamed, 1), "sent": sent,
        "received": received,
        "loss_percent": round(100 * (sent - received) / sent, 3),
        "misrouted": sum(d.misrouted for d in devices),
        "packets_per_second": round(relayed / streamed),
        "rtt_p50_ms": round(1000 * statistics.median(rtts), 2) if rtts else None,
        "rtt_p99_ms": round(1000 * rtts[int(0.99 * (len(rtts) - 1))], 2) if rtts else None,
        "loop": loop, "cpu_ms_per_1000": round(1000 * cpu_used / (relayed / 1000), 1),
        "echo_cpu_ms_per_1000": round(1000 * echo_used / (relayed / 1000), 1),
        "cpu_cores": round(cpu_used / streamed, 3), "system_cpu_share": round(system / cpu_used, 2),
        "rss_mb": round(memory.get("VmRSS", 0) / 1024, 1), "peak_rss_mb": round(memory.get("VmHWM", 0) / 1024, 1),
    }


_COLUMNS: Final = (("relay", 7, "relay"), ("N", 4, "devices"), ("pkt/s", 6, "packets_per_second"),
                   ("loss %", 6, "loss_percent"), ("misrt", 5, "misrouted"), ("RTT p50", 7, "rtt_p50_ms"),
                   ("RTT p99", 7, "rtt_p99_ms"), ("CPU ms/1000", 11, "cpu_ms_per_1000"),
                   ("RSS MB", 6, "rss_mb"), ("peak", 6, "peak_rss_mb"), ("echo ms/1000", 12, "echo_cpu_ms_per_1000"))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cells(r: dict[str, Any], ratio: str = "") -> list[str]:
    return [str(r[key]) for _, _, key in _COLUMNS] + [ratio]


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 2)


def measure(counts: list[int], pairs: int, seconds: float, loop: str, out: Callable[[str], None]) -> None:
    """`pairs` gateway runs per N, each followed by a floor-relay run; rows as they come, then the medians."""
    out(_row([name for name, _, _ in _COLUMNS] + ["gateway / floor"]))
    out(_row(["---"] * (len(_COLUMNS) + 1)))
    medians = []
    with tempfile.TemporaryDirectory() as workdir:
        for count in counts:
            gateways, ratios = [], []
            for _ in range(pairs):
                gateway = asyncio.run(run_once(count, seconds, Path(workdir), loop=loop))
                floor = asyncio.run(run_once(count, seconds, Path(workdir), loop=loop, floor=True))
                ratio = gateway["cpu_ms_per_1000"] / floor["cpu_ms_per_1000"]
                gateways.append(gateway)
                ratios.append(ratio)
                out(_row(_cells(gateway, f"{ratio:.2f}")))
                out(_row(_cells(floor)))
            medians.append(f"N={count}, {pairs} pairs: gateway {_median(gateways, 'cpu_ms_per_1000')} ms CPU per "
                           f"1000 relayed, gateway / floor {statistics.median(ratios):.2f} (range "
                           f"{min(ratios):.2f}-{max(ratios):.2f}), loss max "
                           f"{max(r['loss_percent'] for r in gateways)} %, RTT p99 median "
                           f"{_median(gateways, 'rtt_p99_ms')} ms, RSS max {max(r['rss_mb'] for r in gateways)} MB.")
    out("")
    for line in medians:
        out(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--devices", type=int, action="append", help="device count (repeatable)")
    parser.add_argument("--seconds", type=float, default=20.0, help="streaming time per run (default 20)")
    parser.add_argument("--pairs", type=int, default=1, choices=range(1, 16), metavar="K",
                        help="gateway + floor pairs per N, 1-15 (default 1)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                        help="the gateway's and the floor's event loop (uvloop must be installed)")
    parser.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        run_echo_server(args.echo_server)
        return 0
    lines: list[str] = []

    def out(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    measure(args.devices or [10, 100, 300], args.pairs, args.seconds, args.loop, out)
    if args.record:
        lines.insert(0, f"Command: `bench/gateway_load.py {' '.join(sys.argv[1:])}`, event loop {args.loop}.\n")
        publish("gateway load, side by side with the floor relay", __file__, lines, record=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
