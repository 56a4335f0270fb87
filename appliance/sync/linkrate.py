"""What the uplink really carries: bytes acknowledged per second of busy time, from the sync's
own transfers (S3 PUTs, IndexFaces request bodies) and the uplink probe's round trips.

A transfer is known by its body size, when its first byte went and when its answer came (the
acknowledgment). Only the time bytes spent on the link is busy time, so the meter counts each
transfer's interval less the round trip(s) it spent waiting for answers, the round trip being
the fastest the probe (a HEAD with no body) saw over the window. The rate is then the bytes over
the union of those intervals in the last ``window`` seconds: idle time between photos is not
counted (a box shooting slowly does not think its link is slow), overlapping transfers are not
counted twice (eight photos in flight do not make the link eight times as fast), and a 150 ms
path does not make a 200 kB PUT look like a 200 kbit/s link. A transfer that overlaps a probe
that got no answer (a blackout, a stall) is left out: the time it spent waiting for the link to
come back says nothing about what the link carries when it is there.

Only the upward direction is measured: it carries the proxies and originals; the answers coming
down are a few hundred bytes each.

Thread-safe: ``transfer`` is called from the sync's worker threads, ``rtt``, ``outage`` and
``rate`` from the asyncio thread (the probe task, the choice of a cloud proxy, the status).
Pure bookkeeping, no I/O; the clock is ``time.monotonic`` unless the caller passes times
(tests do).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

WINDOW_S = 120.0  # "the last minutes": ~500 PUTs at 4 photos/s, yet a changed link shows within one
MIN_BYTES = 16 * 1024  # smaller bodies say nothing about bandwidth (their time is round trips)
MIN_SAMPLE_BYTES = 512 * 1024  # the meter answers only once this much was seen in the window
MIN_BUSY_S = 0.05  # a transfer counts at least this long (its answer cannot come sooner)


@dataclass(frozen=True, slots=True)
class _Transfer:
    start: float
    end: float
    nbytes: int
    waits: int  # round trips spent waiting for answers, not sending


class LinkMeter:
    """Bytes per second the uplink carried while busy, over the last ``window`` seconds."""

    def __init__(self, *, window: float = WINDOW_S) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._transfers: deque[_Transfer] = deque()
        self._rtts: deque[tuple[float, float]] = deque()  # (when, seconds)
        self._outages: deque[tuple[float, float]] = deque()  # (from, to): probes that got no answer

    def transfer(self, nbytes: int, started: float, ended: float, *, waits: int = 1) -> None:
        """A request whose ``nbytes`` body went between ``started`` (monotonic) and its answer at
        ``ended``; ``waits``: round trips in that interval that carried no body (1: the answer;
        2 when the request waited for ``100 Continue`` before sending the body)."""
        if nbytes < MIN_BYTES or ended <= started:
            return
        with self._lock:
            self._transfers.append(_Transfer(started, ended, nbytes, waits))
            self._trim(ended)

    def rtt(self, seconds: float, at: float | None = None) -> None:
        """A round trip with (next to) no body: the probe's HEAD."""
        at = time.monotonic() if at is None else at
        with self._lock:
            self._rtts.append((at, seconds))
            self._trim(at)

    def outage(self, started: float, ended: float) -> None:
        """A probe sent at ``started`` got no answer by ``ended``: the link was not carrying."""
        with self._lock:
            self._outages.append((started, ended))
            self._trim(ended)

    def base_rtt(self, now: float | None = None) -> float:
        """The fastest round trip the probe saw in the window (queueing only adds to it), 0 if none."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            return min((s for _, s in self._rtts), default=0.0)

    def rate(self, now: float | None = None) -> float | None:
        """Bytes per second of busy time in the window; None until enough was seen."""
        now = time.monotonic() if now is None else now
        rtt = self.base_rtt(now)
        with self._lock:
            self._trim(now)
            outages = list(self._outages)
            transfers = [
                t
                for t in self._transfers
                if not any(t.start < end and start < t.end for start, end in outages)
            ]
        total = sum(t.nbytes for t in transfers)
        if total < MIN_SAMPLE_BYTES:
            return None
        spans = []
        for t in transfers:
            busy = max(MIN_BUSY_S, (t.end - t.start) - t.waits * rtt)
            spans.append((max(t.start, t.end - busy), t.end))  # the bytes went before the answer
        spans.sort()
        busy_s, cur_start, cur_end = 0.0, spans[0][0], spans[0][1]
        for start, end in spans[1:]:
            if start > cur_end:
                busy_s += cur_end - cur_start
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        busy_s += cur_end - cur_start
        return total / busy_s

    def _trim(self, now: float) -> None:
        cutoff = now - self.window
        while self._transfers and self._transfers[0].end < cutoff:
            self._transfers.popleft()
        while self._rtts and self._rtts[0][0] < cutoff:
            self._rtts.popleft()
        while self._outages and self._outages[0][1] < cutoff:
            self._outages.popleft()
