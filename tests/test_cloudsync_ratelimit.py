"""The shared Rekognition limiter: guests' searches go ahead of indexing; throttling halves
the rate and it recovers; bandwidth is shared by all uploads."""

from __future__ import annotations

import threading
import time

from cloudsync.bandwidth import ByteBucket
from cloudsync.ratelimit import INDEX, SEARCH, RateLimiter


def test_search_overtakes_waiting_index_calls() -> None:
    limiter = RateLimiter(4.0, burst=1.0)
    assert limiter.acquire(INDEX)  # spend the burst: everyone now waits for the next token
    order: list[str] = []
    lock = threading.Lock()

    def take(name: str, lane: int) -> None:
        limiter.acquire(lane)
        with lock:
            order.append(name)

    indexers = [threading.Thread(target=take, args=(f"index{i}", INDEX)) for i in range(3)]
    for t in indexers:
        t.start()
    time.sleep(0.05)  # the indexers are queued first
    guest = threading.Thread(target=take, args=("search", SEARCH))
    guest.start()
    for t in [*indexers, guest]:
        t.join(10)
    assert order[0] == "search", order
    assert sorted(order[1:]) == ["index0", "index1", "index2"]


def test_acquire_times_out_and_throttling_halves_the_rate() -> None:
    limiter = RateLimiter(5.0, burst=1.0, recovery_s=3600)
    assert limiter.acquire(INDEX)
    assert limiter.acquire(INDEX, timeout=0.0) is False
    limiter.backoff()
    assert limiter.rate == 2.5
    for _ in range(10):
        limiter.backoff()
    assert limiter.rate == 0.2, "never below 0.2 requests/s"


def test_rate_recovers_after_throttling_stops() -> None:
    limiter = RateLimiter(5.0, burst=1.0, recovery_s=0.0)
    limiter.backoff()
    assert limiter.rate == 2.5
    limiter.acquire(INDEX)
    limiter.acquire(INDEX)
    assert limiter.rate > 2.5


def test_byte_bucket_unlimited_and_rate_change() -> None:
    bucket = ByteBucket(None)
    bucket.take(10**9)  # unlimited: returns at once
    bucket.set_rate(1_000_000.0)
    assert bucket.rate == 1_000_000.0
    bucket.take(100_000)  # within the burst
