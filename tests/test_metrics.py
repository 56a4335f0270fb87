"""``/metrics`` as a Prometheus scraper reads it, from real boxes: every documented family with its
type and its pre-created labels on a fresh box; the counters after real FTP traffic (good, truncated
and refused); the cloud figures against the usage ledger and the fake Rekognition's own count; and
every exposed family documented in docs/metrics.md."""

from __future__ import annotations

import ftplib
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.boxproc import BoxProcess, make_box, store
from tests.conftest import S3_BUCKET, jpeg_bytes
from tests.fakes.rekognition import FakeRekognition, make_face_jpeg
from tests.test_admin_api import login_reply, make_key, push_event, wait_for

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
RESERVE_MB = 64  # tests.boxproc.make_box sets storage.reserve_mb

FAMILIES = {
    "shutterbox_ftp_logins": "counter",
    "shutterbox_frames_received": "counter",
    "shutterbox_frames_rejected": "counter",
    "shutterbox_frames_quarantined": "counter",
    "shutterbox_received_bytes": "counter",
    "shutterbox_sync_jobs": "counter",
    "shutterbox_rekognition_calls": "counter",
    "shutterbox_guest_searches": "counter",
    "shutterbox_shutter_to_searchable_seconds": "histogram",
    "shutterbox_ftp_sessions": "gauge",
    "shutterbox_ftp_banned_ips": "gauge",
    "shutterbox_photos": "gauge",
    "shutterbox_queue_jobs": "gauge",
    "shutterbox_queue_oldest_pending_age_seconds": "gauge",
    "shutterbox_face_index_pending": "gauge",
    "shutterbox_disk_free_bytes": "gauge",
    "shutterbox_disk_reserve_bytes": "gauge",
    "shutterbox_worker_healthy": "gauge",
    "shutterbox_alerts": "gauge",
    "process_resident_memory_bytes": "gauge",
}
CLOUD_ONLY = {
    "shutterbox_uplink_state": "gauge",
    "shutterbox_sync_paused": "gauge",
    "shutterbox_uplink_measured_bytes_per_second": "gauge",
    "shutterbox_cloud_proxy_long_edge_pixels": "gauge",
}
REJECT_REASONS = {"corrupt", "too_large", "disk_full", "interrupted", "error"}


# --- reading a scrape


