"""Caller PINs: stored as salted scrypt hashes, checked in Python.

SQL cannot check a scrypt hash, so an IVR flow that asks for account and PIN looks the
account up (``SqlLookup`` returning the ``pin_hash`` column), then calls ``verify_pin``
with the digits the caller typed (a lookup node's ``verify: {secret: "{pin}", against:
pin_hash}`` in a flow). A 4-digit PIN has only 10,000 values: hashing keeps
PINs out of plain sight (backups, screenshots, a careless ``SELECT *``), it cannot make
them brute-force-proof; limiting attempts per call and account does that.

scrypt takes a few tens of milliseconds on purpose: call ``verify_pin`` through
``asyncio.to_thread`` from the event loop.

Stored form: ``scrypt$<log2 n>$<r>$<p>$<salt, base64>$<hash, base64>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from acd.log import get_logger

log = get_logger(__name__)

SCHEME = "scrypt"
LOG2_N = 14  # n = 16384, r = 8: 16 MiB of memory per check
R = 8
P = 1
SALT_BYTES = 16
HASH_BYTES = 32
_MAX_MEM = 64 * 2**20  # stored parameters needing more memory than this never match
_MAX_P = 4


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """The stored form of ``pin`` (digits only, as typed on a phone keypad)."""
    if not (pin.isascii() and pin.isdigit()):
        raise ValueError("a PIN is made of the digits 0-9")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = _scrypt(pin, salt, LOG2_N, R, P)
    return "$".join((SCHEME, str(LOG2_N), str(R), str(P), _b64(salt), _b64(digest)))


def verify_pin(pin: str, stored: str) -> bool:
    """Whether ``pin`` matches ``stored``; a malformed stored value never matches."""
    try:
        scheme, log2_n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME or not 1 <= int(log2_n) <= 30 or not 1 <= int(p) <= _MAX_P:
            raise ValueError(f"unsupported scheme or cost {scheme}${log2_n}${r}${p}")
        expected = base64.b64decode(digest, validate=True)
        actual = _scrypt(pin, base64.b64decode(salt, validate=True), int(log2_n), int(r), int(p))
    except (ValueError, OverflowError, binascii.Error) as exc:
        log.warning("pin_hash_malformed", error=str(exc))
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(pin: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        pin.encode(), salt=salt, n=2**log2_n, r=r, p=p, maxmem=_MAX_MEM, dklen=HASH_BYTES
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
