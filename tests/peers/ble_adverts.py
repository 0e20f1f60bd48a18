"""BLE advertisement frames built from the public formats, for the fake backend and the mocked BlueZ.

BTHome v2 (bthome.io/format): service data 0xFCD2 = device-info byte (bit 0 encrypted, bits 5-7 version 2),
then object-id/value pairs, little-endian, in ascending id order. Encrypted: AES-CCM (4-byte tag) over the
objects with nonce = MAC (6, as written) + FCD2 little-endian + device-info byte + counter (4, LE); the frame is
device-info + ciphertext + counter + tag.

Xiaomi MiBeacon v5: service data 0xFE95 = frame control (LE: bit 3 encrypted, bit 4 MAC included, bit 6 object
included, bits 12-15 version) + product id (LE) + frame counter + MAC (reversed) + objects (id LE, length,
value). Encrypted: AES-CCM (4-byte tag, associated data 0x11) over the objects with nonce = reversed MAC +
product id + frame counter + 3-byte extended counter; the frame ends with that counter and the tag.
"""

from __future__ import annotations

import struct
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESCCM

BTHOME_UUID: Final = "0000fcd2-0000-1000-8000-00805f9b34fb"
MIBEACON_UUID: Final = "0000fe95-0000-1000-8000-00805f9b34fb"
LYWSD03MMC: Final = 0x055B
_BTHOME_V2: Final = 0x40


def bthome_objects(*, packet_id: int | None = None, battery: int | None = None, temperature: float | None = None,
                   humidity: float | None = None) -> bytes:
    """Object ids 0x00 packet id, 0x01 battery %, 0x02 temperature x0.01 °C (signed), 0x03 humidity x0.01 %."""
    out = b""
    if packet_id is not None:
        out += bytes([0x00, packet_id])
    if battery is not None:
        out += bytes([0x01, battery])
    if temperature is not None:
        out += b"\x02" + struct.pack("<h", round(temperature * 100))
    if humidity is not None:
        out += b"\x03" + struct.pack("<H", round(humidity * 100))
    return out


def bthome_plain(objects: bytes) -> bytes:
    return bytes([_BTHOME_V2]) + objects


def bthome_encrypted(objects: bytes, *, key: bytes, mac: str, counter: int) -> bytes:
    info = _BTHOME_V2 | 0x01
    counter_bytes = struct.pack("<I", counter)
    nonce = bytes.fromhex(mac.replace(":", "")) + b"\xd2\xfc" + bytes([info]) + counter_bytes
    sealed = AESCCM(key, tag_length=4).encrypt(nonce, objects, None)
    return bytes([info]) + sealed[:-4] + counter_bytes + sealed[-4:]


def mibeacon_temperature_humidity(temperature: float, humidity: float) -> bytes:
    """Object 0x100D: temperature x0.1 °C (signed) and humidity x0.1 %."""
    return struct.pack("<HB", 0x100D, 4) + struct.pack("<hH", round(temperature * 10), round(humidity * 10))


def mibeacon(objects: bytes, *, mac: str, frame_counter: int, product_id: int = LYWSD03MMC,
             key: bytes | None = None, ext_counter: int = 0) -> bytes:
    control = 0x5000 | 0x0040 | 0x0010 | (0x0008 if key else 0)
    product = struct.pack("<H", product_id)
    mac_reversed = bytes.fromhex(mac.replace(":", ""))[::-1]
    header = struct.pack("<H", control) + product + bytes([frame_counter]) + mac_reversed
    if key is None:
        return header + objects
    ext = ext_counter.to_bytes(3, "little")
    nonce = mac_reversed + product + bytes([frame_counter]) + ext
    sealed = AESCCM(key, tag_length=4).encrypt(nonce, objects, b"\x11")
    return header + sealed[:-4] + ext + sealed[-4:]
