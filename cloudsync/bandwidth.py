"""A thread-safe token bucket for upload bytes, so the sync never starves the guests' WiFi.

Shared by every upload thread: ``take(n)`` blocks the calling thread until ``n`` bytes may be
sent. ``rate=None`` means unlimited. The rate can change at run time (operator's setting).
"""

from __future__ import annotations

import threading
import time


class ByteBucket:
    def __init__(self, rate_bytes_per_s: float | None, *, burst_bytes: int = 256 * 1024) -> None:
        self._lock = threading.Lock()
        self._rate = rate_bytes_per_s
        self._burst = float(burst_bytes)
        self._tokens = float(burst_bytes)
        self._stamp = time.monotonic()

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate_bytes_per_s: float | None) -> None:
        with self._lock:
            self._rate = rate_bytes_per_s

    def take(self, n: int) -> None:
        """Block until ``n`` bytes may go (n larger than the burst is taken in slices)."""
        while n > 0:
            piece = min(n, int(self._burst))
            while True:
                with self._lock:
                    if self._rate is None:
                        return
                    now = time.monotonic()
                    self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
                    self._stamp = now
                    if self._tokens >= piece:
                        self._tokens -= piece
                        break
                    wait = (piece - self._tokens) / self._rate
                time.sleep(min(wait, 0.25))
            n -= piece
