"""Brute-force defence (after SFTPGo's defender): failed logins score per IP; past a threshold
the IP is banned, each further ban twice as long. A good login clears only the failures for its
own key, so one known key cannot launder guesses at another. Thread-safe: called from every
session thread and from the acceptor threads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Record:
    events: deque[tuple[float, int, str]] = field(default_factory=deque)  # (when, score, username)
    banned_until: float = 0.0
    bans: int = 0
    refusals_logged_at: float = float("-inf")
    refusals_unlogged: int = 0


class Defender:
    SCORE_WRONG_PASSWORD = 1
    SCORE_UNKNOWN_USER = 2
    REFUSAL_LOG_INTERVAL = 30.0

    def __init__(self, *, threshold: int, window: float, ban_time: float, ban_time_max: float) -> None:
        self.threshold = threshold
        self.window = window
        self.ban_time = ban_time
        self.ban_time_max = ban_time_max
        self._lock = threading.Lock()
        self._ips: dict[str, _Record] = {}

    def banned_for(self, ip: str, now: float | None = None) -> float:
        """Seconds the IP stays banned (0 when it may try)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            record = self._ips.get(ip)
            return max(0.0, record.banned_until - now) if record else 0.0

    def record_failure(self, ip: str, score: int, username: str = "", now: float | None = None) -> float:
        """Add a failed login for ``username``; return the ban length in seconds when this failure
        bans the IP (0 otherwise, also when the IP is already banned: a guess that was running
        when another connection crossed the threshold neither adds up nor bans again)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            record = self._ips.setdefault(ip, _Record())
            if record.banned_until > now:
                return 0.0
            record.events.append((now, score, username))
            while record.events and record.events[0][0] < now - self.window:
                record.events.popleft()
            if sum(s for _, s, _ in record.events) < self.threshold:
                return 0.0
            length = float(min(self.ban_time * 2.0**record.bans, self.ban_time_max))
            record.bans += 1
            record.banned_until = now + length
            record.events.clear()
            self._prune(now)
            return length

    def record_success(self, ip: str, username: str) -> None:
        """A good login clears the failures for that key only (a mistyped password), never
        those for another key or an unknown name from the same address."""
        with self._lock:
            record = self._ips.get(ip)
            if record is not None:
                record.events = deque(e for e in record.events if e[2] != username)

    def refusal_to_log(self, ip: str, now: float | None = None) -> int | None:
        """For a connection refused because ``ip`` is banned: None when it should not be logged
        (one line per address per ``REFUSAL_LOG_INTERVAL``), else how many refusals since the last
        line went unlogged."""
        now = time.monotonic() if now is None else now
        with self._lock:
            record = self._ips.get(ip)
            if record is None:
                return 0
            if now - record.refusals_logged_at < self.REFUSAL_LOG_INTERVAL:
                record.refusals_unlogged += 1
                return None
            unlogged, record.refusals_unlogged = record.refusals_unlogged, 0
            record.refusals_logged_at = now
            return unlogged

    def banned_ips(self) -> dict[str, float]:
        now = time.monotonic()
        with self._lock:
            return {ip: r.banned_until - now for ip, r in self._ips.items() if r.banned_until > now}

    def _prune(self, now: float) -> None:
        if len(self._ips) > 10_000:  # bound memory under a distributed attack
            for ip in [ip for ip, r in self._ips.items() if r.banned_until < now and not r.events]:
                del self._ips[ip]
