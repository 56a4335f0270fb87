"""Upload-key secrets: generation, slow salted hashing (scrypt) and constant-time checks.

Pure functions, called from FTP session threads (verify) and the asyncio thread (create).
A stored hash looks like ``scrypt$<log2 n>$<r>$<p>$<salt b64>$<key b64>``; the cloud backend
may push a key as such a string instead of a secret (see docs/security.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

# Letters and digits that survive being typed on a camera's d-pad keyboard: no 0/o, 1/l/i.
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
EVENT_CODE_LENGTH = 8
SECRET_LENGTH = 14  # 31**14 ~ 2**69: offline-guessing-proof behind scrypt, still typeable

_LOG2_N, _R, _P = 15, 8, 1  # ~90 ms on our 2-core x86 (a Pi 4 is slower); 32 MiB per check
_HASH_RE = re.compile(r"^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")
_MAX_LOG2_N = 20


def new_event_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(EVENT_CODE_LENGTH))


def new_secret() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    key = _scrypt(secret, salt, _LOG2_N, _R, _P)
    return "$".join(["scrypt", str(_LOG2_N), str(_R), str(_P), _b64(salt), _b64(key)])


def valid_hash(stored: str) -> bool:
    """Whether ``stored`` is a hash this box can verify (a pushed key's ``secret_hash``)."""
    match = _HASH_RE.match(stored)
    if match is None or not 10 <= int(match.group(1)) <= _MAX_LOG2_N:
        return False
    r, p = int(match.group(2)), int(match.group(3))
    try:
        salt = base64.b64decode(match.group(4), validate=True)
        key = base64.b64decode(match.group(5), validate=True)
    except ValueError:
        return False
    # a login must stay cheap on a 2 GB board: at most 64 MiB and a few passes per check
    memory = 128 * (1 << int(match.group(1))) * r
    return r >= 1 and memory <= 64 << 20 and 1 <= p <= 4 and len(salt) >= 8 and 16 <= len(key) <= 64


def verify_secret(secret: str, stored: str) -> bool:
    """True when ``secret`` matches ``stored``; constant time in the secret's content."""
    match = _HASH_RE.match(stored)
    if match is None or not 10 <= int(match.group(1)) <= _MAX_LOG2_N:
        return False
    log2_n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    salt, expected = base64.b64decode(match.group(4)), base64.b64decode(match.group(5))
    actual = _scrypt(secret, salt, log2_n, r, p, len(expected))
    return hmac.compare_digest(actual, expected)


def _scrypt(secret: str, salt: bytes, log2_n: int, r: int, p: int, dklen: int = 32) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=128 * n * r * 2 + (1 << 20)
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
