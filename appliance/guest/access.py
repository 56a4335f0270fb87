"""Who may see what on the guest pages: signed photo links, PIN cookies, host links and
per-client rate limits. Pure logic plus one secret file; runs on the asyncio thread.

- A photo link carries the photo id and an expiry, and an HMAC over them *and the event code*:
  the same token under another event's URL does not verify. Links expire at a UTC day boundary
  at least ``guest.link_hours`` ahead, so a thumbnail's URL stays the same all day and browsers
  cache it.
- A ZIP link signs the list of photo ids the guest was shown, compressed.
- An event PIN is stored as an scrypt hash; a guest who typed it gets a cookie holding an HMAC of
  the event and the PIN hash (a new PIN invalidates every cookie).
- A host link is ``/host/<key>`` with 32 random bytes; only its SHA-256 is stored.
- An absolute link (the JSON API's, the QR code's) names the box by ``guest.public_url``, else by
  the name the guest typed *only if it is one of the box's own*, else by the address the guest's
  connection reached. A ``Host`` header is never copied into a link: a neighbour who forges one
  gets links to the box all the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from appliance.config import GuestSettings
    from appliance.layout import Layout

DAY = 86_400
_MAC_BYTES = 16
_MAX_CLIENTS = 20_000  # rate-limit memory bound (a venue has hundreds of phones)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_link_key(layout: Layout) -> bytes:
    """The box's link-signing secret, made on first use (0600, inside the 0700 data folder)."""
    path = layout.link_key
    try:
        key = path.read_bytes()
        if len(key) == 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return key


def new_host_key() -> tuple[str, str]:
    """A host link key and the hash to store."""
    key = secrets.token_urlsafe(32)
    return key, host_key_hash(key)


def host_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def own_names(names: Iterable[str | None]) -> frozenset[str]:
    """The host names that are the box's (lower case), each single label also as ``<label>.local``."""
    found: set[str] = set()
    for name in names:
        name = (name or "").strip().rstrip(".").lower()
        if name:
            found.add(name)
            if "." not in name:
                found.add(f"{name}.local")
    return frozenset(found)


def link_base(
    host_header: str | None, local: tuple[str, int | None] | None, names: frozenset[str]
) -> str | None:
    """The ``http://host[:port]`` for absolute links in an answer to a request whose ``Host`` header
    is ``host_header`` and that reached the box at ``local`` (the connection's own address).

    The host is the header's name when that name is one of ``names``, else the local address; the
    port is always the local one. None when the connection's address is unknown."""
    if local is None:
        return None
    address, port = local
    typed = None
    if host_header:
        try:
            typed = urlsplit(f"//{host_header}").hostname
        except ValueError:  # a malformed port or bracket: not a name of ours either
            typed = None
    host = typed.rstrip(".") if typed and typed.rstrip(".") in names else address
    if ":" in host:  # an IPv6 address (with a zone, on a link-local one)
        host = f"[{host.replace('%', '%25')}]"
    return f"http://{host}" + ("" if port in (80, None) else f":{port}")


class ClientWindow:
    """Sliding-window counts per client address (a guest's searches, failed codes): a limit of
    hits per window for each address. cloudsync.ratelimit.RateLimiter is the other kind: one
    token bucket for the account's Rekognition calls."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        hits = self._hits.get(client)
        if hits is None:
            if len(self._hits) >= _MAX_CLIENTS:
                self._prune(now)
            hits = self._hits[client] = deque()
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def _prune(self, now: float) -> None:
        for client in [c for c, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            del self._hits[client]
        if len(self._hits) >= _MAX_CLIENTS:
            self._hits.clear()

    def hit(self, client: str, now: float | None = None) -> bool:
        """Count one attempt; False when the client is over its limit (nothing is counted)."""
        now = time.monotonic() if now is None else now
        hits = self._recent(client, now)
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def exhausted(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return len(self._recent(client, now)) >= self.limit

    def retry_after(self, client: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        hits = self._recent(client, now)
        return max(1, int(hits[0] + self.window - now) + 1) if hits else 1


class GuestAccess:
    def __init__(self, settings: GuestSettings, layout: Layout) -> None:
        self.settings = settings
        self._key = load_link_key(layout)
        self.searches = ClientWindow(settings.searches_per_minute, 60.0)
        self.failures = ClientWindow(settings.code_attempts_per_hour, 3600.0)

    def _mac(self, *parts: bytes) -> bytes:
        return hmac.new(self._key, b"\x1f".join(parts), hashlib.sha256).digest()[:_MAC_BYTES]

    def expiry(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        days = -(-self.settings.link_hours // 24)
        return (int(now) // DAY + 1 + days) * DAY

    # --- photo links

    def photo_token(self, event: str, photo_id: int, now: float | None = None) -> str:
        payload = struct.pack(">QI", photo_id, self.expiry(now) // DAY)
        return _b64(payload + self._mac(b"photo", event.encode(), payload))

    def photo_id(self, event: str, token: str, now: float | None = None) -> int | None:
        """The photo a token names, if it was signed for this event and has not expired."""
        try:
            raw = _unb64(token)
        except (ValueError, UnicodeEncodeError):
            return None
        if len(raw) != 12 + _MAC_BYTES:
            return None
        payload, mac = raw[:12], raw[12:]
        if not hmac.compare_digest(mac, self._mac(b"photo", event.encode(), payload)):
            return None
        photo_id, day = struct.unpack(">QI", payload)
        if day * DAY < (time.time() if now is None else now):
            return None
        return int(photo_id)

    # --- ZIP links (many photos)

    def zip_token(self, event: str, photo_ids: list[int], now: float | None = None) -> str:
        ids = sorted(set(photo_ids))
        deltas = [b - a for a, b in zip([0, *ids], ids, strict=False)]
        payload = struct.pack(">I", self.expiry(now) // DAY) + zlib.compress(
            ",".join(map(str, deltas)).encode("ascii"), 9
        )
        return _b64(payload + self._mac(b"zip", event.encode(), payload))

    def zip_ids(self, event: str, token: str, now: float | None = None) -> list[int] | None:
        try:
            raw = _unb64(token)
        except (ValueError, UnicodeEncodeError):
            return None
        if len(raw) <= 4 + _MAC_BYTES or len(raw) > 64_000:
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(b"zip", event.encode(), payload)):
            return None
        (day,) = struct.unpack(">I", payload[:4])
        if day * DAY < (time.time() if now is None else now):
            return None
        deltas = [int(x) for x in zlib.decompress(payload[4:]).decode("ascii").split(",") if x]
        ids, total = [], 0
        for delta in deltas:
            total += delta
            ids.append(total)
        return ids

    # --- event PIN

    def pin_cookie_name(self, event: str) -> str:
        return f"sb_pin_{event}"

    def pin_cookie(self, event: str, pin_hash: str) -> str:
        return _b64(self._mac(b"pin", event.encode(), pin_hash.encode()))

    def pin_cookie_ok(self, event: str, pin_hash: str, cookie: str | None) -> bool:
        return cookie is not None and hmac.compare_digest(cookie, self.pin_cookie(event, pin_hash))
