"""The gateway's MQTT codec against the firmware-like device's hand-built bytes, plus hypothesis fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pibuddy.gateway.mqtt_codec import (
    PINGRESP,
    ConnackCode,
    Connect,
    Disconnect,
    MqttParser,
    MqttProtocolError,
    PacketTooLarge,
    PingReq,
    Publish,
    Subscribe,
    encode_connack,
    encode_publish,
    encode_suback,
)
from tests.peers.firmware_device import (
    DISCONNECT,
    PINGREQ,
    connect_packet,
    mqtt_packet,
    publish_packet,
    subscribe_packet,
)

CAP = 8192


def parse(data: bytes, cap: int = CAP) -> list:
    return MqttParser(max_packet_size=cap).feed(data)


def test_firmware_connect_decodes_with_its_credentials() -> None:
    data = connect_packet("GID_x@@@aa_bb_cc_dd_ee_ff@@@u-1", "dXNlcg==", "pass=", keepalive=240)
    assert parse(data) == [Connect(4, True, 240, "GID_x@@@aa_bb_cc_dd_ee_ff@@@u-1", "dXNlcg==", b"pass=")]


def test_mqtt_3_1_connect_is_accepted_and_unknown_level_answers_rc_1() -> None:
    assert parse(connect_packet("c", None, None, level=3))[0].protocol_level == 3
    bad = bytearray(connect_packet("c", None, None))
    bad[8] = 5  # protocol level byte after 0x10, len, 00 04 "MQTT"
    with pytest.raises(MqttProtocolError) as caught:
        parse(bytes(bad))
    assert caught.value.hint == ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION


def test_publish_subscribe_ping_disconnect_in_one_buffer() -> None:
    data = publish_packet("device-server", b'{"type":"hello"}') + subscribe_packet("devices/p2p/x", packet_id=7) \
        + PINGREQ + DISCONNECT + publish_packet("t", b"x", qos=1, packet_id=9)
    assert parse(data) == [
        Publish("device-server", b'{"type":"hello"}', 0),
        Subscribe(7, (("devices/p2p/x", 1),)),
        PingReq(),
        Disconnect(),
        Publish("t", b"x", 1, packet_id=9),
    ]


def test_our_encoders_match_the_independent_builders() -> None:
    payload = ("x" * 300).encode()  # two-byte remaining length
    assert encode_publish("devices/p2p/aa_bb_cc_dd_ee_ff", payload) == publish_packet(
        "devices/p2p/aa_bb_cc_dd_ee_ff", payload)
    assert encode_connack(ConnackCode.BAD_USERNAME_OR_PASSWORD) == bytes([0x20, 2, 0, 4])
    assert encode_suback(7, [0]) == bytes([0x90, 3, 0, 7, 0])
    assert bytes([0xD0, 0]) == PINGRESP


def test_cap_is_checked_before_the_body_arrives() -> None:
    parser = MqttParser(max_packet_size=CAP)
    header_of_a_huge_publish = bytes([0x30, 0xFF, 0xFF, 0x7F])  # remaining length 2 MiB, no body yet
    with pytest.raises(PacketTooLarge):
        parser.feed(header_of_a_huge_publish)
    exactly_at_cap = publish_packet("t", b"x" * (CAP - 3 - 2 - 1))
    assert len(exactly_at_cap) == CAP
    assert parse(exactly_at_cap)[0].payload == b"x" * (CAP - 6)
    with pytest.raises(PacketTooLarge):
        parse(publish_packet("t", b"x" * (CAP - 5)))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]), "remaining length longer than 4 bytes"),
        (mqtt_packet(0x30, b"\x00\x0atop"), "runs past the end"),  # topic length 10, 3 bytes present
        (mqtt_packet(0x36, b"\x00\x01t\x00\x01"), "QoS 3"),
        (mqtt_packet(0x30, b"\x00\x01#"), "invalid topic"),
        (mqtt_packet(0x30, b"\x00\x02\xff\xfe"), "not valid UTF-8"),
        (mqtt_packet(0x80, b"\x00\x01\x00\x01t\x00"), "flags"),  # SUBSCRIBE must have flags 0b0010
        (mqtt_packet(0x40, b"\x00\x01"), "PUBACK is not accepted"),
        (mqtt_packet(0x20, b"\x00\x00"), "CONNACK is not accepted"),
        (mqtt_packet(0xF0, b""), "15 is not accepted"),
        (mqtt_packet(0xC0, b"\x00"), "unexpected bytes"),
        (connect_packet("c", None, "pw"), "password without a user name"),
        (mqtt_packet(0x10, b"\x00\x04MQTT\x04\x03\x00\x00\x00\x00"), "reserved flag"),
        (mqtt_packet(0x10, b"\x00\x04MQTT\x04\x08\x00\x00\x00\x00"), "will flags"),
        (mqtt_packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c\xff"), "unexpected bytes"),
        (mqtt_packet(0x82, b"\x00\x01"), "without a topic"),
    ],
)
def test_malformed_packets_raise_a_typed_error(data: bytes, reason: str) -> None:
    with pytest.raises(MqttProtocolError, match=reason):
        parse(data)


def test_incomplete_packet_waits_and_reports_not_idle() -> None:
    parser = MqttParser(max_packet_size=CAP)
    data = publish_packet("device-server", b"{}")
    assert parser.feed(data[:5]) == []
    assert not parser.idle
    assert parser.feed(data[5:]) == [Publish("device-server", b"{}", 0)]
    assert parser.idle


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # MQTT strings are UTF-8: no surrogates
_packets = st.one_of(
    st.builds(publish_packet, st.text(st.characters(exclude_characters="+#\x00", exclude_categories=("Cs",)),
                                      min_size=1,
                                                         max_size=30), st.binary(max_size=300)),
    st.builds(lambda c, u, p, k: connect_packet(c, u, p, keepalive=k), _text, _text, _text,
              st.integers(0, 65535)),
    st.builds(lambda t, i: subscribe_packet(t, packet_id=i), _text.filter(bool), st.integers(1, 65535)),
    st.just(PINGREQ),
    st.just(DISCONNECT),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_packets, min_size=1, max_size=6), st.data())
def test_any_split_of_valid_packets_decodes_the_same(packets: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(packets)
    whole = parse(stream)
    assert len(whole) == len(packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = MqttParser(max_packet_size=CAP)
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    decoded = [packet for piece in pieces for packet in parser.feed(piece)]
    assert decoded == whole
    assert parser.idle


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=2, max_value=512))
def test_arbitrary_bytes_give_packets_or_a_typed_error(data: bytes, cap: int) -> None:
    parser = MqttParser(max_packet_size=cap)
    try:
        packets = parser.feed(data)
    except MqttProtocolError:
        return
    assert all(isinstance(p, Connect | Publish | Subscribe | PingReq | Disconnect) for p in packets)
    for packet in packets:  # the cap held: no decoded packet is bigger than it
        if isinstance(packet, Publish):
            assert 2 + len(packet.topic.encode()) + len(packet.payload) + 2 <= cap
