"""Brute-force defence (after SFTPGo's defender): failed logins score per IP; past a threshold
the IP is banned, each further ban twice as long. Thread-safe: called from every session thread.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Record:
    events: deque[tuple[float, int]] = field(default_factory=deque)
    banned_until: float = 0.0
    bans: int = 0


class Defender:
    SCORE_WRONG_PASSWORD = 1
    SCORE_UNKNOWN_USER = 2

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

    def record_failure(self, ip: str, score: int, now: float | None = None) -> float:
        """Add a failed login; return the ban length in seconds when this failure bans the IP."""
        now = time.monotonic() if now is None else now
        with self._lock:
            record = self._ips.setdefault(ip, _Record())
            record.events.append((now, score))
            while record.events and record.events[0][0] < now - self.window:
                record.events.popleft()
            if sum(s for _, s in record.events) < self.threshold:
                return 0.0
            length = float(min(self.ban_time * 2.0**record.bans, self.ban_time_max))
            record.bans += 1
            record.banned_until = now + length
            record.events.clear()
            self._prune(now)
            return length

    def record_success(self, ip: str) -> None:
        with self._lock:
            record = self._ips.get(ip)
            if record is not None:
                record.events.clear()

    def banned_ips(self) -> dict[str, float]:
        now = time.monotonic()
        with self._lock:
            return {ip: r.banned_until - now for ip, r in self._ips.items() if r.banned_until > now}

    def _prune(self, now: float) -> None:
        if len(self._ips) > 10_000:  # bound memory under a distributed attack
            for ip in [ip for ip, r in self._ips.items() if r.banned_until < now and not r.events]:
                del self._ips[ip]