def scrape(box: BoxProcess) -> dict[str, Metric]:
    response = httpx.get(f"{box.admin_url}/metrics", headers=box.admin_headers(), timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def by_label(families: dict[str, Metric], name: str, label: str, suffix: str = "") -> dict[str, float]:
    """``label`` value -> sample value, for the family's samples named ``name + suffix``."""
    found: dict[str, float] = {}
    for sample in families[name].samples:
        if sample.name == name + suffix:
            found[sample.labels[label]] = sample.value
    return found


def value(families: dict[str, Metric], name: str, suffix: str = "", **labels: str) -> float:
    matches = [
        s.value
        for s in families[name].samples
        if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (name, suffix, labels, families[name].samples)
    return matches[0]


def scrape_until(
    what: str, box: BoxProcess, ready: Callable[[dict[str, Metric]], bool], timeout: float = 10
) -> dict[str, Metric]:
    def attempt() -> dict[str, Metric]:
        families = scrape(box)
        return families if ready(families) else {}

    return wait_for(what, attempt, timeout)


def histogram_count(families: dict[str, Metric], path: str) -> float:
    return value(families, "shutterbox_shutter_to_searchable_seconds", "_count", path=path)


# --- fixtures


@dataclass
class Fresh:
    box: BoxProcess
    at_start: dict[str, Metric]  # scraped before any test ran, whatever the order


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    box = make_box(tmp_path_factory.mktemp("metrics") / "data", faces__workers="1").start(timeout=90)
    fresh = Fresh(box, scrape(box))
    yield fresh
    code = box.stop()
    assert code == 0, f"box exited with {code}:\n{box.log[-4000:]}"


def cloud_box(tmp: Path, s3_endpoint: str, rekognition_url: str) -> BoxProcess:
    return make_box(
        tmp / "data",
        faces__enabled="false",
        cloud__bucket=S3_BUCKET,
        cloud__s3_endpoint_url=s3_endpoint,
        cloud__rekognition_endpoint_url=rekognition_url,
        cloud__access_key_id="test",
        cloud__secret_access_key="test",
        cloud__upload_mbit="400",
    )


def admin(box: BoxProcess) -> httpx.Client:
    return box.admin_api()


# --- 1. a fresh box


def test_fresh_box_exposes_every_family_with_its_type_and_labels(plain: Fresh) -> None:
    m = plain.at_start
    for name, kind in FAMILIES.items():
        assert name in m, f"{name} missing from /metrics"
        assert m[name].type == kind, (name, m[name].type)
        assert m[name].documentation, f"{name} has no help text"

    assert by_label(m, "shutterbox_ftp_logins", "result", "_total") == {"ok": 0, "failed": 0, "banned": 0}
    assert by_label(m, "shutterbox_frames_rejected", "reason", "_total") == dict.fromkeys(REJECT_REASONS, 0.0)
    assert value(m, "shutterbox_frames_quarantined", "_total") == 0
    assert value(m, "shutterbox_received_bytes", "_total") == 0
    for labelled in ("shutterbox_frames_received", "shutterbox_sync_jobs", "shutterbox_rekognition_calls"):
        assert m[labelled].samples == [], f"{labelled} has samples before anything happened"
    assert m["shutterbox_photos"].samples == [], "no photo yet, so no state"
    for path in ("local", "cloud"):
        assert histogram_count(m, path) == 0
        assert value(m, "shutterbox_shutter_to_searchable_seconds", "_sum", path=path) == 0
        buckets = by_label(m, "shutterbox_shutter_to_searchable_seconds", "le", "_bucket")
        assert "+Inf" in buckets
    assert not [
        s for s in m["shutterbox_shutter_to_searchable_seconds"].samples if s.name.endswith("_created")
    ]

    assert value(m, "shutterbox_ftp_sessions") == 0
    assert value(m, "shutterbox_ftp_banned_ips") == 0
    assert by_label(m, "shutterbox_queue_jobs", "state") == {"pending": 0, "in_flight": 0, "failed": 0}
    assert value(m, "shutterbox_queue_oldest_pending_age_seconds") == 0
    assert value(m, "shutterbox_face_index_pending") == 0
    assert by_label(m, "shutterbox_alerts", "level") == {"warning": 0, "critical": 0}
    assert value(m, "shutterbox_disk_reserve_bytes") == RESERVE_MB << 20
    free = shutil.disk_usage(plain.box.data).free
    assert abs(value(m, "shutterbox_disk_free_bytes") - free) < max(free * 0.05, 256 << 20)
    assert value(m, "process_resident_memory_bytes") > 10 << 20
    for name in CLOUD_ONLY:
        assert name not in m, f"{name} is only exposed with cloud sync on"

    def all_parts_beating() -> dict[str, float]:
        parts = by_label(scrape(plain.box), "shutterbox_worker_healthy", "part")
        return parts if {"database", "web", "faces", "ftp-ftp"} <= set(parts) else {}

    parts = wait_for("every part's first heartbeat", all_parts_beating, timeout=15)
    assert set(parts.values()) == {1.0}, parts


# --- 2. after real FTP traffic


def test_counters_follow_real_ftp_traffic(plain: Fresh) -> None:
    box = plain.box
    good = [jpeg_bytes(seed=501), jpeg_bytes(seed=502)]
    assert good[0] != good[1]
    with admin(box) as api:
        user, password = make_key(api, push_event(api, "Metrics"), "metrics-cam")
    with box.ftp(user, password) as ftp:
        for i, frame in enumerate(good):
            assert store(ftp, f"M_{i}.JPG", frame).startswith("226")
        with pytest.raises(ftplib.error_temp, match=r"^451"):
            store(ftp, "M_2.JPG", jpeg_bytes(seed=503)[:-2000])
    assert login_reply(box, user, "not-the-password").startswith("530")

    m = scrape_until("the session closed", box, lambda f: value(f, "shutterbox_ftp_sessions") == 0)
    assert by_label(m, "shutterbox_frames_received", "kind", "_total") == {"jpeg": 2}
    assert value(m, "shutterbox_received_bytes", "_total") == sum(len(frame) for frame in good)
    rejected = by_label(m, "shutterbox_frames_rejected", "reason", "_total")
    assert rejected == {**dict.fromkeys(REJECT_REASONS, 0.0), "corrupt": 1}
    assert value(m, "shutterbox_frames_quarantined", "_total") == 1
    assert by_label(m, "shutterbox_ftp_logins", "result", "_total") == {"ok": 1, "failed": 1, "banned": 0}
    assert value(m, "shutterbox_ftp_banned_ips") == 0
    assert sum(by_label(m, "shutterbox_photos", "state").values()) == 2
    assert len(box.photos()) == 2

    # the local face index observes every photo it has made searchable (faces or none)
    m = scrape_until(
        "both photos in the local face index", box, lambda f: histogram_count(f, "local") >= 2, timeout=60
    )
    assert histogram_count(m, "local") == 2
    assert histogram_count(m, "cloud") == 0
    assert 0 < value(m, "shutterbox_shutter_to_searchable_seconds", "_sum", path="local") < 2 * 60
    buckets = [
        s.value
        for s in m["shutterbox_shutter_to_searchable_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["path"] == "local"
    ]
    assert buckets == sorted(buckets) and buckets[-1] == 2, "cumulative buckets ending at the count"
    assert value(m, "shutterbox_face_index_pending") == 0


# --- 3. with cloud sync on


def test_cloud_counters_match_the_ledger_and_rekognition(
    tmp_path: Path, s3_endpoint: str, rekognition: FakeRekognition
) -> None:
    photos = 3
    box = cloud_box(tmp_path, s3_endpoint, rekognition.url).start()
    try:
        with admin(box) as api:
            event = push_event(api, "Cloud metrics")
            user, password = make_key(api, event, "cloud-cam")
            with box.ftp(user, password) as ftp:
                for i in range(photos):
                    frame = make_face_jpeg(
                        900, 600, [{"person": f"guest{i}", "box": [60, 80, 180, 180]}], seed=i
                    )
                    assert store(ftp, f"C_{i}.JPG", frame).startswith("226")
            wait_for(
                "every job done",
                lambda: api.get("/api/status").json()["cloud"]["jobs"] == {"done": 2 * photos},
                timeout=90,
            )
            m = scrape_until(
                "every photo searchable in the cloud", box, lambda f: histogram_count(f, "cloud") >= photos
            )
            ledger = api.get("/api/ledger").json()
        event_ledger = box.cli("ledger", "--event", event)
    finally:
        code = box.stop()
    assert code == 0, box.log[-4000:]

    index_ok = [r for r in ledger if r["operation"] == "IndexFaces" and r["outcome"] == "ok"]
    assert len(index_ok) == photos
    assert [r for r in event_ledger if r["outcome"] == "ok"] == index_ok
    ok_calls = value(m, "shutterbox_rekognition_calls", "_total", operation="IndexFaces", result="ok")
    assert ok_calls == len(index_ok) == rekognition.count("IndexFaces") == photos
    index_results = {
        s.labels["result"]: s.value
        for s in m["shutterbox_rekognition_calls"].samples
        if s.labels["operation"] == "IndexFaces"
    }
    assert index_results == {"ok": photos}, "nothing throttled or failed in this run"
    # every call the fake answered is counted once, whatever its result (two workers may both try
    # to create the event's collection; the loser's ResourceAlreadyExists counts as an error)
    per_operation: dict[str, float] = {}
    for s in m["shutterbox_rekognition_calls"].samples:
        per_operation[s.labels["operation"]] = per_operation.get(s.labels["operation"], 0) + s.value
    assert set(per_operation) == {call.operation for call in rekognition.calls}
    assert per_operation == {op: rekognition.count(op) for op in per_operation}
    assert value(m, "shutterbox_rekognition_calls", "_total", operation="CreateCollection", result="ok") == 1

    assert value(m, "shutterbox_sync_jobs", "_total", kind="proxy", result="done") == photos
    assert value(m, "shutterbox_sync_jobs", "_total", kind="original", result="done") == photos
    assert by_label(m, "shutterbox_uplink_state", "state") == {"online": 1, "degraded": 0, "offline": 0}
    assert value(m, "shutterbox_sync_paused") == 0
    assert histogram_count(m, "cloud") == photos
    assert histogram_count(m, "local") == 0, "local face index off on this box"
    assert by_label(m, "shutterbox_queue_jobs", "state") == {"pending": 0, "in_flight": 0, "failed": 0}
    assert value(m, "shutterbox_queue_oldest_pending_age_seconds") == 0
    assert sum(by_label(m, "shutterbox_photos", "state").values()) == photos


# --- 4. the reference


def test_every_exposed_family_is_in_docs_metrics_md(plain: Fresh, tmp_path: Path) -> None:
    # cloud sync on (its endpoints unreachable: only the families matter here) for the cloud-only gauges
    box = cloud_box(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9").start()
    try:
        exposed = {**scrape(plain.box), **scrape(box)}
    finally:
        box.stop()
    assert set(FAMILIES) | set(CLOUD_ONLY) <= set(exposed)
    assert DOCS.exists(), f"{DOCS} is missing: every metric the box exposes must be documented there"
    text = DOCS.read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-zA-Z_:][a-zA-Z0-9_:]*\*?)`", text))
    wildcards = [name[:-1] for name in documented if name.endswith("*")]

    def is_documented(family: Metric) -> bool:
        names = {family.name, f"{family.name}_total"} if family.type == "counter" else {family.name}
        return bool(names & documented) or any(family.name.startswith(w) for w in wildcards)

    missing = sorted(name for name, family in exposed.items() if not is_documented(family))
    assert not missing, f"exposed but not in docs/metrics.md: {missing}"

    # and the other way round: the reference names nothing the box does not expose
    exposed_names = set(exposed) | {f"{n}_total" for n, f in exposed.items() if f.type == "counter"}
    stale = sorted(n for n in documented if n.startswith("shutterbox_") and n not in exposed_names)
    assert not stale, f"in docs/metrics.md but not exposed: {stale}"
