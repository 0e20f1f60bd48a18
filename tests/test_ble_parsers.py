"""Golden tests: our own BTHome v2 and MiBeacon byte vectors through bthome-ble / xiaomi-ble via PiBuddy's glue,
including encryption, a wrong bindkey, a missing one, a downgrade to plaintext, and garbage."""

from __future__ import annotations

import pytest
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from hypothesis import given, settings
from hypothesis import strategies as st

from pibuddy.drivers.ble.adverts import Advert, ParserSet, Problem, Protocol, Reading, service_info
from pibuddy.drivers.ble.sensors import SensorCache, age_text, reading_text
from tests.peers.ble_adverts import (
    BTHOME_UUID,
    MIBEACON_UUID,
    bthome_encrypted,
    bthome_objects,
    bthome_plain,
    mibeacon,
    mibeacon_temperature_humidity,
)

ATC = "A4:C1:38:8D:18:B2"
MIJIA = "A4:C1:38:94:4C:10"
BTHOME_KEY = bytes.fromhex("814aac74c4f17b6c1581e1ab87816b99")
MI_KEY = bytes.fromhex("e9ea895fac7cca6d30532432a516f3a8")
WRONG_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")

# Our vectors, written down once from the public formats; the builders in tests/peers must reproduce them.
BTHOME_PLAIN = bytes.fromhex("40015d02660803c012")  # battery 93 %, 21.50 °C, 48.00 %
BTHOME_NEGATIVE = bytes.fromhex("4002f3fd")  # -5.25 °C
BTHOME_SEALED = bytes.fromhex("41803716c46a8d1d90332211001cd737af")  # packet 9, 19.87 °C, 55.10 %, counter 0x112233
MIBEACON_PLAIN = bytes.fromhex("50505b0507104c9438c1a40d1004e000fe01")  # LYWSD03MMC, 22.4 °C, 51.0 %
MIBEACON_SEALED = bytes.fromhex("58505b0508104c9438c1a4d87c96956189940100002e9af25a")  # same values, v5 AES-CCM


def _advert(parsers: ParserSet, address: str, uuid: str, frame: bytes, name: str | None = None) -> Advert | None:
    adv = AdvertisementData(local_name=name, manufacturer_data={}, service_data={uuid: frame},
                            service_uuids=[uuid], tx_power=None, rssi=-61, platform_data=())
    return parsers.parse(service_info(BLEDevice(address, name, None), adv, source="hci0"))


def _values(advert: Advert | None) -> dict[str, tuple[float | int | str | bool, str]]:
    assert advert is not None
    return {r.key: (r.value, r.unit) for r in advert.readings}


def test_builders_reproduce_the_golden_vectors() -> None:
    assert bthome_plain(bthome_objects(battery=93, temperature=21.5, humidity=48.0)) == BTHOME_PLAIN
    assert bthome_plain(bthome_objects(temperature=-5.25)) == BTHOME_NEGATIVE
    sealed = bthome_encrypted(bthome_objects(packet_id=9, temperature=19.87, humidity=55.1), key=BTHOME_KEY,
                              mac=ATC, counter=0x112233)
    assert sealed == BTHOME_SEALED
    objects = mibeacon_temperature_humidity(22.4, 51.0)
    assert mibeacon(objects, mac=MIJIA, frame_counter=7) == MIBEACON_PLAIN
    assert mibeacon(objects, mac=MIJIA, frame_counter=8, key=MI_KEY, ext_counter=1) == MIBEACON_SEALED


def test_bthome_v2_plain() -> None:
    advert = _advert(ParserSet(), ATC, BTHOME_UUID, BTHOME_PLAIN, name="ATC_8D18B2")
    assert advert is not None
    assert (advert.protocol, advert.encrypted, advert.problem) == (Protocol.BTHOME, False, None)
    assert advert.title == "ATC 18B2"
    assert _values(advert) == {"battery": (93, "%"), "temperature": (21.5, "°C"), "humidity": (48.0, "%")}


def test_bthome_negative_temperature() -> None:
    assert _values(_advert(ParserSet(), ATC, BTHOME_UUID, BTHOME_NEGATIVE)) == {"temperature": (-5.25, "°C")}


def test_bthome_encrypted_with_the_right_key() -> None:
    advert = _advert(ParserSet({ATC: BTHOME_KEY}), ATC, BTHOME_UUID, BTHOME_SEALED)
    assert advert is not None
    assert advert.encrypted
    assert advert.problem is None
    values = _values(advert)
    assert values["temperature"] == (19.87, "°C")
    assert values["humidity"] == (55.1, "%")


@pytest.mark.parametrize(("keys", "problem"), [({ATC: WRONG_KEY}, Problem.WRONG_BINDKEY), ({}, Problem.NEEDS_BINDKEY)])
def test_bthome_encrypted_without_the_right_key_gives_no_values(keys: dict[str, bytes], problem: Problem) -> None:
    advert = _advert(ParserSet(keys), ATC, BTHOME_UUID, BTHOME_SEALED)
    assert advert is not None
    assert advert.problem is problem
    assert advert.readings == ()


