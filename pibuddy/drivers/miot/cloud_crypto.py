"""The Mi app API's request envelope, sans-I/O: nonces, the signed nonce and RC4-encrypted form fields.

Facts as the established open-source token tools use them (the Mi Home app's own API, not Xiaomi's
registered OAuth clients):
- nonce = base64(8 random bytes ‖ minutes since the epoch as 4 big-endian bytes);
- signed nonce = base64(SHA-256(base64decode(ssecurity) ‖ base64decode(nonce)));
- signature = base64(SHA-1("POST&<path>&k1=v1&...&<signed nonce>")), path relative to `/app`;
- each form value is RC4(key = base64decode(signed nonce), the first 1024 keystream bytes dropped), base64;
- form = {data, rc4_hash__ (signature of the plain fields), signature (of the encrypted ones), ssecurity,
  _nonce}; the answer body is base64 RC4 under the same key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Mapping
from typing import Final

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

_DROPPED_KEYSTREAM: Final = 1024


def make_nonce(*, random_bytes: bytes | None = None, now: float | None = None) -> str:
    minutes = int((time.time() if now is None else now) // 60)
    return base64.b64encode((random_bytes or os.urandom(8)) + minutes.to_bytes(4, "big")).decode()


def signed_nonce(ssecurity: str, nonce: str) -> str:
    digest = hashlib.sha256(base64.b64decode(ssecurity) + base64.b64decode(nonce)).digest()
    return base64.b64encode(digest).decode()


def signature(method: str, path: str, params: Mapping[str, str], signed: str) -> str:
    text = "&".join([method.upper(), path, *(f"{k}={v}" for k, v in params.items()), signed])
    return base64.b64encode(hashlib.sha1(text.encode()).digest()).decode()


def rc4(signed: str, data: bytes) -> bytes:
    """RC4 both ways (it is symmetric), keyed by the signed nonce, after dropping 1024 keystream bytes."""
    cipher = Cipher(ARC4(base64.b64decode(signed)), mode=None).encryptor()
    cipher.update(bytes(_DROPPED_KEYSTREAM))
    return cipher.update(data)


def encrypt_form(path: str, data: str, *, ssecurity: str, nonce: str) -> dict[str, str]:
    """The POST form for one API call carrying the JSON text `data`."""
    signed = signed_nonce(ssecurity, nonce)
    plain = {"data": data}
    plain["rc4_hash__"] = signature("POST", path, plain, signed)
    form = {k: base64.b64encode(rc4(signed, v.encode())).decode() for k, v in plain.items()}
    form["signature"] = signature("POST", path, form, signed)
    form["ssecurity"] = ssecurity
    form["_nonce"] = nonce
    return form


def decrypt_body(body: bytes, *, ssecurity: str, nonce: str) -> bytes:
    """The plaintext of an answer body; ValueError if it is not base64."""
    return rc4(signed_nonce(ssecurity, nonce), base64.b64decode(body, validate=True))
