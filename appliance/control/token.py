"""The admin API's bearer token for LAN clients (the cloud backend, a Prometheus scraper).

Only its SHA-256 is stored (``DATA/admin-token.sha256``, mode 0600): the token is 256 random
bits, so a fast hash is enough and a stolen SD card does not give it away. Rotating writes a
new hash; the box reads the file again when it changes, so the old token stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

PREFIX = "sbx_"


def rotate(path: Path) -> str:
    """Make a new token, store its hash atomically, and return the token (shown once)."""
    token = PREFIX + secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(_digest(token) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return token


def revoke(path: Path) -> bool:
    """No token at all: LAN clients are refused until the next rotate."""
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


class TokenCheck:
    """Constant-time comparison against the stored hash, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._digest: str | None = None

    @property
    def configured(self) -> bool:
        return self._current() is not None

    def ok(self, token: str) -> bool:
        digest = self._current()
        return digest is not None and hmac.compare_digest(_digest(token), digest)

    def _current(self) -> str | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._digest = None, None
            return None
        stamp = (stat.st_mtime_ns, stat.st_ino)
        if stamp != self._stamp:
            self._digest = self.path.read_text(encoding="ascii").strip() or None
            self._stamp = stamp
        return self._digest


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