def test_bthome_downgrade_to_plaintext_is_refused_after_good_frames() -> None:
    parsers = ParserSet({ATC: BTHOME_KEY})
    assert _values(_advert(parsers, ATC, BTHOME_UUID, BTHOME_SEALED))["temperature"] == (19.87, "°C")
    downgraded = _advert(parsers, ATC, BTHOME_UUID, BTHOME_PLAIN)
    assert downgraded is not None
    assert downgraded.problem is Problem.DOWNGRADE
    assert downgraded.readings == ()


def test_mibeacon_plain() -> None:
    advert = _advert(ParserSet(), MIJIA, MIBEACON_UUID, MIBEACON_PLAIN, name="LYWSD03MMC")
    assert advert is not None
    assert (advert.protocol, advert.encrypted, advert.problem) == (Protocol.MIBEACON, False, None)
    assert advert.title == "Temperature/Humidity Sensor 4C10 (LYWSD03MMC)"
    assert _values(advert) == {"temperature": (22.4, "°C"), "humidity": (51.0, "%")}


def test_mibeacon_encrypted_right_key_then_wrong_key() -> None:
    assert _values(_advert(ParserSet({MIJIA: MI_KEY}), MIJIA, MIBEACON_UUID, MIBEACON_SEALED)) == {
        "temperature": (22.4, "°C"), "humidity": (51.0, "%")}
    wrong = _advert(ParserSet({MIJIA: WRONG_KEY}), MIJIA, MIBEACON_UUID, MIBEACON_SEALED)
    assert wrong is not None
    assert wrong.problem is Problem.WRONG_BINDKEY
    assert wrong.readings == ()


def test_mibeacon_downgrade_is_refused_although_xiaomi_ble_would_accept_it() -> None:
    """xiaomi-ble keeps the last frame's encryption scheme and parses plaintext anyway; the glue must not."""
    parsers = ParserSet({MIJIA: MI_KEY})
    assert _advert(parsers, MIJIA, MIBEACON_UUID, MIBEACON_SEALED).readings  # type: ignore[union-attr]
    spoofed = mibeacon(mibeacon_temperature_humidity(-30.0, 99.0), mac=MIJIA, frame_counter=9)
    downgraded = _advert(parsers, MIJIA, MIBEACON_UUID, spoofed)
    assert downgraded is not None
    assert downgraded.problem is Problem.DOWNGRADE
    assert downgraded.readings == ()


def test_frames_for_other_services_are_not_parsed() -> None:
    assert _advert(ParserSet(), ATC, "0000180f-0000-1000-8000-00805f9b34fb", b"\x50") is None


def test_unknown_mibeacon_product_is_ignored() -> None:
    frame = mibeacon(mibeacon_temperature_humidity(1, 2), mac=MIJIA, frame_counter=1, product_id=0x7777)
    assert _advert(ParserSet(), MIJIA, MIBEACON_UUID, frame) is None


@settings(max_examples=300, deadline=None)
@given(uuid=st.sampled_from([BTHOME_UUID, MIBEACON_UUID]), frame=st.binary(max_size=40),
       keyed=st.booleans())
def test_garbage_never_raises(uuid: str, frame: bytes, keyed: bool) -> None:
    parsers = ParserSet({ATC: BTHOME_KEY} if keyed else None)
    advert = _advert(parsers, ATC, uuid, frame)
    assert advert is None or isinstance(advert, Advert)


def test_untracked_sensors_are_capped_but_configured_ones_always_parse() -> None:
    parsers = ParserSet({ATC: BTHOME_KEY})
    for i in range(70):
        _advert(parsers, f"11:22:33:44:55:{i:02X}", BTHOME_UUID, BTHOME_PLAIN)
    assert _advert(parsers, "11:22:33:44:66:00", BTHOME_UUID, BTHOME_PLAIN) is None
    assert _advert(parsers, ATC, BTHOME_UUID, BTHOME_SEALED).readings  # type: ignore[union-attr]


def test_cache_keeps_values_through_a_failed_frame_and_tracks_times() -> None:
    cache = SensorCache()
    good = Advert(ATC, Protocol.BTHOME, "ATC 18B2", (Reading("temperature", "Temperature", 21.5, "°C"),), True)
    bad = Advert(ATC, Protocol.BTHOME, "ATC 18B2", (), True, Problem.WRONG_BINDKEY)
    cache.record(good, -60, now=100.0)
    record = cache.record(bad, -70, now=130.0)
    assert (record.values_at, record.heard_at, record.rssi) == (100.0, 130.0, -70)
    assert record.problem is Problem.WRONG_BINDKEY
    assert record.readings["temperature"].value == 21.5
    record = cache.record(good, -65, now=140.0)
    assert (record.values_at, record.problem) == (140.0, None)
    assert cache.get(ATC.lower()) is record


def test_spoken_texts() -> None:
    assert reading_text(Reading("temperature", "Temperature", 21.456, "°C")) == "temperature 21.46 °C"
    assert reading_text(Reading("opening", "Opening", True)) == "opening on"
    assert [age_text(s) for s in (0, 1, 59, 60, 600, 7200)] == [
        "0 seconds", "1 second", "59 seconds", "1 minute", "10 minutes", "2 hours"]
