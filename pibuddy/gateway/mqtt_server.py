"""The MQTT endpoint for stock firmware (docs/protocol.md §3.2, §14): the gateway is the server, not a broker.

Stricter than the reference gateway: CONNECT is validated before CONNACK (rc 2/4/5 and a close on bad
credentials, rc 3 when full), only QoS 0 is accepted, a packet over the size cap or a malformed one closes
that connection alone, and a client silent for 1.5 × its keep-alive is dropped. A second connection with
the same client id takes over, the older one is closed, under the takeover rule: from another IP address
only once the older connection has been silent for its whole keep-alive (a live device pings within it);
until then the newcomer gets CONNACK rc 5 and a WARNING (counted, once per interval). Messages to a device go to its
`devices/p2p/<mac_>` topic whether or not it subscribed (the firmware never does). A device that does not
read them is disconnected past `MAX_UNSENT`, and a closing connection gets `_CLOSE_FLUSH_SECONDS` to flush.

What a connection means to the gateway lives in a `DeviceHandler` made by the `on_connect` factory; this
module only speaks MQTT.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Final, Protocol

from pibuddy.drops import DropCounter
from pibuddy.gateway.credentials import CredentialRejected, DeviceIdentity
from pibuddy.gateway.mqtt_codec import (
    PINGRESP,
    ConnackCode,
    Connect,
    Disconnect,
    MqttParser,
    MqttProtocolError,
    Packet,
    PingReq,
    Publish,
    Subscribe,
    Unsubscribe,
    encode_connack,
    encode_publish,
    encode_suback,
    encode_unsuback,
)
from pibuddy.listener import BoundedListener
from pibuddy.xiaozhi.const import MQTT_MAX_PACKET_SIZE

_LOGGER = logging.getLogger(__name__)
_CONNECT_TIMEOUT_SECONDS: Final = 10.0
_KEEPALIVE_FACTOR: Final = 1.5
IDLE_WITHOUT_KEEPALIVE_SECONDS: Final = 600.0
"""A client with keep-alive 0 (no pings promised) is dropped after this long without a packet."""
MAX_HANDSHAKES: Final = 64
"""Connections still handshaking at once; when full, the oldest of the address with the most is closed for
the newest (a flood of silent sockets displaces itself)."""
HANDSHAKES_PER_ADDRESS: Final = 8
"""Connections still handshaking at once from one source address; more are closed at accept."""
_READ_SIZE: Final = 16384
MAX_UNSENT: Final = 256 * 1024
"""A device that lets this much of our output pile up is not reading: it is disconnected."""
_CLOSE_FLUSH_SECONDS: Final = 1.0
"""How long a closing connection may take to flush what it still has for the device."""
_U32_SPACE: Final = 1 << 32

Authenticate = Callable[[Connect, str], DeviceIdentity]
"""(CONNECT, peer ip) -> identity, or raises `CredentialRejected`."""


class DeviceHandler(Protocol):
    """What the gateway does with one authenticated device connection."""

    def message_from_device(self, payload: bytes) -> None:
        """A QoS 0 PUBLISH payload from the device (any topic)."""

    def connection_closed(self) -> None:
        """The MQTT connection is gone (EOF, error, takeover, keep-alive or server stop)."""


class DeviceConnection:
    """One accepted MQTT connection, as the rest of the gateway sees it."""

    def __init__(self, identity: DeviceIdentity, connection_id: int, keepalive: int,
                 writer: asyncio.StreamWriter) -> None:
        self.identity = identity
        self.connection_id = connection_id
        """Random u32, unique among live connections: the UDP ssrc of every session on it (§3.4)."""
        self.keepalive = keepalive
        self.connected_at = time.time()
        self.last_packet = time.monotonic()
        """When the device last sent anything (monotonic)."""
        self.messages_in = 0
        self.messages_out = 0
        self._writer = writer
        self._closed = asyncio.Event()

    @property
    def peer_ip(self) -> str:
        return str(self.identity.user_data.get("ip", ""))

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def alive(self) -> bool:
        """Open, and heard from within its keep-alive (a device that missed its ping may be gone)."""
        silence = time.monotonic() - self.last_packet
        return not self.closed and silence < (self.keepalive or IDLE_WITHOUT_KEEPALIVE_SECONDS)

    @property
    def unsent(self) -> int:
        """Bytes for the device still waiting in our send buffer: it grows while the device is not reading."""
        return self._writer.transport.get_write_buffer_size()

    def publish(self, payload: bytes) -> None:
        """Send `payload` to the device's reply topic (QoS 0). Dropped silently once closed."""
        if self.closed or self.disconnect_if_not_reading():
            return
        self.messages_out += 1
        self._writer.write(encode_publish(self.identity.reply_topic, payload))

    def disconnect_if_not_reading(self) -> bool:
        """Abort the connection (True) once over `MAX_UNSENT` bytes wait for the device: it is not reading.
        What it left unread is dropped rather than flushed, so its socket and buffer are freed now."""
        if self.unsent <= MAX_UNSENT:
            return False
        _LOGGER.warning("device %s is not reading its MQTT messages; disconnecting", self.identity.client_id)
        self._closed.set()
        self._writer.transport.abort()
        return True

    def close(self) -> None:
        """Close the connection; the server's reader notices and tells the handler."""
        self._closed.set()
        _close_soon(self._writer)

    async def wait_closed(self) -> None:
        await self._closed.wait()


