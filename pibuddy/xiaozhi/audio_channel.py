"""The audio leg of a session: Opus frames to wire bytes and back, per transport.

Over udp it holds what each hello renews: the AES key and ssrc (`UdpParams`), the outgoing sequence
(the first packet after a hello is 1) and the incoming sequence rule. Over a WebSocket it only frames.
It knows nothing of conversation state; `Session` decides when audio may flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pibuddy.xiaozhi.const import AudioTransport, Role
from pibuddy.xiaozhi.errors import LocalProtocolError
from pibuddy.xiaozhi.framing import AudioFrame, WsProtocolVersion, decode_frame, encode_frame
from pibuddy.xiaozhi.udp_codec import ReceiveWindow, UdpParams, open_packet, seal


@dataclass(slots=True)
class AudioChannel:
    role: Role
    transport: AudioTransport
    ws_version: WsProtocolVersion = WsProtocolVersion.V1
    udp: UdpParams | None = None
    """Key, nonce and address of the current UDP channel; None when closed."""
    receive_window: ReceiveWindow = field(init=False)
    send_sequence: int = 0

    def __post_init__(self) -> None:
        self.receive_window = ReceiveWindow(self.role)

    def start(self, udp: UdpParams | None) -> None:
        """A new session began: new key, both sequences from zero."""
        self.udp = udp
        self.send_sequence = 0
        self.receive_window.reset()

    def stop(self) -> None:
        """The channel closed: forget the key so nothing more is sealed or opened with it."""
        self.udp = None

    def encode(self, payload: bytes, timestamp: int) -> bytes:
        if self.transport is AudioTransport.WEBSOCKET:
            return encode_frame(self.ws_version, AudioFrame(timestamp, payload))
        udp = self._require_udp()
        sequence = self.send_sequence + 1
        datagram = seal(udp.key, udp.ssrc, timestamp, sequence, payload)
        self.send_sequence = sequence
        return datagram

    def decode(self, data: bytes) -> AudioFrame | None:
        """The frame in `data`, or None if the sequence rule drops it; malformed data raises."""
        if self.transport is AudioTransport.WEBSOCKET:
            return decode_frame(self.ws_version, data)
        # A device holds the firmware's exact-length rule; the gateway tolerates trailing bytes (§4.3).
        packet = open_packet(self._require_udp().key, data, exact_length=self.role is Role.DEVICE)
        if self.receive_window.admit(packet.sequence).dropped:
            return None
        return AudioFrame(packet.timestamp, packet.payload)

    def _require_udp(self) -> UdpParams:
        if self.udp is None:
            raise LocalProtocolError("no UDP channel parameters: the channel is not open")
        return self.udp
