"""Prometheus metrics (served at ``/metrics`` by the admin API; every name is in docs/metrics.md).

Two kinds:
- counters and histograms below, bumped where things happen (FTP session threads, the asyncio
  thread, the sync's threads; prometheus_client is thread-safe). They count since the process
  started, as Prometheus expects;
- gauges read from the box's state at scrape time (queue depth, disk, uplink, health), built by
  ``Snapshot`` from the same status the console reads, so the two never disagree.

Also the short moving windows behind "frames per minute" and "time to full".
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call] # no *_created series: one less line per counter for an SD-card-bound scraper
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

FTP_LOGINS = Counter(
    "shutterbox_ftp_logins", "FTP logins by result (ok, failed, banned)", ["result"], registry=REGISTRY
)
FRAMES_RECEIVED = Counter(
    "shutterbox_frames_received", "Frames landed and acknowledged (226), by kind", ["kind"], registry=REGISTRY
)
FRAMES_REJECTED = Counter(
    "shutterbox_frames_rejected",
    "Uploads not acknowledged, by reason (corrupt, too_large, disk_full, interrupted, error)",
    ["reason"],
    registry=REGISTRY,
)
FRAMES_RESUMED = Counter(
    "shutterbox_frames_resumed",
    "Rejected or interrupted uploads a camera then resumed to a whole frame (counted in"
    " shutterbox_frames_rejected when cut; subtract for the frames really lost to rejection)",
    registry=REGISTRY,
)
FRAMES_QUARANTINED = Counter(
    "shutterbox_frames_quarantined", "Rejected uploads kept in quarantine/", registry=REGISTRY
)
BYTES_RECEIVED = Counter("shutterbox_received_bytes", "Bytes of acknowledged frames", registry=REGISTRY)
SYNC_JOBS = Counter(
    "shutterbox_sync_jobs",
    "Cloud sync job attempts by kind (proxy, original) and result"
    " (done, throttled, network_error, transient_error, dead, quota, error); all but done are retried",
    ["kind", "result"],
    registry=REGISTRY,
)
REKOGNITION_CALLS = Counter(
    "shutterbox_rekognition_calls",
    "Rekognition API calls by operation and result (ok, throttled, error)",
    ["operation", "result"],
    registry=REGISTRY,
)
SENT_BYTES = Counter(
    "shutterbox_sent_bytes",
    "Bytes uploaded to S3 (proxies and originals; retried parts count again)",
    registry=REGISTRY,
)
GUEST_SEARCHES = Counter(
    "shutterbox_guest_searches",
    "Guest selfie searches by result (local or cloud: who answered; else no_face, face_too_small,"
    " not_an_image, too_large)",
    ["result"],
    registry=REGISTRY,
)
SHUTTER_TO_SEARCHABLE = Histogram(
    "shutterbox_shutter_to_searchable_seconds",
    "From a frame's 226 to a guest being able to find it, by path (local face index, cloud)",
    ["path"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, float("inf")),
    registry=REGISTRY,
)

# every label value a dashboard expects, present from the start (as 0) rather than on first use
for _result in ("ok", "failed", "banned"):
    FTP_LOGINS.labels(_result)
for _reason in ("corrupt", "too_large", "disk_full", "interrupted", "error"):
    FRAMES_REJECTED.labels(_reason)
for _path in ("local", "cloud"):
    SHUTTER_TO_SEARCHABLE.labels(_path)

REJECT_REASONS = {"451": "corrupt", "552": "too_large", "452": "disk_full"}


def reject_reason(reply: str) -> str:
    """The metric label for an FTP refusal reply."""
    return REJECT_REASONS.get(reply[:3], "error")


class Window:
    """Events in the last ``seconds`` (thread-safe): a rate without a timer thread."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._items: deque[tuple[float, int]] = deque()

    def add(self, amount: int = 1, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._items.append((now, amount))
            self._trim(now)

    def total(self, now: float | None = None) -> tuple[int, int]:
        """(events, summed amount) inside the window."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            return len(self._items), sum(a for _, a in self._items)

    def _trim(self, now: float) -> None:
        while self._items and self._items[0][0] < now - self.seconds:
            self._items.popleft()


INGEST_MINUTE = Window(60.0)  # frames/min and bytes/s on the dashboard
INGEST_TEN_MINUTES = Window(600.0)  # the rate behind "time to full"
SYNC_MINUTE = Window(60.0)  # S3 objects uploaded and their bytes: the uplink's throughput


def frame_received(kind: str, size: int) -> None:
    FRAMES_RECEIVED.labels(kind).inc()
    BYTES_RECEIVED.inc(size)
    INGEST_MINUTE.add(size)
    INGEST_TEN_MINUTES.add(size)


def sync_job(kind: str, result: str) -> None:
    SYNC_JOBS.labels(kind, result).inc()


def uploaded(bytes_sent: int) -> None:
    """An object went to S3 (not called when it was already there)."""
    SENT_BYTES.inc(bytes_sent)
    SYNC_MINUTE.add(bytes_sent)


class Snapshot(Collector):
    """Gauges from the box's status dict (set just before each scrape, on the asyncio thread)."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        s = self.status
        if not s:
            return
        ftp = s.get("ftp") or {}
        sessions = GaugeMetricFamily("shutterbox_ftp_sessions", "Camera FTP sessions open now")
        sessions.add_metric([], sum((ftp.get("sessions") or {}).values()))
        yield sessions
        banned = GaugeMetricFamily("shutterbox_ftp_banned_ips", "Addresses banned for failed logins now")
        banned.add_metric([], len(ftp.get("banned_ips") or {}))
        yield banned
        photos = GaugeMetricFamily("shutterbox_photos", "Photos on the box by state", labels=["state"])
        for state, count in (s["queue"].get("photos_by_state") or {}).items():
            photos.add_metric([state], count)
        yield photos
        summary = s.get("queue_summary") or {}
        jobs = GaugeMetricFamily(
            "shutterbox_queue_jobs", "Cloud sync jobs by state (pending, in_flight, failed)", labels=["state"]
        )
        for state in ("pending", "in_flight", "failed"):
            jobs.add_metric([state], summary.get(state, 0))
        yield jobs
        oldest = GaugeMetricFamily(
            "shutterbox_queue_oldest_pending_age_seconds", "Age of the oldest job still waiting (0 when none)"
        )
        oldest.add_metric([], summary.get("oldest_pending_age_s") or 0.0)
        yield oldest
        faces = s.get("faces") or {}
        if "photos_pending" in faces:
            backlog = GaugeMetricFamily("shutterbox_face_index_pending", "Photos waiting for the face index")
            backlog.add_metric([], faces["photos_pending"])
            yield backlog
        cloud = s.get("cloud")
        if cloud and cloud.get("enabled"):
            uplink = GaugeMetricFamily(
                "shutterbox_uplink_state", "1 for the uplink's current state", labels=["state"]
            )
            for state in ("online", "degraded", "offline"):
                uplink.add_metric([state], 1.0 if cloud["uplink"] == state else 0.0)
            yield uplink
            paused = GaugeMetricFamily("shutterbox_sync_paused", "1 while the operator has paused sync")
            paused.add_metric([], 1.0 if cloud.get("paused") else 0.0)
            yield paused
            link = cloud.get("link") or {}
            rate = GaugeMetricFamily(
                "shutterbox_uplink_measured_bytes_per_second",
                "What the uplink carried for the sync while busy, last two minutes (0: not measured yet)",
            )
            rate.add_metric([], (link.get("measured_mbit") or 0.0) * 1e6 / 8)
            yield rate
            edge = GaugeMetricFamily(
                "shutterbox_cloud_proxy_long_edge_pixels",
                "Long edge of the cloud proxy last chosen for the link (0: none chosen yet)",
            )
            edge.add_metric([], (link.get("cloud_proxy") or {}).get("long_edge") or 0)
            yield edge
        disk = s["disk"]
        free = GaugeMetricFamily("shutterbox_disk_free_bytes", "Free bytes on the data folder's filesystem")
        free.add_metric([], disk["free_bytes"])
        yield free
        reserve = GaugeMetricFamily("shutterbox_disk_reserve_bytes", "Uploads are refused below this")
        reserve.add_metric([], disk["reserve_bytes"])
        yield reserve
        healthy = GaugeMetricFamily(
            "shutterbox_worker_healthy", "1 while a part of the box beats on time", labels=["part"]
        )
        stalled = set(s.get("stalled") or ())
        for part in s.get("health") or {}:
            healthy.add_metric([part], 0.0 if part in stalled else 1.0)
        yield healthy
        alerts = GaugeMetricFamily("shutterbox_alerts", "Alerts needing a human, by level", labels=["level"])
        for level in ("warning", "critical"):
            alerts.add_metric([level], sum(1 for a in s.get("alerts") or () if a["level"] == level))
        yield alerts


SNAPSHOT = Snapshot()
REGISTRY.register(SNAPSHOT)


def render(status: dict[str, Any]) -> bytes:
    """The exposition text; call on the asyncio thread (the snapshot is set, then read)."""
    SNAPSHOT.status = status
    return generate_latest(REGISTRY)
