"""Cloud-sync benchmark: shutter to searchable in the cloud over an emulated venue uplink.

What it measures
    ``--cameras`` emulated cameras (default 4: one persistent ftplib session and one upload key
    each) send ``--frames`` distinct camera JPEGs (default 500; 3000x2000, ~3 MB, 0-5 declared
    faces of 10 guests, 70-260 px in the frame: 48-178 px in the box's 2048 px proxy, so some
    are under ``faces.min_face_px`` and many near it; the declaration names the frame's size and
    the fake scales it to the proxy it is sent) to a real ``shutterbox up`` at
    ``--fps-per-camera`` (1 frame/s each, scheduled by the clock, cameras staggered). The box's
    cloud sync talks to moto's S3 server and to the fake Rekognition
    (tests/fakes/rekognition.py), each behind a FaultProxy (tests/fakes/faultproxy.py). The two
    proxies share one token bucket per direction
    (``--link-mbit``, 10 Mbit/s) and get the same added latency (``--latency-ms`` each way,
    FaultProxy semantics: 150 ms -> RTT + 300 ms) and the same blackouts (``--blackout-seconds``
    at ``--blackout-first`` s after the first frame, then every ``--blackout-every`` s): one
    uplink carrying both services. During a blackout live connections stall and new ones hang.

    Phases: *shoot* (the cameras run), *settle* (same link, blackouts go on, until every photo
    has ``searchable_in_cloud_at`` or ``--deadline``), then *drain*: the link is healed and the
    box finishes the remaining originals untimed, so that loss and duplicates can be counted over
    every object (``--drain-link emulated`` keeps the faulty link instead). The box runs on its
    own settings (16 sync workers, the cloud proxy sized to the link, Rekognition at AWS's
    default quota for us-east-1, 50 calls/s) but for ``cloud.upload_mbit`` (400: the emulated
    link is the bottleneck, not the box's cap).

    Reported: shutter (226 received by the camera) to searchable-in-cloud (the box's
    ``searchable_in_cloud_at``, committed with IndexFaces' result) p50/p95/max/mean, over all
    photos and over those whose [226, searchable] interval overlaps no blackout; per blackout, when
    the box marked the uplink offline and usable again, the first photo searchable after it and
    when the backlog shot before its end was searchable; uplink bytes (S3 + Rekognition, at the
    proxies) per searchable photo until the last became searchable and how many originals went up
    by then; total bytes against the objects' sizes; duplicate uploads (S3 object versions beyond
    the first, the bucket is versioned), duplicate IndexFaces calls (per ExternalImageId, at the
    fake) and duplicate stored faces; the ledger; lost frames; the box's peak RSS and CPU; the
    cloud proxies the box chose (long edge and quality per photo, from its database) and their
    average size; link use while backlogged (bytes up over the link's capacity, over the
    sampling intervals that start with a photo acked 10 s+ before and not yet searchable and
    overlap no blackout); quality (the faces the fake indexed from the cloud proxies, matched to
    the declared boxes, as a share of the declared faces at least ``faces.min_face_px`` on their
    short side in the 2048 px local proxy); the issue's targets: p50 < 5 s and p95 < 20 s outside
    blackouts, p95 < 60 s and max < 90 s over all photos, photos made searchable per second of
    link up >= the rate shot, link use > 85% while backlogged, quality >= 95%, nothing lost,
    nothing paid twice.

How to reproduce
    make bench-sync                           # or: .venv/bin/python bench/sync.py
    .venv/bin/python bench/sync.py --quick    # 60 frames, one 10 s blackout, ~1-2 min
    .venv/bin/python bench/sync.py --json > out.json
    Everything runs on this machine (box, moto, fake, proxies, cameras share its CPUs). See
    bench/README.md for the flags and the approximations.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import itertools
import json
import math
import secrets
import signal
import sqlite3
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*

import psutil
from _common import ProcTree, fmt, log, machine_info, pct, round_or_none, verdict
from _common import shutterbox_version as _shutterbox_version
from _common import work_base as _work_base
from _sync_helpers import (
    BOX_UPLOAD_MBIT,
    HEIGHT,
    MB,
    PEOPLE,
    WIDTH,
    BlackoutSchedule,
    Cloud,
    Sampler,
    Shot,
    StatusSample,
    cloud_box_settings,
    iso_ts,
    latency_stats,
    make_bases,
    make_frames,
    run_camera,
    uplink_transitions,
    work_dir,
)

from appliance.config import CloudSettings, FacesSettings
from appliance.control.client import ControlClient
from tests.boxproc import BoxProcess, make_box

TARGET_P50_S = 5.0
TARGET_P95_S = 20.0
TARGET_ALL_P95_S = 60.0
TARGET_ALL_MAX_S = 90.0
TARGET_LINK_USE = 0.85
TARGET_QUALITY = 0.95
BACKLOG_AGE_S = 10.0  # backlogged: a photo acked this long ago is not searchable yet
CLIXS_MEAN_S = 25.0
CLIXS_TAIL_S = 120.0
BASES = 12  # distinct pictures (face sets); frames differ further by a COM segment
QUICK = {"frames": 60, "blackout_first": 8.0, "blackout_seconds": 10.0, "deadline": 300.0}
FULL = {"frames": 500, "blackout_first": 60.0, "blackout_seconds": 30.0, "deadline": 1800.0}


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwind through the finally blocks


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class Collected:
    """Everything the run observed; ``analyse`` turns it into figures."""

    event: str = ""
    shots: list[Shot] = field(default_factory=list)
    t0: float = 0.0  # wall clock of the first scheduled frame
    shoot_end: float = 0.0
    heal_at: float = 0.0  # end of the emulated-link phase (wall clock)
    drain_end: float = 0.0
    windows: list[list[float]] = field(default_factory=list)
    photos: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    deadletters: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)
    index_calls: list[str | None] = field(default_factory=list)  # ExternalImageId per call
    create_collection_calls: int = 0
    billable_calls: int = 0
    invalid_requests: int = 0
    fake_crashes: int = 0
    stored_faces: list[dict[str, Any]] = field(default_factory=list)
    bytes_final: tuple[int, int] = (0, 0)
    transitions: list[tuple[float, str, str]] = field(default_factory=list)
    sampler: Sampler | None = None
    box_cpu_s: float | None = None
    peak_rss_mb: float | None = None
    idle_rss_mb: float | None = None
    busy_before_pct: float = 0.0
    proxy_sizes: list[int] = field(default_factory=list)
    cloud_choices: list[tuple[int | None, int | None, int]] = field(default_factory=list)
    drained: bool = False
    sampler_errors: list[str] = field(default_factory=list)


def _cloud_choices(data: Path, event: str) -> list[tuple[int | None, int | None, int]]:
    """(long edge, quality, photos) of the cloud proxies the box chose, read from its database."""
    db = sqlite3.connect(f"file:{data / 'shutterbox.db'}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute(
            "SELECT cloud_proxy_edge, cloud_proxy_quality, count(*) FROM photos WHERE event = ?"
            " GROUP BY 1, 2 ORDER BY 3 DESC",
            (event,),
        ).fetchall()
    finally:
        db.close()
    return [(r[0], r[1], int(r[2])) for r in rows]


def _photos(client: ControlClient, event: str) -> list[dict[str, Any]]:
    return list(client.request("GET", "/api/photos", params={"event": event}))


def _progress(c: Collected, sampler: Sampler, what: str) -> None:
    acked = sum(s.t_226 is not None for s in c.shots)
    st = sampler.status[-1] if sampler.status else None
    up = sampler.samples[-1] if sampler.samples else None
    counters = st.counters if st else {}
    log(
        f"  t={time.time() - c.t0:5.0f}s {what}: 226 {acked}/{len(c.shots)},"
        f" proxies indexed {counters.get('proxy_done', 0)}, originals {counters.get('original_done', 0)},"
        f" link up {((up.s3_up + up.rek_up) / MB) if up else 0:.1f} MB,"
        f" uplink {st.uplink if st else '?'}"
    )


def run(args: argparse.Namespace, c: Collected, work: Path, run_id: str) -> None:
    t_corpus = time.monotonic()
    corpus_dir = work / "corpus"
    corpus_dir.mkdir()
    bases = make_bases(BASES, args.original_mb, corpus_dir)
    frames = make_frames(bases, args.frames, args.cameras, run_id)
    c.proxy_sizes = [f.base.proxy_size for f in frames]
    c.shots = [Shot(f) for f in frames]
    avg = statistics.mean(f.size for f in frames) / MB
    log(
        f"corpus: {len(frames)} frames from {BASES} pictures, avg {avg:.2f} MB, proxies avg"
        f" {statistics.mean(c.proxy_sizes) / 1e3:.0f} kB ({time.monotonic() - t_corpus:.1f} s)"
    )

    cloud = Cloud()
    box: BoxProcess | None = None
    sampler: Sampler | None = None
    schedule: BlackoutSchedule | None = None
    stop = threading.Event()
    cameras: list[threading.Thread] = []
    try:
        cloud.start()
        cloud.emulate(args.link_mbit, args.latency_ms / 1000)
        box = make_box(
            work / "box",
            **cloud_box_settings(
                cloud,
                workers=args.workers,
                proxy_long_edge=args.proxy_long_edge,
                rekognition_tps=args.rekognition_tps,
            ),
        ).start(timeout=60)
        assert box.proc is not None
        c.event = box.new_event("Bench sync")
        keys = [box.new_key(c.event, camera=f"cam{i + 1}") for i in range(args.cameras)]
        tree = ProcTree(box.proc.pid)
        tree.wait_idle()
        c.idle_rss_mb = tree.rss_mb()
        c.busy_before_pct = psutil.cpu_percent(interval=1.0)
        sampler = Sampler(cloud, box.data, tree.rss_mb)
        c.sampler = sampler
        sampler.start()
        cpu0 = tree.cpu_s()

        period = 1.0 / args.fps_per_camera
        t0_mono = time.monotonic() + 1.0
        c.t0 = time.time() + (t0_mono - time.monotonic())
        schedule = BlackoutSchedule(
            cloud, t0_mono, args.blackout_first, args.blackout_every, args.blackout_seconds
        )
        schedule.start()
        log(f"shoot: {args.frames} frames, {args.cameras} cameras x {args.fps_per_camera:g} frame/s ...")
        for cam in range(args.cameras):
            shots = [s for s in c.shots if s.frame.camera == cam]
            user, password = keys[cam]
            offset = cam * period / args.cameras
            thread = threading.Thread(
                target=run_camera,
                args=(box.ftp_port, user, password, shots, t0_mono, period, offset, stop),
                name=f"camera-{cam + 1}",
                daemon=True,
            )
            cameras.append(thread)
            thread.start()
        next_log = time.monotonic() + 10
        while any(t.is_alive() for t in cameras):
            time.sleep(0.5)
            if time.monotonic() >= next_log:
                _progress(c, sampler, "shooting")
                next_log += 10
        c.shoot_end = time.time()

        log("settle: waiting until every photo is searchable (link still emulated) ...")
        wanted = {s.frame.sha256 for s in c.shots if s.t_226 is not None}
        deadline = time.monotonic() + args.deadline
        with ControlClient(box.data, timeout=30) as client:
            while True:
                photos = _photos(client, c.event)
                done = {p["sha256"] for p in photos if p["searchable_in_cloud_at"]}
                if wanted <= done:
                    break
                if time.monotonic() > deadline:
                    log(f"  deadline: {len(wanted - done)} photos not searchable after {args.deadline:g} s")
                    break
                if time.monotonic() >= next_log:
                    _progress(c, sampler, f"{len(done & wanted)} searchable")
                    next_log += 10
                time.sleep(1.0)
        schedule.stop()
        c.windows = schedule.windows
        c.heal_at = time.time()
        c.box_cpu_s = None if cpu0 is None or (cpu1 := tree.cpu_s()) is None else cpu1 - cpu0

        if args.drain_link == "healed":
            cloud.heal()
            log("drain: link healed; waiting for the remaining sync jobs (untimed) ...")
        else:
            log("drain: waiting for the remaining sync jobs over the emulated link ...")
        deadline = time.monotonic() + args.drain_timeout
        with ControlClient(box.data, timeout=30) as client:
            while True:
                jobs = client.request("GET", "/api/status")["cloud"]["jobs"]
                if not jobs.get("pending") and not jobs.get("leased"):
                    c.drained = True
                    break
                if time.monotonic() > deadline:
                    log(f"  drain deadline: jobs {jobs}")
                    break
                if time.monotonic() >= next_log:
                    log(f"  drain: jobs {jobs}")
                    next_log += 10
                time.sleep(1.0)
        c.drain_end = time.time()

        c.photos = list(box.cli("photos", "--event", c.event))
        c.ledger = list(box.cli("ledger", "--event", c.event))
        c.deadletters = list(box.cli("deadletters"))
        c.status = dict(box.cli("status")["cloud"])
        c.cloud_choices = _cloud_choices(box.data, c.event)
        sampler.stop()
        c.sampler_errors = sampler.errors
        c.peak_rss_mb = max((s.rss_mb for s in sampler.samples), default=None)
        c.transitions = uplink_transitions(box.log)
        c.bytes_final = cloud.bytes_up()
        box.stop()
        box = None

        c.versions = cloud.versions(f"events/{c.event}/")
        fake = cloud.rekognition
        assert fake is not None
        calls = fake.calls
        c.index_calls = [
            call.params.get("ExternalImageId") for call in calls if call.operation == "IndexFaces"
        ]
        c.create_collection_calls = sum(call.operation == "CreateCollection" for call in calls)
        c.billable_calls = fake.billable_calls
        c.invalid_requests = len(fake.invalid_requests)
        c.fake_crashes = len(fake.crashes)
        c.stored_faces = fake.collections.get(c.event, [])
    finally:
        stop.set()
        for thread in cameras:
            thread.join(30)
        if schedule is not None:
            schedule.stop()
        if sampler is not None:
            sampler.stop()
        if box is not None:
            box.stop()
        cloud.stop()


# --------------------------------------------------------------------------------------------
# Figures


def _overlaps(a: float, b: float, windows: Sequence[Sequence[float]]) -> bool:
    return any(a < w[1] and w[0] < b for w in windows)


def _backlogged_link_use(
    c: Collected, searchable: dict[str, float], link_bytes_per_s: float, until: float
) -> dict[str, Any]:
    """Link use (bytes up at the proxies over the link's capacity) over the sampler's intervals
    that start with a backlog (a photo acked ``BACKLOG_AGE_S`` or more before not searchable yet)
    and overlap no blackout, from the first frame until ``until``."""
    assert c.sampler is not None
    waits = sorted(
        (s.t_226, searchable.get(s.frame.sha256, math.inf)) for s in c.shots if s.t_226 is not None
    )
    busy_s = sent = 0.0
    samples = [x for x in c.sampler.samples if c.t0 <= x.t <= until]
    for a, b in itertools.pairwise(samples):
        if _overlaps(a.t, b.t, c.windows):
            continue
        if not any(t226 <= a.t - BACKLOG_AGE_S and done > a.t for t226, done in waits if t226 <= a.t):
            continue
        busy_s += b.t - a.t
        sent += (b.s3_up + b.rek_up) - (a.s3_up + a.rek_up)
    return {
        "backlogged_s": round_or_none(busy_s, 1),
        "link_use": round_or_none(sent / (link_bytes_per_s * busy_s), 3) if busy_s > 0 else None,
    }


def _quality(
    c: Collected,
    by_sha: dict[str, dict[str, Any]],
    searchable: dict[str, float],
    long_edge: int,
    min_face: int,
) -> dict[str, Any]:
    """Faces the fake indexed from the cloud proxy, against the declared faces at least
    ``min_face`` px (short side) in the box's local proxy (``long_edge``), per searchable photo.
    A stored face is matched to its declared box by position (the fake's ratios)."""
    boxes: dict[str, list[dict[str, float]]] = {}
    for face in c.stored_faces:
        boxes.setdefault(str(face.get("ExternalImageId")), []).append(face["BoundingBox"])
    scale = min(1.0, long_edge / max(WIDTH, HEIGHT))
    eligible = found = smaller = smaller_found = 0
    for s in c.shots:
        photo = by_sha.get(s.frame.sha256)
        if photo is None or s.frame.sha256 not in searchable:
            continue
        stored = boxes.get(str(photo["id"]), [])
        for face in s.frame.base.faces:
            x, y, w, h = face["box"]
            hit = any(abs(b["Left"] - x / WIDTH) < 2e-3 and abs(b["Top"] - y / HEIGHT) < 2e-3 for b in stored)
            if min(w, h) * scale >= min_face:
                eligible += 1
                found += hit
            else:
                smaller += 1
                smaller_found += hit
    return {
        "min_face_px": min_face,
        "faces_searchable_locally": eligible,
        "indexed_in_cloud": found,
        "share": round_or_none(found / eligible, 4) if eligible else None,
        "smaller_faces": smaller,
        "smaller_indexed_in_cloud": smaller_found,
    }


def analyse(args: argparse.Namespace, c: Collected) -> dict[str, Any]:
    by_sha = {p["sha256"]: p for p in c.photos}
    acked = [s for s in c.shots if s.t_226 is not None]
    upload_errors = [s for s in c.shots if s.error]
    searchable: dict[str, float] = {}  # sha -> wall time searchable (any time)
    for sha, p in by_sha.items():
        if p.get("searchable_in_cloud_at"):
            searchable[sha] = iso_ts(p["searchable_in_cloud_at"])

    # latency: searchable after the emulated phase ended counts as "not in time" (+inf)
    lat_all: list[float] = []
    lat_out: list[float] = []
    lat_in: list[float] = []
    for s in acked:
        assert s.t_226 is not None
        ts = searchable.get(s.frame.sha256)
        lat = ts - s.t_226 if ts is not None and ts <= c.heal_at else math.inf
        lat_all.append(lat)
        end = ts if ts is not None and ts <= c.heal_at else c.heal_at
        (lat_in if _overlaps(s.t_226, end, c.windows) else lat_out).append(lat)
    measured = [
        searchable[s.frame.sha256] for s in acked if searchable.get(s.frame.sha256, math.inf) <= c.heal_at
    ]
    t_last = max(measured, default=None)

    # blackouts and recovery
    blackouts = []
    for i, (start, end) in enumerate(c.windows, 1):
        after = [t for t in searchable.values() if t >= end]
        shot_before = [searchable.get(s.frame.sha256, math.inf) for s in acked if s.t_226 and s.t_226 < end]
        cleared = max(shot_before, default=end)
        offline = next(
            (t for t, _, new in c.transitions if new == "offline" and start <= t <= end + 60), None
        )
        back = None
        if offline is not None:
            back = next((t for t, old, _ in c.transitions if old == "offline" and t > offline), None)
        blackouts.append(
            {
                "n": i,
                "from_s": round_or_none(start - c.t0, 1),
                "to_s": round_or_none(end - c.t0, 1),
                "searchable_during": sum(start <= t < end for t in searchable.values()),
                "box_offline_after_s": round_or_none(None if offline is None else offline - start, 1),
                "box_usable_again_after_link_back_s": round_or_none(None if back is None else back - end, 1),
                "first_searchable_after_link_back_s": round_or_none(min(after) - end if after else None, 1),
                "backlog_shot_before_end_searchable_after_s": round_or_none(max(0.0, cleared - end), 1),
            }
        )

    # bytes on the uplink
    sampler = c.sampler
    assert sampler is not None
    base_s3, base_rek = sampler.up_at(c.t0)
    bytes_before: dict[str, Any] = {}
    if t_last is not None and measured:
        s3_b, rek_b = sampler.up_at(t_last)
        st: StatusSample | None = sampler.status_at(t_last)
        up_s = (t_last - c.t0) - sum(max(0.0, min(e, t_last) - max(s, c.t0)) for s, e in c.windows)
        sent = s3_b - base_s3 + rek_b - base_rek
        bytes_before = {
            "until_s": round_or_none(t_last - c.t0, 1),
            "link_up_s": round_or_none(up_s, 1),
            "link_utilisation": round_or_none(sent / (args.link_mbit * 1e6 / 8 * up_s), 3)
            if up_s > 0
            else None,
            "searchable_per_s": round_or_none(len(measured) / (t_last - c.t0), 3) if t_last > c.t0 else None,
            "per_photo_mb": round_or_none((s3_b - base_s3 + rek_b - base_rek) / len(measured) / MB, 3),
            "s3_per_photo_mb": round_or_none((s3_b - base_s3) / len(measured) / MB, 3),
            "rekognition_per_photo_mb": round_or_none((rek_b - base_rek) / len(measured) / MB, 3),
            "originals_uploaded_by_then": st.counters.get("original_done", 0) if st else None,
        }
    s3_emulated, rek_emulated = sampler.up_at(c.heal_at)
    link_bps = args.link_mbit * 1e6 / 8
    backlogged = _backlogged_link_use(c, searchable, link_bps, t_last if t_last is not None else c.heal_at)
    if bytes_before:
        up_s = bytes_before["link_up_s"]
        bytes_before["searchable_per_link_up_s"] = round_or_none(len(measured) / up_s, 3) if up_s else None
    long_edge = args.proxy_long_edge or CloudSettings().proxy_long_edge
    quality = _quality(c, by_sha, searchable, long_edge, FacesSettings().min_face_px)

    # S3 objects
    keys: dict[str, list[dict[str, Any]]] = {}
    for v in c.versions:
        keys.setdefault(v["Key"], []).append(v)
    latest = {k: next((v for v in vs if v.get("IsLatest")), vs[0]) for k, vs in keys.items()}
    proxy_keys = {k.rsplit("/", 1)[1].split(".")[0]: k for k in keys if "/proxy/" in k}
    orig_keys = {k.rsplit("/", 1)[1].split(".")[0]: k for k in keys if "/proxy/" not in k}
    dup_versions = {k: len(vs) - 1 for k, vs in keys.items() if len(vs) > 1}
    proxy_bytes = sum(int(latest[k]["Size"]) for k in proxy_keys.values())
    orig_bytes = sum(int(latest[k]["Size"]) for k in orig_keys.values())
    cloud_sizes = [int(latest[k]["Size"]) for k in proxy_keys.values()]

    # Rekognition
    per_id = Counter(c.index_calls)
    dup_index_calls = sum(n - 1 for n in per_id.values() if n > 1)
    stored = Counter(f.get("ExternalImageId") for f in c.stored_faces)
    declared = {
        str(by_sha[s.frame.sha256]["id"]): len(s.frame.base.faces) for s in acked if s.frame.sha256 in by_sha
    }
    dup_faces = sum(max(0, stored[i] - n) for i, n in declared.items())
    missing_faces = sum(max(0, n - stored[i]) for i, n in declared.items())
    ok_per_photo = Counter(r["photo_id"] for r in c.ledger if r["outcome"] == "ok")
    not_ok = [r for r in c.ledger if r["outcome"] != "ok"]

    # lost
    lost: dict[str, list[str]] = {
        "not_ingested": [],
        "never_searchable": [],
        "no_proxy_in_s3": [],
        "no_original_in_s3": [],
        "original_size_differs": [],
    }
    for s in acked:
        sha, name = s.frame.sha256, s.frame.name
        if sha not in by_sha:
            lost["not_ingested"].append(name)
            continue
        if sha not in searchable:
            lost["never_searchable"].append(name)
        if sha not in proxy_keys:
            lost["no_proxy_in_s3"].append(name)
        if sha not in orig_keys:
            lost["no_original_in_s3"].append(name)
        elif int(latest[orig_keys[sha]]["Size"]) != s.frame.size:
            lost["original_size_differs"].append(name)
    lost_frames = sorted({n for names in lost.values() for n in names})

    outside = latency_stats(lat_out)
    all_stats = latency_stats(lat_all)
    fails = {
        "p50": None if not lat_out else (outside["p50_s"] is not None and outside["p50_s"] < TARGET_P50_S),
        "p95": None if not lat_out else (outside["p95_s"] is not None and outside["p95_s"] < TARGET_P95_S),
    }
    late_sends = [s.late_s for s in c.shots if s.t_stor is not None]
    counters = c.status.get("counters", {})
    return {
        "latency": {
            "all": all_stats,
            "outside_blackouts": outside,
            "overlapping_blackouts": latency_stats(lat_in),
        },
        "blackouts": blackouts,
        "bytes": {
            "before_last_searchable": bytes_before,
            # the cloud proxy's PUT (IndexFaces reads it from the bucket, cloud.index_from_s3)
            "min_per_photo_mb": round_or_none(statistics.mean(cloud_sizes or c.proxy_sizes) / MB, 3),
            "emulated_phase_up_mb": {
                "s3": round_or_none((s3_emulated - base_s3) / MB, 1),
                "rekognition": round_or_none((rek_emulated - base_rek) / MB, 1),
            },
            "total_up_mb": {
                "s3": round_or_none(c.bytes_final[0] / MB, 1),
                "rekognition": round_or_none(c.bytes_final[1] / MB, 1),
            },
            "objects_mb": {
                "proxies": round_or_none(proxy_bytes / MB, 1),
                "originals": round_or_none(orig_bytes / MB, 1),
            },
            "s3_up_over_object_bytes": round_or_none(c.bytes_final[0] / (proxy_bytes + orig_bytes), 3)
            if proxy_bytes + orig_bytes
            else None,
            "rekognition_up_over_proxy_bytes": round_or_none(c.bytes_final[1] / proxy_bytes, 3)
            if proxy_bytes
            else None,
        },
        "duplicates": {
            "s3_uploads": sum(dup_versions.values()),
            "s3_keys_uploaded_twice": sorted(dup_versions)[:5],
            "s3_objects": len(keys),
            "s3_objects_expected": 2 * len(acked),
            "index_faces_calls": len(c.index_calls),
            "index_faces_photos": len(per_id),
            "index_faces_duplicate_calls": dup_index_calls,
            "billable_calls": c.billable_calls,
            "create_collection_calls": c.create_collection_calls,
            "stored_faces": len(c.stored_faces),
            "declared_faces": sum(declared.values()),
            "duplicate_stored_faces": dup_faces,
            "missing_stored_faces": missing_faces,
            "invalid_requests": c.invalid_requests,
            "fake_crashes": c.fake_crashes,
        },
        "ledger": {
            "rows": len(c.ledger),
            "ok": sum(ok_per_photo.values()),
            "photos_ok_once": sum(n == 1 for n in ok_per_photo.values()),
            "photos_ok_more_than_once": sum(n > 1 for n in ok_per_photo.values()),
            "not_ok": len(not_ok),
            "not_ok_samples": [r["outcome"][:120] for r in not_ok[:3]],
        },
        "frames": {
            "sent": sum(s.t_stor is not None for s in c.shots),
            "acked_226": len(acked),
            "upload_errors": len(upload_errors),
            "upload_error_samples": [f"{s.frame.name}: {s.error}" for s in upload_errors[:5]],
            "ingested": sum(s.frame.sha256 in by_sha for s in acked),
            "searchable": sum(s.frame.sha256 in searchable for s in acked),
            "searchable_in_emulated_phase": len(measured),
            "dead_letters": len(c.deadletters),
            "lost": len(lost_frames),
            "lost_by_reason": {k: len(v) for k, v in lost.items()},
            "lost_samples": lost_frames[:5],
            "send_late_p95_s": round_or_none(pct(late_sends, 95), 3),
            "send_late_max_s": round_or_none(max(late_sends, default=None), 3),
        },
        "phases_s": {
            "shoot": round_or_none(c.shoot_end - c.t0, 1),
            "settle": round_or_none(c.heal_at - c.shoot_end, 1),
            "drain": round_or_none(c.drain_end - c.heal_at, 1),
            "drained": c.drained,
        },
        "box": {
            "peak_rss_mb": round_or_none(c.peak_rss_mb, 1),
            "idle_rss_mb": round_or_none(c.idle_rss_mb, 1),
            "cpu_pct_of_one_core": round_or_none(c.box_cpu_s / (c.heal_at - c.t0) * 100, 0)
            if c.box_cpu_s is not None and c.heal_at > c.t0
            else None,
            "sync_counters": counters,
            "jobs_at_end": c.status.get("jobs", {}),
            "uplink_transitions": len(c.transitions),
        },
        "link": backlogged,
        "quality": quality,
        "cloud_proxy": {
            "choices": [{"long_edge": e, "quality": q, "photos": n} for e, q, n in c.cloud_choices],
            "kb_avg": round_or_none(statistics.mean(cloud_sizes) / 1e3, 1) if cloud_sizes else None,
            "local_proxy_kb_avg": round_or_none(statistics.mean(c.proxy_sizes) / 1e3, 1)
            if c.proxy_sizes
            else None,
        },
        "targets": {
            "p50_outside_blackouts_under_5s": verdict(fails["p50"]),
            "p95_outside_blackouts_under_20s": verdict(fails["p95"]),
            "all_p95_under_60s": verdict(_below(all_stats["p95_s"], TARGET_ALL_P95_S) if lat_all else None),
            "all_max_under_90s": verdict(_below(all_stats["max_s"], TARGET_ALL_MAX_S) if lat_all else None),
            "searchable_per_s_at_least_shot": verdict(
                None
                if not bytes_before or bytes_before.get("searchable_per_link_up_s") is None
                else bytes_before["searchable_per_link_up_s"] >= args.cameras * args.fps_per_camera
            ),
            "link_use_backlogged_over_85pct": verdict(
                None if backlogged["link_use"] is None else backlogged["link_use"] > TARGET_LINK_USE
            ),
            "quality_at_least_95pct": verdict(
                None if quality["share"] is None else quality["share"] >= TARGET_QUALITY
            ),
            "nothing_lost": verdict(not lost_frames and not upload_errors),
            "no_duplicate_uploads": verdict(not dup_versions),
            "no_duplicate_index_faces": verdict(dup_index_calls == 0 and c.billable_calls == len(per_id)),
            "no_duplicate_stored_faces": verdict(dup_faces == 0),
        },
    }


def _below(value: float | None, limit: float) -> bool:
    return value is not None and value < limit


# --------------------------------------------------------------------------------------------
# Output


def render(report: dict[str, Any]) -> str:
    m, cfg, res = report["machine"], report["config"], report["results"]
    v = report["versions"]
    cp = res["cloud_proxy"]
    choices = ", ".join(f"{c['long_edge']}/{c['quality']}: {c['photos']}" for c in cp["choices"][:4]) or "-"
    cloud_mbit = cp["kb_avg"] * 1e3 * 8 * cfg["frames_per_s"] / 1e6 if cp["kb_avg"] else None
    blackouts = "no blackouts"
    if cfg["blackout_seconds"] > 0:
        blackouts = (
            f"{cfg['blackout_seconds']:g} s blackout at {cfg['blackout_first']:g} s, then every"
            f" {cfg['blackout_every']:g} s ({len(res['blackouts'])} happened)"
        )
    lines = [
        f"shutterbox cloud-sync benchmark, {report['date']}",
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, Linux {m['kernel']},"
        f" Python {m['python']} (machine {report['busy_before_pct']:.0f}% busy before the run)",
        f"versions: shutterbox {v['shutterbox']}, moto {v['moto']}, boto3 {v['boto3']}",
        f"link: {cfg['link_mbit']:g} Mbit/s each way shared by S3 and Rekognition, +{cfg['latency_ms']:g} ms"
        f" each way (RTT +{2 * cfg['latency_ms']:g} ms); {blackouts}",
        f"load: {cfg['frames']} frames, {cfg['cameras']} cameras x {cfg['fps_per_camera']:g} frame/s;"
        f" originals {cfg['width']}x{cfg['height']} JPEG avg {cfg['original_mb_avg']:.2f} MB, box's proxies"
        f" avg {cfg['proxy_kb_avg']:.0f} kB; 0-5 declared faces of {len(PEOPLE)} guests",
        f"box: {cfg['workers'] or 'default (16)'} sync workers, cloud.upload_mbit {BOX_UPLOAD_MBIT}"
        f" (not the bottleneck), Rekognition {cfg['rekognition_tps'] or 'default (50 in us-east-1)'} calls/s;"
        f" data in {cfg['data_dir_fs']}",
        f"2048 px proxies would offer {cfg['offered_mbit']:.1f} Mbit/s ({cfg['proxy_kb_avg']:.0f} kB x"
        f" {cfg['frames_per_s']:g} frames/s) to a {cfg['link_mbit']:g} Mbit/s link; the cloud proxies"
        f" sent: avg {fmt(cp['kb_avg'], '.0f')} kB = {fmt(cloud_mbit, '.1f')} Mbit/s; chosen (long edge,"
        f" quality: photos) {choices}",
        "",
        f"{'shutter -> searchable in cloud':<34}{'photos':>7}{'p50 s':>9}{'p95 s':>9}{'max s':>9}"
        f"{'mean s':>9}{'late':>6}",
    ]
    for label, key in (
        ("all", "all"),
        ("outside blackouts", "outside_blackouts"),
        ("overlapping a blackout", "overlapping_blackouts"),
    ):
        s = res["latency"][key]
        late = s["not_searchable_in_time"]
        dl = ">dl" if s["photos"] else "-"  # None with photos = not searchable before the deadline
        lines.append(
            f"{label:<34}{s['photos']:>7}{fmt(s['p50_s'], '.1f', dl):>9}{fmt(s['p95_s'], '.1f', dl):>9}"
            f"{fmt(s['max_s'], '.1f', dl):>9}{fmt(s['mean_s']):>9}{late:>6}"
        )
    if res["blackouts"]:
        lines += [
            "",
            f"{'blackout':<18}{'searchable':>11}{'box offline':>13}{'box usable':>12}{'1st searchable':>16}"
            f"{'earlier shots':>15}",
            f"{'(s after 1st frame)':<18}{'during':>11}{'after start':>13}{'after end':>12}{'after end':>16}"
            f"{'done after end':>15}",
        ]
        for b in res["blackouts"]:
            label = f"#{b['n']} {fmt(b['from_s'], '.0f')}-{fmt(b['to_s'], '.0f')} s"
            lines.append(
                f"{label:<18}"
                f"{b['searchable_during']:>11}{fmt(b['box_offline_after_s']):>13}"
                f"{fmt(b['box_usable_again_after_link_back_s']):>12}"
                f"{fmt(b['first_searchable_after_link_back_s']):>16}"
                f"{fmt(b['backlog_shot_before_end_searchable_after_s']):>15}"
            )
    by, dup, led, fr, box = res["bytes"], res["duplicates"], res["ledger"], res["frames"], res["box"]
    before = by["before_last_searchable"]
    link, q = res["link"], res["quality"]
    lines.append("")
    lines.append(
        f"quality: the fake indexed {q['indexed_in_cloud']} of the {q['faces_searchable_locally']} faces"
        f" >= faces.min_face_px ({q['min_face_px']} px) in the local proxy = {fmt(q['share'], '.1%')}"
        f" (smaller faces: {q['smaller_indexed_in_cloud']} of {q['smaller_faces']} indexed)"
    )
    lines.append(
        f"link use while backlogged (a photo acked {BACKLOG_AGE_S:g} s+ ago not searchable, link up):"
        f" {fmt(link['link_use'], '.1%')} over {fmt(link['backlogged_s'], '.0f')} s"
    )
    if before:
        lines.append(
            f"uplink bytes per photo before the last became searchable (t={before['until_s']:.0f} s):"
            f" {before['per_photo_mb']:.2f} MB (S3 {before['s3_per_photo_mb']:.2f}, Rekognition"
            f" {before['rekognition_per_photo_mb']:.2f}; minimum {by['min_per_photo_mb']:.2f});"
            f" originals uploaded by then: {before['originals_uploaded_by_then']}/{fr['acked_226']}"
        )
        lines.append(
            f"sync throughput until then: {fmt(before['searchable_per_s'], '.2f')} photos/s searchable over"
            f" the run, {fmt(before.get('searchable_per_link_up_s'), '.2f')} per second the link was up"
            f" (shot: {cfg['frames_per_s']:g}/s); link used {fmt(before['link_utilisation'], '.0%')} of"
            f" {cfg['link_mbit']:g} Mbit/s over the {fmt(before['link_up_s'], '.0f')} s it was up"
        )
    ph = res["phases_s"]
    drain_note = "" if ph["drained"] else ", NOT finished"
    total, objects, lat = by["total_up_mb"], by["objects_mb"], res["latency"]["all"]
    lines += [
        f"phases: shoot {fmt(ph['shoot'], '.0f')} s, settle {fmt(ph['settle'], '.0f')} s (emulated link),"
        f" drain {fmt(ph['drain'], '.0f')} s ({cfg['drain_link']} link{drain_note})",
        f"total up: S3 {total['s3']:.0f} MB = {fmt(by['s3_up_over_object_bytes'], '.3f')}x the objects"
        f" ({objects['proxies']:.0f} MB proxies + {objects['originals']:.0f} MB originals);"
        f" Rekognition {total['rekognition']:.0f} MB ="
        f" {fmt(by['rekognition_up_over_proxy_bytes'], '.3f')}x the proxies (base64 in JSON)",
        f"duplicate uploads (S3 versions beyond the first): {dup['s3_uploads']}"
        f" ({dup['s3_objects']} objects, {dup['s3_objects_expected']} expected)",
        f"duplicate IndexFaces calls: {dup['index_faces_duplicate_calls']}"
        f" ({dup['index_faces_calls']} calls for {dup['index_faces_photos']} photos,"
        f" {dup['billable_calls']} billable); duplicate stored faces:"
        f" {dup['duplicate_stored_faces']} ({dup['stored_faces']} stored, {dup['declared_faces']} declared,"
        f" {dup['missing_stored_faces']} missing); CreateCollection calls: {dup['create_collection_calls']}",
        f"ledger: {led['rows']} rows, {led['ok']} ok, {led['not_ok']} not ok; photos indexed ok once:"
        f" {led['photos_ok_once']}, more than once: {led['photos_ok_more_than_once']}",
        f"frames: {fr['sent']} sent, {fr['acked_226']} 226, {fr['upload_errors']} upload errors,"
        f" {fr['ingested']} ingested, {fr['searchable']} searchable ({fr['searchable_in_emulated_phase']}"
        f" before the link was healed), {fr['dead_letters']} dead letters, LOST {fr['lost']}"
        f" {fr['lost_by_reason'] if fr['lost'] else ''}".rstrip(),
        f"box: peak RSS {fmt(box['peak_rss_mb'], '.0f')} MB (idle {fmt(box['idle_rss_mb'], '.0f')} MB), CPU"
        f" {fmt(box['cpu_pct_of_one_core'], '.0f')}% of one core; sync counters {box['sync_counters']}",
        "",
    ]
    t = res["targets"]
    out = res["latency"]["outside_blackouts"]
    rate = before.get("searchable_per_link_up_s") if before else None
    lines += [
        f"target p50 < {TARGET_P50_S:g} s outside blackouts: {t['p50_outside_blackouts_under_5s']}"
        f" ({fmt(out['p50_s'], '.1f', '>deadline')} s)",
        f"target p95 < {TARGET_P95_S:g} s outside blackouts: {t['p95_outside_blackouts_under_20s']}"
        f" ({fmt(out['p95_s'], '.1f', '>deadline')} s)",
        f"target all photos p95 < {TARGET_ALL_P95_S:g} s: {t['all_p95_under_60s']}"
        f" ({fmt(lat['p95_s'], '.1f', '>deadline')} s);"
        f" max < {TARGET_ALL_MAX_S:g} s: {t['all_max_under_90s']}"
        f" ({fmt(lat['max_s'], '.1f', '>deadline')} s)",
        f"target photos searchable per second (link up) >= shot ({cfg['frames_per_s']:g}/s):"
        f" {t['searchable_per_s_at_least_shot']} ({fmt(rate, '.2f')}/s)",
        f"target link use > {TARGET_LINK_USE:.0%} while backlogged: {t['link_use_backlogged_over_85pct']}"
        f" ({fmt(link['link_use'], '.1%')})",
        f"target quality >= {TARGET_QUALITY:.0%} of the locally searchable faces indexed in the cloud:"
        f" {t['quality_at_least_95pct']} ({fmt(q['share'], '.1%')})",
        f"target nothing lost: {t['nothing_lost']}",
        f"target nothing paid twice: uploads {t['no_duplicate_uploads']}, IndexFaces"
        f" {t['no_duplicate_index_faces']}, stored faces {t['no_duplicate_stored_faces']}",
        f"reference Clixs in production: {CLIXS_MEAN_S:g} s average, {CLIXS_TAIL_S:g} s tail; this run:"
        f" mean {fmt(lat['mean_s'], '.1f')} s, max {fmt(lat['max_s'], '.1f')} s",
        "",
    ]
    lines += [f"note: {n}" for n in report["notes"]]
    lines += [f"upload error: {e}" for e in fr["upload_error_samples"]]
    lines += [f"error: {e}" for e in report["failures"]]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--frames", type=int, help="frames in all (default 500; --quick 60)")
    parser.add_argument("--cameras", type=int, default=4, help="emulated cameras (FTP sessions)")
    parser.add_argument("--fps-per-camera", type=float, default=1.0, help="frames per second per camera")
    parser.add_argument("--original-mb", type=float, default=3.0, help="approximate size of an original")
    parser.add_argument("--link-mbit", type=float, default=10.0, help="uplink bandwidth, each way")
    parser.add_argument("--latency-ms", type=float, default=150.0, help="added delay, each way")
    parser.add_argument("--blackout-seconds", type=float, help="blackout length (default 30; --quick 10)")
    parser.add_argument("--blackout-every", type=float, default=180.0, help="seconds between blackouts")
    parser.add_argument(
        "--blackout-first", type=float, help="first blackout, s after the first frame (default 60; --quick 8)"
    )
    parser.add_argument(
        "--proxy-long-edge", type=int, help="the box's cloud.proxy_long_edge (default: the box's own, 2048)"
    )
    parser.add_argument("--workers", type=int, help="the box's cloud.workers (default: the box's own, 16)")
    parser.add_argument(
        "--rekognition-tps",
        type=float,
        help="the box's cloud.rekognition_tps (default: the box's own, AWS's quota for us-east-1: 50)",
    )
    parser.add_argument("--deadline", type=float, help="settle phase limit in s (default 1800; --quick 300)")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="drain phase limit in s")
    parser.add_argument(
        "--drain-link",
        choices=("healed", "emulated"),
        default="healed",
        help="link during the untimed drain of the remaining originals (emulated: no more blackouts)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 frames, one 10 s blackout at 8 s")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.frames < 1 or args.cameras < 1 or args.fps_per_camera <= 0 or args.link_mbit <= 0:
        parser.error("--frames, --cameras, --fps-per-camera and --link-mbit must be positive")
    if args.original_mb <= 0.2 or args.original_mb > 30:
        parser.error("--original-mb must be in (0.2, 30]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    machine = machine_info()
    run_id = secrets.token_hex(4)
    failures: list[str] = []
    c = Collected()
    base = _work_base()
    tmp = work_dir(base)
    results: dict[str, Any] = {}
    try:
        work = Path(tmp.name)
        log(f"work dir {work}")
        try:
            run(args, c, work, run_id)
            results = analyse(args, c)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            log(f"run failed: {exc!r}")
    finally:
        tmp.cleanup()
    frames_per_s = args.cameras * args.fps_per_camera
    proxy_avg = statistics.mean(c.proxy_sizes) if c.proxy_sizes else 0.0
    orig_avg = statistics.mean(s.frame.size for s in c.shots) if c.shots else 0.0
    notes = [
        "latency = searchable_in_cloud_at (box, UTC) - 226 received by the camera (same clock);"
        " nearest-rank percentiles; '>dl' = not searchable before the settle deadline",
        "outside blackouts = [226, searchable] overlaps no blackout window; the backlog a blackout"
        " leaves still slows photos shot after it. Blackout table: '-' under 'box offline' = the box"
        " never marked the uplink offline (its requests stalled and resumed)",
        "one uplink: S3's and Rekognition's FaultProxies share one token bucket per direction; each"
        " proxy adds the latency; blackouts hit both at once (live connections stall, new ones hang)",
        "bytes are counted at the proxies (HTTP headers included); per photo = bytes up from the first"
        " frame until the last photo became searchable / photos searchable by then",
        "duplicate uploads = S3 object versions beyond the first (the benchmark's bucket is versioned);"
        " an upload cut off before S3 stored it shows only in the total-up ratio",
        "IndexFaces cost is not emulated (the fake answers at once); real Rekognition adds its own time",
        f"box, moto, the fake, both proxies and the cameras share this machine's {machine['cpus']} CPUs",
    ]
    if args.drain_link == "healed":
        notes.append(
            "after the settle phase the link is healed so the remaining originals finish quickly;"
            " only loss and duplicate counts use the drain, no timing does"
        )
    report = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine,
        "busy_before_pct": c.busy_before_pct,
        "versions": {
            "shutterbox": _shutterbox_version(),
            "moto": _version("moto"),
            "boto3": _version("boto3"),
        },
        "config": {
            "frames": args.frames,
            "cameras": args.cameras,
            "fps_per_camera": args.fps_per_camera,
            "frames_per_s": frames_per_s,
            "width": WIDTH,
            "height": HEIGHT,
            "original_mb_avg": round(orig_avg / MB, 3),
            "proxy_kb_avg": round(proxy_avg / 1e3, 1),
            "offered_mbit": round(frames_per_s * proxy_avg * 8 / 1e6, 2),
            "link_mbit": args.link_mbit,
            "latency_ms": args.latency_ms,
            "blackout_seconds": args.blackout_seconds,
            "blackout_every": args.blackout_every,
            "blackout_first": args.blackout_first,
            "workers": args.workers,
            "rekognition_tps": args.rekognition_tps,
            "box_upload_mbit": BOX_UPLOAD_MBIT,
            "deadline_s": args.deadline,
            "drain_link": args.drain_link,
            "data_dir_fs": str(base),
            "quick": args.quick,
        },
        "results": results,
        "notes": notes + [f"sampler: {e}" for e in c.sampler_errors[:3]],
        "failures": failures,
    }
    if not results:
        print(json.dumps(report, indent=2) if args.json else "\n".join(["run failed:", *failures]))
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report))
    fr = results["frames"]
    incomplete = fr["searchable_in_emulated_phase"] < fr["acked_226"] or not results["phases_s"]["drained"]
    return 1 if failures or fr["lost"] or fr["upload_errors"] or incomplete else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
