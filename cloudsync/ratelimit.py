"""One account-wide request limiter for Rekognition (default 5 TPS per operation family in most
regions), shared by every worker thread, with a priority lane: a guest's search waits only for
the next token, never behind a queue of indexing calls.

Thread-safe; callers block in ``acquire``. When AWS throttles anyway (other boxes on the same
account), ``backoff()`` halves the rate for a while and it recovers step by step.
"""

from __future__ import annotations

import threading
import time

SEARCH = 0  # guests waiting: first
INDEX = 1


class RateLimiter:
    def __init__(self, rate_per_s: float, *, burst: float = 1.0, recovery_s: float = 10.0) -> None:
        self._cond = threading.Condition()
        self._nominal = rate_per_s
        self._rate = rate_per_s
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()
        self._waiting = [0, 0]
        self._recovery_s = recovery_s
        self._last_backoff = 0.0

    @property
    def rate(self) -> float:
        with self._cond:
            return self._rate

    def acquire(self, lane: int = INDEX, timeout: float | None = None) -> bool:
        """Take one token, searches before indexing; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._waiting[lane] += 1
            try:
                while True:
                    self._refill()
                    ahead = lane == INDEX and self._waiting[SEARCH] > 0
                    if self._tokens >= 1 and not ahead:
                        self._tokens -= 1
                        self._cond.notify_all()
                        return True
                    wait = (1 - self._tokens) / self._rate if self._tokens < 1 else 0.05
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return False
                        wait = min(wait, left)
                    self._cond.wait(max(wait, 0.001))
            finally:
                self._waiting[lane] -= 1
                self._cond.notify_all()

    def backoff(self) -> None:
        """AWS said ThrottlingException: halve the rate (not below 0.2/s)."""
        with self._cond:
            self._rate = max(0.2, self._rate / 2)
            self._last_backoff = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        if self._rate < self._nominal and now - self._last_backoff > self._recovery_s:
            self._rate = min(self._nominal, self._rate * 1.5)
            self._last_backoff = now
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