class MqttServer:
    """Accepts device connections on `host:port`, through a `BoundedListener` (its accept backs off when
    the process is out of descriptors; at most `max_connections` + `MAX_HANDSHAKES` sockets are open, and
    `max_per_address` + `HANDSHAKES_PER_ADDRESS` from one source address).

    Before CONNECT: at most `HANDSHAKES_PER_ADDRESS` per source address and `MAX_HANDSHAKES` in all (the
    most crowded address gives way), `_CONNECT_TIMEOUT_SECONDS` each. After it: at most `max_connections`
    devices, `max_per_address` of them from one source address (CONNACK 3 beyond either). Refusals are
    counted by reason and logged once per interval, whatever their rate.

    Args:
        host, port: where to listen (port 0 picks a free one; see `port`).
        authenticate: checks a CONNECT's credentials.
        on_connect: makes the handler of a newly authenticated connection.
        max_connections: most authenticated devices at once.
        max_per_address: most authenticated devices at once from one source IP address.
        max_packet_size: the packet cap, header included.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        authenticate: Authenticate,
        on_connect: Callable[[DeviceConnection], DeviceHandler],
        max_connections: int,
        max_per_address: int,
        max_packet_size: int = MQTT_MAX_PACKET_SIZE,
    ) -> None:
        self._host, self._port = host, port
        self._authenticate = authenticate
        self._on_connect = on_connect
        self._max_connections = max_connections
        self._max_per_address = max_per_address
        self._max_packet_size = max_packet_size
        self._listener: BoundedListener | None = None
        self._handshaking: dict[asyncio.StreamWriter, str] = {}
        """Connections before their CONNECT was answered, oldest first, with their source address."""
        self._handshakes_per_address: collections.Counter[str] = collections.Counter()
        self.refused = DropCounter("MQTT connections", _LOGGER)
        self.connections: dict[str, DeviceConnection] = {}
        """Live authenticated connections by client id."""
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._listener is not None, "not started"
        return self._listener.port

    @property
    def open_sockets(self) -> int:
        """TCP connections holding a descriptor now: devices, handshakes, and ones still closing."""
        return self._listener.open_connections if self._listener is not None else 0

    async def start(self) -> None:
        def protocol() -> asyncio.Protocol:
            return asyncio.StreamReaderProtocol(asyncio.StreamReader(), self._accept)

        listener = BoundedListener("MQTT", protocol, max_connections=self._max_connections + MAX_HANDSHAKES,
                                   max_per_address=self._max_per_address + HANDSHAKES_PER_ADDRESS)
        await listener.start(self._host, self._port)
        self._listener = listener

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for connection in list(self.connections.values()):
            connection.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        parser = MqttParser(max_packet_size=self._max_packet_size)
        connection: DeviceConnection | None = None
        handler: DeviceHandler | None = None
        try:
            if not self._start_handshake(writer, str(peer[0])):
                return
            try:
                first = await asyncio.wait_for(_read_connect(reader, parser), _CONNECT_TIMEOUT_SECONDS)
            except TimeoutError:
                self.refused.count(f"no CONNECT within {_CONNECT_TIMEOUT_SECONDS:g} s")
                return
            finally:
                self._end_handshake(writer, str(peer[0]))
            if first is None:  # a port probe: connected and closed without a byte
                return
            connect, rest = first
            connection = self._admit(connect, peer[0], writer)
            if connection is None:
                return
            handler = self._on_connect(connection)
            await self._dispatch(connection, handler, writer, rest)
            await self._read_loop(reader, parser, connection, handler, writer)
        except MqttProtocolError as exc:
            if connection is None:
                self.refused.count(f"malformed handshake ({type(exc).__name__})")
                _LOGGER.debug("MQTT %s:%s: %s; closing", peer[0], peer[1], exc.reason)
                if exc.hint:
                    writer.write(encode_connack(ConnackCode(exc.hint)))
            else:
                _LOGGER.warning("MQTT %s: %s; closing", connection.identity.client_id, exc.reason)
        except TimeoutError:
            assert connection is not None
            _LOGGER.info("MQTT %s timed out (%s); closing", connection.identity.client_id,
                         "keep-alive" if connection.keepalive else "no packet with keep-alive 0")
        except (ConnectionError, OSError) as exc:
            if connection is None:
                self.refused.count("connection error during the handshake")
            else:
                _LOGGER.info("MQTT %s connection error: %s", connection.identity.client_id, exc)
        except Exception:
            _LOGGER.exception("MQTT %s:%s: unexpected error; closing this connection", peer[0], peer[1])
        finally:
            await self._finish(connection, handler, writer)

    def _start_handshake(self, writer: asyncio.StreamWriter, ip: str) -> bool:
        """Take a handshake slot; False (and the socket closed) when its address has too many."""
        if self._handshakes_per_address[ip] >= HANDSHAKES_PER_ADDRESS:
            self.refused.count(f"over {HANDSHAKES_PER_ADDRESS} handshakes from one address")
            return False
        if len(self._handshaking) >= MAX_HANDSHAKES:
            # The oldest handshake of the most crowded address gives way: a flood displaces itself, not the
            # device whose CONNECT is on its way.
            crowded = self._handshakes_per_address.most_common(1)[0][0]
            oldest = next(w for w, address in self._handshaking.items() if address == crowded)
            self.refused.count(f"oldest handshake of the most crowded address closed at the cap of {MAX_HANDSHAKES}")
            oldest.transport.abort()  # its reader sees the end
            self._end_handshake(oldest, crowded)
        self._handshaking[writer] = ip
        self._handshakes_per_address[ip] += 1
        return True

    def _end_handshake(self, writer: asyncio.StreamWriter, ip: str) -> None:
        if self._handshaking.pop(writer, None) is not None:
            self._handshakes_per_address[ip] -= 1
            if self._handshakes_per_address[ip] <= 0:
                del self._handshakes_per_address[ip]

    def _admit(self, connect: Connect, peer_ip: str, writer: asyncio.StreamWriter) -> DeviceConnection | None:
        try:
            identity = self._authenticate(connect, peer_ip)
        except CredentialRejected as exc:
            self.refused.count(f"refused with CONNACK {ConnackCode(exc.hint).name}")
            _LOGGER.debug("MQTT %s refused (rc %d): %s", peer_ip, exc.hint, exc.reason)
            writer.write(encode_connack(ConnackCode(exc.hint)))
            return None
        previous = self.connections.get(identity.client_id)
        if previous is None and len(self.connections) >= self._max_connections:
            self.refused.count(f"max_connections ({self._max_connections}) reached")
            writer.write(encode_connack(ConnackCode.SERVER_UNAVAILABLE))
            return None
        ip = str(identity.user_data.get("ip", ""))
        if previous is not None and previous.peer_ip != ip and previous.alive:
            # The takeover rule: a live connection is replaced only from its own IP address.
            self.refused.count("takeover of a live device from another IP address")
            _LOGGER.debug("MQTT %s from %s refused: the device is connected from %s", identity.client_id, peer_ip,
                          previous.peer_ip)
            writer.write(encode_connack(ConnackCode.NOT_AUTHORIZED))
            return None
        if (previous is None or previous.peer_ip != ip) and \
                sum(c.peer_ip == ip for c in self.connections.values()) >= self._max_per_address:
            self.refused.count(f"over the cap of {self._max_per_address} devices from one address")
            writer.write(encode_connack(ConnackCode.SERVER_UNAVAILABLE))
            return None
        if previous is not None:
            _LOGGER.info("MQTT %s reconnected; closing its older connection", identity.client_id)
            previous.close()
        connection = DeviceConnection(identity, self._new_connection_id(), connect.keepalive, writer)
        self.connections[identity.client_id] = connection
        writer.write(encode_connack(ConnackCode.ACCEPTED))
        _LOGGER.info("MQTT %s connected from %s (keep-alive %d s)", identity.client_id, peer_ip, connect.keepalive)
        return connection

    def _new_connection_id(self) -> int:
        taken = {c.connection_id for c in self.connections.values()}
        while True:
            candidate = secrets.randbelow(_U32_SPACE)
            if candidate and candidate not in taken:
                return candidate

    async def _read_loop(self, reader: asyncio.StreamReader, parser: MqttParser, connection: DeviceConnection,
                         handler: DeviceHandler, writer: asyncio.StreamWriter) -> None:
        timeout = connection.keepalive * _KEEPALIVE_FACTOR or IDLE_WITHOUT_KEEPALIVE_SECONDS
        while not connection.closed:  # close() (takeover, stop) ends the transport: the read sees EOF
            async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can swallow a racing cancel
                data = await reader.read(_READ_SIZE)
            connection.last_packet = time.monotonic()
            if not data:
                if not parser.idle:
                    raise MqttProtocolError("connection closed in the middle of a packet (truncated)")
                return
            await self._dispatch(connection, handler, writer, parser.feed(data))

    async def _dispatch(self, connection: DeviceConnection, handler: DeviceHandler,
                        writer: asyncio.StreamWriter, packets: list[Packet]) -> None:
        for packet in packets:
            match packet:
                case Publish(qos=0):
                    connection.messages_in += 1
                    handler.message_from_device(packet.payload)
                case Publish():
                    raise MqttProtocolError(f"PUBLISH with QoS {packet.qos} (only QoS 0 is served)")
                case Subscribe():
                    writer.write(encode_suback(packet.packet_id, [0] * len(packet.topics)))
                case Unsubscribe():
                    writer.write(encode_unsuback(packet.packet_id))
                case PingReq():
                    writer.write(PINGRESP)
                case Disconnect():
                    connection.close()
                    return
                case Connect():
                    raise MqttProtocolError("second CONNECT on one connection")
        connection.disconnect_if_not_reading()  # one that sends but never reads our answers, too

    async def _finish(self, connection: DeviceConnection | None, handler: DeviceHandler | None,
                      writer: asyncio.StreamWriter) -> None:
        if connection is not None:
            connection.close()
            if self.connections.get(connection.identity.client_id) is connection:
                del self.connections[connection.identity.client_id]
                _LOGGER.info("MQTT %s disconnected", connection.identity.client_id)
        if handler is not None:
            handler.connection_closed()
        _close_soon(writer)
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            await asyncio.wait_for(writer.wait_closed(), 2 * _CLOSE_FLUSH_SECONDS)


def _close_soon(writer: asyncio.StreamWriter) -> None:
    """Close after flushing what is still unsent, for at most `_CLOSE_FLUSH_SECONDS`: then it is dropped.
    (asyncio's close waits for the flush, so a peer that reads nothing would hold the socket open, and the
    reader waiting on it would never see the end.)"""
    writer.close()
    if writer.transport.get_write_buffer_size():
        asyncio.get_running_loop().call_later(_CLOSE_FLUSH_SECONDS, writer.transport.abort)


async def _read_connect(reader: asyncio.StreamReader, parser: MqttParser) -> tuple[Connect, list[Packet]] | None:
    """Read until the first packet, which must be CONNECT; return it and any packets pipelined after it,
    or None if the peer closed without sending anything."""
    received = False
    while True:
        data = await reader.read(_READ_SIZE)
        if not data:
            if not received:
                return None
            raise MqttProtocolError("truncated CONNECT" if not parser.idle else "closed before CONNECT")
        received = True
        packets = parser.feed(data)
        if packets:
            first, *rest = packets
            if not isinstance(first, Connect):
                raise MqttProtocolError(f"first packet is {type(first).__name__}, not CONNECT")
            return first, rest
