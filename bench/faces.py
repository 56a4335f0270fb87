"""Local face-index benchmark: shutter to searchable on the box, indexing throughput, selfie
search latency on a big event, and the box's memory.

What it measures
    A pool of ``--pool`` distinct 24 MP event photos (6000x4000 JPEG q90, ~8 MB; 0-30 real faces
    pasted from ../shared/faces by bench/_synthetic.py, mean ~10) is made before anything is
    timed; every upload is a pool frame made distinct by its own JPEG COM segment (the box
    deduplicates identical bytes per event). Each part runs its own ``shutterbox up``
    (tests/boxproc.py) on loopback with cloud sync off.

    1. live: ``--cameras`` cameras (one FTP session and upload key each) shoot ``--fps-per-camera``
       frames/s for ``--duration`` s by the clock, with a burst of ``--burst-frames`` frames in
       ``--burst-seconds`` s every ``--burst-every`` s (bursts staggered across the cameras).
       Then the cameras stop and the box drains its backlog for at most ``--drain-timeout`` s.
       Reported: shutter to searchable = ``searchable_local_at - received_at`` (the box's own
       timestamps, read from DATA/shutterbox.db read-only after the run) p50/p95/max over the
       photos indexed while the cameras ran, over those indexed by the end and over every frame
       (one not yet searchable counts as +inf);
       the backlog (``photos_pending``) every 30 s, how fast it grew, how long the drain took
       (or would take, at the drain's rate).
    2. rate: closed loop. ``--rate-frames`` frames go up as fast as FTP takes them (the cameras'
       sessions in parallel, bench/_ftpload.run_load), then the box indexes them all; photos/min
       and faces/min from the first frame received to the last photo searchable, for each
       ``faces.workers`` of ``--rate-workers``: the highest rate this machine keeps up with.
    3. search: an event of ``--photos`` photos holding ``--faces`` faces is written straight
       into the stopped box's database (128-d embeddings drawn around real dlib embeddings, plus
       ``--true-photos`` photos holding a jittered real embedding of Obama from obama-1/obama-2),
       the box restarted, and obama-3.jpg searched through ``POST /api/events/<code>/search``:
       the first (cold: the event's gallery is loaded) search, ``--searches`` sequential ones,
       ``--searches`` more as a phone makes them (the event page's form posted with consent, the
       303 followed until the results page's HTML has arrived: time to first result) and
       ``--concurrent-searches`` with ``--concurrency`` guests at once.
    4. memory: the sum of RSS over the box's process tree (face workers included), sampled
       every 0.5 s in every part: idle, steady (median while busy) and peak.

    Then a summary against the issue's targets: no growing backlog at 4 cameras x 1 frame/s,
    shutter to searchable p50 < 3 s and p95 < 10 s, selfie to results p95 < 1 s, box < 600 MB.
    The script prints figures; it never fails on timing (exit 1 only when a part could not run
    or frames failed to upload).

How to reproduce
    make bench-faces                             # or: .venv/bin/python bench/faces.py (~20 min)
    .venv/bin/python bench/faces.py --quick      # smoke run, ~2-3 min
    .venv/bin/python bench/faces.py --parts rate,search --json    # some parts, machine-readable
    See bench/README.md for the flags. The cameras, the harness and the box share the machine's
    CPUs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*

import _synthetic
import dlib
import httpx
import psutil
from _common import (
    ProcTree,
    fmt,
    log,
    log_problems,
    machine_info,
    pct,
    round_or_none,
    run_script,
    shutterbox_version,
    verdict,
    work_base,
)
from _facebench import (
    CpuWatch,
    PhotoRow,
    PoolFrame,
    Sampler,
    Search,
    Shot,
    camera_schedule,
    make_pool,
    page_search,
    read_photos,
    real_embeddings,
    run_camera,
    search,
    seed_event,
)
from _ftpload import MB, Endpoint, Phase, make_frame, run_load
from _sync_helpers import latency_stats
from PIL import Image

from appliance.config import CloudSettings, FacesSettings
from appliance.faces.service import default_workers
from tests.boxproc import BoxProcess, make_box

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
LATE_LIMIT_S = 60.0  # a camera this far behind its schedule stops (the rest count as unsent)
BACKLOG_EVERY_S = 30.0
RATE_TIMEOUT_PER_FRAME_S = 15.0
SEARCH_RATE_LIMIT = 1_000_000  # guest.searches_per_minute for part 3: every search comes from 127.0.0.1
BUSY_OTHER_CORES = 0.2  # other processes using more than this during a part: a warning
GROWTH_LIMIT_PER_MIN = 1.0  # a backlog growing faster than this (least squares) is "growing"
TARGET_P50_S = 3.0
TARGET_P95_S = 10.0
TARGET_SEARCH_P95_S = 1.0
TARGET_RSS_MB = 600.0
TARGET_CAMERAS, TARGET_FPS = 4, 1.0
SELFIE = "obama-3"
PERSON = ("obama-1", "obama-2")  # real embeddings of the selfie's person in the seeded event
OTHERS = ("biden-1", "hopper-1", "collins-astronaut", "curie-couple")  # where strangers are drawn
PARTS = ("live", "rate", "search")
QUICK = {
    "duration": 20.0,
    "drain_timeout": 20.0,
    "pool": 8,
    "rate_frames": 6,
    "searches": 20,
    "concurrent_searches": 8,
}
FULL = {
    "duration": 600.0,
    "drain_timeout": 120.0,
    "pool": 40,
    # 120: at ~300 photos/min a 40-frame loop is 8 s, of which the first photo's fill and the
    # last one's tail are a second (286 photos/min against 313-326 over 100 frames, same code)
    "rate_frames": 120,
    "searches": 100,
    "concurrent_searches": 50,
}


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwind through the finally blocks


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _memory(
    sampler: Sampler, idle: float, busy: tuple[float, float], part: tuple[float, float]
) -> dict[str, Any]:
    """Idle RSS, steady (median over the busy window) and peak (over the whole part), MB."""
    return {
        "idle_mb": round_or_none(idle, 0),
        "steady_mb": round_or_none(_median(sampler.rss_between(*busy)), 0),
        "peak_mb": round_or_none(max(sampler.rss_between(*part), default=idle), 0),
    }


def _start_box(path: Path, **settings: str) -> tuple[BoxProcess, ProcTree, float]:
    """A box on loopback, idle (its workers warm); its process tree and idle RSS."""
    box = make_box(path, **settings).start(START_TIMEOUT_S)
    assert box.proc is not None
    tree = ProcTree(box.proc.pid)
    tree.wait_idle()
    return box, tree, tree.rss_mb()


def _keys(box: BoxProcess, event: str, cameras: int) -> list[Endpoint]:
    return [Endpoint(HOST, box.ftp_port, *box.new_key(event, camera=f"cam{i + 1}")) for i in range(cameras)]


def _finish(box: BoxProcess, sampler: Sampler, event: str) -> tuple[list[PhotoRow], list[str]]:
    """Stop sampling and the box; the event's photos (read from its database once it is gone)
    and the warnings in its log."""
    _close(box, sampler)
    return read_photos(box.data / "shutterbox.db", event), log_problems(box.data / "box.log")


def _close(box: BoxProcess, sampler: Sampler | None, *threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(30)
    if sampler is not None:
        sampler.stop()
    box.stop()


def _wait_status(
    sampler: Sampler, done: Callable[[dict[str, Any]], bool], timeout: float, what: str, since: float
) -> float | None:
    """Wait until ``done(faces status)`` holds on a sample taken after ``since``; its time."""
    deadline = time.monotonic() + timeout
    next_log = time.monotonic() + BACKLOG_EVERY_S
    while time.monotonic() < deadline:
        point = sampler.status[-1] if sampler.status else None
        if point is not None and point.t > since and done(point.faces):
            return point.t
        if time.monotonic() >= next_log:
            st = sampler.latest()
            log(f"  {what}: indexed {st.get('photos_indexed')}, pending {st.get('photos_pending')}")
            next_log += BACKLOG_EVERY_S
        time.sleep(0.5)
    return None


# --------------------------------------------------------------------------------------------
# 1. live: cameras on a schedule


def _shots(args: argparse.Namespace, pool: Sequence[PoolFrame], t0: float, run_id: str) -> list[list[Shot]]:
    cameras = []
    for cam in range(args.cameras):
        burst_phase = (cam + 0.5) * args.burst_every / args.cameras  # bursts staggered
        offset = cam / (args.cameras * args.fps_per_camera)  # steady frames staggered
        times = camera_schedule(
            args.duration,
            args.fps_per_camera,
            args.burst_frames,
            args.burst_seconds,
            args.burst_every,
            burst_phase,
        )
        shots = []
        for k, t in enumerate(times):
            base = pool[(k * args.cameras + cam) % len(pool)].base
            shots.append(Shot(make_frame(f"C{cam + 1}_{k:05d}.JPG", base, run_id), cam, t0 + offset + t))
        cameras.append(shots)
    return cameras


def run_live(args: argparse.Namespace, pool: Sequence[PoolFrame], work: Path, run_id: str) -> dict[str, Any]:
    settings = {"faces__workers": str(args.workers)} if args.workers else {}
    box, tree, idle = _start_box(work / "live", **settings)
    sampler: Sampler | None = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        event = box.new_event("Bench faces live")
        endpoints = _keys(box, event, args.cameras)
        workers = int(box.cli("status")["faces"]["workers"])
        t0 = time.monotonic() + 1.0
        t0_wall = time.time() + 1.0
        cameras = _shots(args, pool, t0, run_id)
        shots = [s for cam in cameras for s in cam]
        offered = len(shots) / args.duration
        log(
            f"live: {args.cameras} cameras, {len(shots)} frames in {args.duration:g} s"
            f" ({offered * 60:.0f}/min), faces.workers {workers} ..."
        )
        sampler = Sampler(tree, box.data)
        sampler.start()
        cpu = CpuWatch(tree)
        give_up = t0 + args.duration + LATE_LIMIT_S
        for cam, cam_shots in enumerate(cameras):
            thread = threading.Thread(
                target=run_camera,
                args=(endpoints[cam], f"c{cam + 1}", cam_shots, stop, give_up),
                name=f"camera-{cam + 1}",
                daemon=True,
            )
            threads.append(thread)
            thread.start()
        next_log = t0 + BACKLOG_EVERY_S
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            if time.monotonic() >= next_log:
                st = sampler.latest()
                sent = sum(s.t_226 is not None for s in shots)
                log(
                    f"  t={time.monotonic() - t0:4.0f}s sent {sent}, indexed {st.get('photos_indexed')},"
                    f" pending {st.get('photos_pending')}, RSS {tree.rss_mb():.0f} MB"
                )
                next_log += BACKLOG_EVERY_S
        t_stop = time.time()
        cpu_shoot = cpu.cores()
        log(f"drain: cameras stopped; waiting up to {args.drain_timeout:g} s for the backlog ...")
        drained_at = _wait_status(
            sampler, lambda st: st.get("photos_pending") == 0, args.drain_timeout, "drain", t_stop
        )
        t_end = time.time()
        photos, problems = _finish(box, sampler, event)
    finally:
        stop.set()
        _close(box, sampler, *threads)
    result = analyse_live(args, shots, photos, sampler, t0_wall, t_stop, drained_at, t_end)
    result["box"] = {
        "workers": workers,
        "cpu_cores": cpu_shoot,
        "memory": _memory(sampler, idle, ((t0_wall + t_stop) / 2, t_stop), (t0_wall, t_end)),
        "problems": problems,
    }
    shutil.rmtree(box.data, ignore_errors=True)  # ~8 MB a frame: free the disk for the next part
    return result


def _growth_per_min(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of the backlog over time, photos per minute."""
    if len(points) < 3 or len({t for t, _ in points}) < 2:
        return None
    slope, _intercept = statistics.linear_regression([t for t, _ in points], [n for _, n in points])
    return slope * 60


def analyse_live(
    args: argparse.Namespace,
    shots: Sequence[Shot],
    photos: Sequence[PhotoRow],
    sampler: Sampler,
    t0: float,
    t_stop: float,
    drained_at: float | None,
    t_end: float,
) -> dict[str, Any]:
    by_name = {p.name: p for p in photos}
    acked = [s for s in shots if s.t_226 is not None]
    rows = [by_name[s.frame.name] for s in acked if s.frame.name in by_name]
    latencies = [p.latency for p in rows]
    live = [p.latency for p in rows if p.searchable is not None and p.searchable <= t_stop]
    indexed = [p for p in photos if p.searchable is not None]
    at_stop = sampler.status_at(t_stop)
    at_end = sampler.status_at(t_end)
    stop_faces = at_stop.faces if at_stop else {}
    end_faces = at_end.faces if at_end else {}
    every = [t0 + k * BACKLOG_EVERY_S for k in range(1, int((t_end - t0) / BACKLOG_EVERY_S) + 1)]
    marks = sorted({*(m for m in every if abs(m - t_stop) > 1 and abs(m - t_end) > 1), t_stop, t_end})
    backlog = []
    previous = t0
    for mark in marks:
        point = sampler.status_at(mark)
        phase = (
            "stop" if mark == t_stop else "end" if mark == t_end else "shoot" if mark < t_stop else "drain"
        )
        if point is not None:
            backlog.append(
                {
                    "t_s": round(mark - t0),
                    "phase": phase,
                    "sent": sum(s.t_226 is not None and s.t_226 <= mark for s in shots),
                    "indexed": point.faces.get("photos_indexed"),
                    "pending": point.faces.get("photos_pending"),
                    "in_flight": point.faces.get("in_flight"),
                    "rss_mb": round_or_none(max(sampler.rss_between(previous, mark), default=0.0), 0),
                }
            )
        previous = mark
    pending_points = [(s.t, float(s.faces["photos_pending"])) for s in sampler.status if t0 <= s.t <= t_stop]
    growth = _growth_per_min(pending_points)
    drain: dict[str, Any] = {"limit_s": args.drain_timeout, "drained": drained_at is not None}
    if drained_at is not None:
        drain["took_s"] = round_or_none(drained_at - t_stop, 1)
    else:
        done = end_faces.get("photos_indexed", 0) - stop_faces.get("photos_indexed", 0)
        rate = done / (t_end - t_stop) if t_end > t_stop else 0.0
        left = end_faces.get("photos_pending")
        drain |= {
            "left": left,
            "rate_per_min": round_or_none(rate * 60, 1),
            "projected_more_min": round_or_none(left / rate / 60, 0) if rate and left else None,
        }
    late = [s.late_s for s in shots if s.t_226 is not None or s.error]
    keeps_up = growth is not None and growth < GROWTH_LIMIT_PER_MIN and drained_at is not None
    return {
        "frames": {
            "scheduled": len(shots),
            "offered_per_min": round_or_none(len(shots) / args.duration * 60, 0),
            "acked_226": len(acked),
            "upload_errors": sum(s.error is not None for s in shots),
            "error_samples": [f"{s.frame.name}: {s.error}" for s in shots if s.error][:3],
            "unsent": sum(s.t_226 is None and s.error is None for s in shots),
            "not_in_database": sum(s.frame.name not in by_name for s in acked),
            "send_late_p95_s": round_or_none(pct(late, 95), 2),
            "send_late_max_s": round_or_none(max(late, default=None), 2),
            "mb_avg": round_or_none(statistics.mean(s.frame.size for s in shots) / MB, 2) if shots else None,
        },
        "latency": {
            "indexed_while_shooting": latency_stats(live),
            "indexed": latency_stats([x for x in latencies if not math.isinf(x)]),
            "all_frames": latency_stats(latencies),
        },
        "backlog": backlog,
        "indexed_during_shoot": stop_faces.get("photos_indexed"),
        "index_rate_during_shoot_per_min": round_or_none(
            stop_faces.get("photos_indexed", 0) / (t_stop - t0) * 60 if t_stop > t0 else None, 1
        ),
        "pending_at_stop": stop_faces.get("photos_pending"),
        "growth_per_min": round_or_none(growth, 1),
        "keeps_up": keeps_up,
        "drain": drain,
        "faces": {
            "indexed_photos": len(indexed),
            "failed_photos": sum(p.faces_state == "failed" for p in photos),
            "faces_per_photo": round_or_none(statistics.mean(p.faces for p in indexed), 1)
            if indexed
            else None,
            "searchable_per_photo": round_or_none(statistics.mean(p.searchable_faces for p in indexed), 1)
            if indexed
            else None,
        },
        "box_own_p50_p95_s": [stop_faces.get("searchable_p50_s"), stop_faces.get("searchable_p95_s")],
        "phases_s": {"shoot": round_or_none(t_stop - t0, 1), "drain": round_or_none(t_end - t_stop, 1)},
        "sampler_errors": sampler.errors[:3],
    }


# --------------------------------------------------------------------------------------------
# 2. rate: closed loop


def run_rate(
    args: argparse.Namespace, pool: Sequence[PoolFrame], work: Path, run_id: str, workers: int
) -> dict[str, Any]:
    box, tree, idle = _start_box(work / f"rate-{workers}", faces__workers=str(workers))
    sampler: Sampler | None = None
    try:
        event = box.new_event(f"Bench faces rate {workers}")
        endpoints = _keys(box, event, args.cameras)
        frames = tuple(
            make_frame(f"W{workers}_{i:05d}.JPG", pool[i % len(pool)].base, run_id)
            for i in range(args.rate_frames)
        )
        log(f"rate: faces.workers {workers}, uploading {len(frames)} frames at once ...")
        sampler = Sampler(tree, box.data)
        t_start = time.time()
        cpu = CpuWatch(tree)
        # Samples by hand during the upload: run_load forks its clients, so no thread runs yet.
        load = run_load(
            endpoints, Phase("rate", frames), min(args.cameras, len(frames)), tree.cpu_s, sampler.sample_once
        )
        t_uploaded = time.time()
        sampler.start()
        target = load.frames_ok
        done_at = _wait_status(
            sampler,
            lambda st: st.get("photos_indexed", 0) + st.get("photos_failed", 0) >= target,
            RATE_TIMEOUT_PER_FRAME_S * target + 60,
            f"rate w{workers}",
            t_start,
        )
        t_end = time.time()
        cpu_cores = cpu.cores()
        photos, problems = _finish(box, sampler, event)
    finally:
        _close(box, sampler)
    shutil.rmtree(box.data, ignore_errors=True)
    indexed = [p for p in photos if p.searchable is not None]
    result: dict[str, Any] = {
        "workers": workers,
        "frames": len(frames),
        "uploaded": load.frames_ok,
        "upload_errors": len(load.errors),
        "upload_s": round_or_none(load.wall_s, 1),
        "upload_mb_per_s": round_or_none(load.bytes_ok / MB / load.wall_s, 1) if load.wall_s else None,
        "indexed": len(indexed),
        "finished": done_at is not None,
        "cpu_cores": cpu_cores,
        "memory": _memory(sampler, idle, (t_uploaded, t_end), (t_start, t_end)),
        "problems": problems,
    }
    if indexed:
        first_in = min(p.received for p in photos)
        first_out = min(p.searchable for p in indexed if p.searchable is not None)
        last_out = max(p.searchable for p in indexed if p.searchable is not None)
        span = last_out - first_in
        result |= {
            "wall_s": round_or_none(span, 1),
            "photos_per_min": round_or_none(len(indexed) / span * 60, 1),
            "faces_per_min": round_or_none(sum(p.faces for p in indexed) / span * 60, 1),
            "searchable_faces_per_min": round_or_none(
                sum(p.searchable_faces for p in indexed) / span * 60, 1
            ),
            "steady_photos_per_min": round_or_none((len(indexed) - 1) / (last_out - first_out) * 60, 1)
            if last_out > first_out
            else None,
            "faces_per_photo": round_or_none(statistics.mean(p.faces for p in indexed), 1),
            "s_per_photo_per_worker": round_or_none(span / len(indexed) * workers, 2),
        }
    return result


# --------------------------------------------------------------------------------------------
# 3. search: a big seeded event


def _search_stats(results: Sequence[Search]) -> dict[str, Any]:
    ok = [r.seconds for r in results if r.status == 200]
    return {
        "searches": len(results),
        "errors": len(results) - len(ok),
        "p50_s": round_or_none(pct(ok, 50), 3),
        "p95_s": round_or_none(pct(ok, 95), 3),
        "max_s": round_or_none(max(ok, default=None), 3),
        "mean_s": round_or_none(statistics.mean(ok), 3) if ok else None,
        "match_counts": sorted({r.matches for r in results}),
    }


def _concurrent(url: str, selfie: bytes, count: int, concurrency: int) -> tuple[list[Search], float]:
    """``count`` searches by ``concurrency`` guests at once (each its own connection, one after
    another); all results and the wall time."""
    results: list[list[Search]] = [[] for _ in range(concurrency)]

    def guest(g: int) -> None:
        with httpx.Client(timeout=120) as client:
            for _ in range(g, count, concurrency):
                results[g].append(search(client, url, selfie))

    threads = [threading.Thread(target=guest, args=(g,), name=f"guest-{g}") for g in range(concurrency)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for rs in results for r in rs], time.perf_counter() - t0


def run_search(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    log(f"search: embedding {SELFIE} and the reference faces ...")
    real = real_embeddings((SELFIE, *PERSON, *OTHERS))
    threshold = FacesSettings().match_threshold
    box = make_box(work / "search", guest__searches_per_minute=str(SEARCH_RATE_LIMIT)).start(START_TIMEOUT_S)
    sampler: Sampler | None = None
    try:
        event = box.new_event("Bench faces search")
        box.stop()
        stored = work / "seed-photo.jpg"  # every seeded row points at this real file
        Image.new("RGB", (64, 48), (128, 128, 128)).save(stored, "JPEG")
        seeded = seed_event(
            box.data / "shutterbox.db",
            event,
            photos=args.photos,
            faces=args.faces,
            person=[real[p] for p in PERSON],
            others=[real[p] for p in OTHERS],
            true_photos=args.true_photos,
            query=real[SELFIE],
            threshold=threshold,
            stored_path=stored,
        )
        log(
            f"  seeded {seeded.photos} photos, {seeded.faces} faces in {seeded.seconds:.1f} s;"
            " restarting the box"
        )
        box.start(START_TIMEOUT_S)
        assert box.proc is not None
        tree = ProcTree(box.proc.pid)
        tree.wait_idle()
        idle = tree.rss_mb()
        sampler = Sampler(tree, box.data)
        sampler.start()
        url = f"http://{HOST}:{box.info['web_port']}/api/events/{event}/search"
        selfie = _synthetic.selfie_bytes(SELFIE)
        t_start = time.time()
        cpu = CpuWatch(tree)
        with httpx.Client(timeout=120) as client:
            cold = search(client, url, selfie)
            log(f"  cold search {cold.seconds:.3f} s; {args.searches} sequential ...")
            sequential = [search(client, url, selfie) for _ in range(args.searches)]
            log(f"  {args.searches} sequential searches from the guest page (selfie to results page) ...")
            page_url = f"http://{HOST}:{box.info['web_port']}/e/{event}/search"
            pages = [page_search(client, page_url, selfie) for _ in range(args.searches)]
        log(f"  {args.concurrent_searches} searches, {args.concurrency} at once ...")
        concurrent, wall = _concurrent(url, selfie, args.concurrent_searches, args.concurrency)
        t_end = time.time()
        cpu_cores = cpu.cores()
        galleries = sampler.latest().get("galleries", {})
        _close(box, sampler)
        problems = log_problems(box.data / "box.log")
    finally:
        _close(box, sampler)
    return {
        "event": {
            "photos": seeded.photos,
            "faces": seeded.faces,
            "true_photos": seeded.true_photos,
            "expected_matches": seeded.expected_matches,
            "nearest_stranger": round_or_none(seeded.nearest_stranger, 3),
            "gallery_faces_loaded": galleries.get(event),
            "threshold": threshold,
        },
        "selfie_bytes": len(selfie),
        "cold": {"seconds": round_or_none(cold.seconds, 3), "status": cold.status, "matches": cold.matches},
        "sequential": _search_stats(sequential),
        "page": _search_stats(pages),
        "concurrent": _search_stats(concurrent)
        | {"concurrency": args.concurrency, "searches_per_s": round_or_none(len(concurrent) / wall, 2)},
        "box": {
            "memory": _memory(sampler, idle, (t_start, t_end), (t_start, t_end)),
            "cpu_cores": cpu_cores,
            "problems": problems,
        },
    }


# --------------------------------------------------------------------------------------------
# Output


def _s(value: Any, none: str = "-") -> str:
    return fmt(value, ".2f", none)


def _cpu(cores: dict[str, float]) -> str:
    return (
        f"box {cores['box']:.2f}, harness {cores['harness']:.2f}, other processes {cores['other']:.2f}"
        f" (machine {cores['machine']:.2f})"
    )


def _cpu_by_part(res: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    parts = [("part 1 (live)", res["live"]["box"]["cpu_cores"])] if "live" in res else []
    parts += [(f"part 2 ({r['workers']} worker(s))", r["cpu_cores"]) for r in res.get("rate", [])]
    parts += [("part 3 (search)", res["search"]["box"]["cpu_cores"])] if "search" in res else []
    return parts


def _cpu_pair(cores: dict[str, float]) -> str:
    return f"{cores['box']:.2f}/{cores['other']:.2f}"


def _targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    live, rate, srch = res.get("live"), res.get("rate"), res.get("search")
    peaks = [live["box"]["memory"]["peak_mb"]] if live else []
    peaks += [r["memory"]["peak_mb"] for r in rate or []]
    peaks += [srch["box"]["memory"]["peak_mb"]] if srch else []
    rows: list[dict[str, Any]] = []
    if live:
        lat, alls = live["latency"]["indexed"], live["latency"]["all_frames"]
        drain = live["drain"]
        drained = (
            f"drained in {drain['took_s']} s" if drain["drained"] else f"{drain['left']} left after the drain"
        )
        rows.append(
            {
                "target": f"no growing backlog at {TARGET_CAMERAS} cameras x {TARGET_FPS:g} frame/s",
                "verdict": verdict(live["keeps_up"]),
                "figure": f"backlog grew {fmt(live['growth_per_min'])} photos/min while shooting"
                f" ({live['frames']['offered_per_min']:.0f} offered/min, indexed"
                f" {fmt(live['index_rate_during_shoot_per_min'])}/min); {drained}",
            }
        )
        for name, key, limit in (("p50", "p50_s", TARGET_P50_S), ("p95", "p95_s", TARGET_P95_S)):
            value = alls[key]
            ok = None if not alls["photos"] else value is not None and value < limit
            rows.append(
                {
                    "target": f"shutter to searchable {name} < {limit:g} s",
                    "verdict": verdict(ok),
                    "figure": (f"{value:.1f} s" if value is not None else "not reached by the end of the run")
                    + f" over all {alls['photos']} frames ({alls['not_searchable_in_time']} never searchable"
                    f" during the run); {fmt(lat[key])} s over the {lat['photos']} indexed by then",
                }
            )
    if srch:
        for label in ("sequential", "concurrent"):
            p95 = srch[label]["p95_s"]
            rows.append(
                {
                    "target": f"selfie to results p95 < {TARGET_SEARCH_P95_S:g} s ({label})",
                    "verdict": verdict(None if p95 is None else p95 < TARGET_SEARCH_P95_S),
                    "figure": f"{_s(p95)} s over {srch[label]['searches']} searches,"
                    f" {srch['event']['photos']} photos / {srch['event']['faces']} faces",
                }
            )
    if peaks:
        peak = max(p for p in peaks if p is not None)
        rows.append(
            {
                "target": f"box < {TARGET_RSS_MB:g} MB RSS",
                "verdict": verdict(peak < TARGET_RSS_MB),
                "figure": f"peak {peak:.0f} MB (box + face workers) over every part",
            }
        )
    return rows


def _render_live(live: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    fr, lat, drain, box = live["frames"], live["latency"], live["drain"], live["box"]
    bursts = "no bursts"
    if cfg["burst_frames"] and cfg["burst_every"]:
        bursts = (
            f"a burst of {cfg['burst_frames']} frames in {cfg['burst_seconds']:g} s every"
            f" {cfg['burst_every']:g} s (staggered)"
        )
    lines = [
        f"1. LIVE: {cfg['cameras']} cameras x {cfg['fps_per_camera']:g} frame/s with {bursts}, for"
        f" {cfg['duration']:g} s: {fr['scheduled']} frames ({fr['offered_per_min']:.0f}/min offered),"
        f" avg {_s(fr['mb_avg'])} MB; faces.workers {box['workers']}",
        f"   frames: {fr['acked_226']} got 226, {fr['upload_errors']} upload errors, {fr['unsent']} unsent"
        f" (camera > {LATE_LIMIT_S:g} s behind), {fr['not_in_database']} missing from the database;"
        f" sends late p95 {_s(fr['send_late_p95_s'])} s, max {_s(fr['send_late_max_s'])} s",
        "   backlog (photos_pending every 30 s from the first frame, when the cameras stopped, at the end):",
        f"   {'t s':>7}{'phase':>7}{'226 sent':>10}{'indexed':>9}{'pending':>9}{'in flight':>11}"
        f"{'peak RSS MB':>13}",
    ]
    for row in live["backlog"]:
        lines.append(
            f"   {row['t_s']:>7}{row['phase']:>7}{row['sent']:>10}{fmt(row['indexed'], 'd'):>9}"
            f"{fmt(row['pending'], 'd'):>9}{fmt(row['in_flight'], 'd'):>11}{fmt(row['rss_mb'], '.0f'):>13}"
        )
    lines.append(
        f"   while shooting: indexed {fmt(live['indexed_during_shoot'], 'd')} photos"
        f" ({fmt(live['index_rate_during_shoot_per_min'])}/min), backlog grew {fmt(live['growth_per_min'])}"
        f" photos/min (least squares), {fmt(live['pending_at_stop'], 'd')} pending when the cameras stopped;"
        f" CPU (cores of {cfg['cpus']}): {_cpu(box['cpu_cores'])}"
    )
    if drain["drained"]:
        lines.append(f"   drain: backlog cleared {drain['took_s']} s after the cameras stopped")
    else:
        projected = drain["projected_more_min"]
        lines.append(
            f"   drain: NOT cleared within {drain['limit_s']:g} s: {fmt(drain['left'], 'd')} photos left,"
            f" draining at {fmt(drain['rate_per_min'])} photos/min"
            + (f" -> about {projected:.0f} more minutes (projected)" if projected is not None else "")
        )
    lines.append(
        f"   {'shutter -> searchable (local)':<42}{'photos':>7}{'p50 s':>8}{'p95 s':>8}{'max s':>8}"
        f"{'mean s':>8}"
    )
    for label, key in (
        ("photos indexed while the cameras ran", "indexed_while_shooting"),
        ("photos indexed by the end of the run", "indexed"),
        ("every frame (+inf if not yet)", "all_frames"),
    ):
        s = lat[key]
        ns = ">end" if s["photos"] else "-"
        lines.append(
            f"   {label:<42}{s['photos']:>7}{fmt(s['p50_s'], '.1f', ns):>8}{fmt(s['p95_s'], '.1f', ns):>8}"
            f"{fmt(s['max_s'], '.1f', ns):>8}{fmt(s['mean_s'], '.1f'):>8}"
        )
    faces = live["faces"]
    lines.append(
        f"   indexed {faces['indexed_photos']} photos ({faces['failed_photos']} failed): faces found per"
        f" photo {fmt(faces['faces_per_photo'])}, searchable {fmt(faces['searchable_per_photo'])};"
        f" the box's own (last 1000) p50/p95 at camera stop: {live['box_own_p50_p95_s']}"
    )
    return lines


def _render_rate(rate: Sequence[dict[str, Any]], cfg: dict[str, Any]) -> list[str]:
    lines = [
        f"2. RATE (closed loop): {cfg['rate_frames']} frames uploaded as fast as FTP takes them"
        f" ({cfg['cameras']} sessions), then indexed; from the first frame received to the last searchable",
        f"   {'workers':>7}{'upload s':>10}{'indexed':>9}{'wall s':>8}{'photos/min':>12}{'faces/min':>11}"
        f"{'steady/min':>12}{'s/photo/wkr':>13}{'CPU box/other':>14}{'peak RSS MB':>13}",
    ]
    for r in rate:
        lines.append(
            f"   {r['workers']:>7}{fmt(r['upload_s']):>10}{r['indexed']:>6}/{r['uploaded']:<2}"
            f"{fmt(r.get('wall_s')):>8}"
            f"{fmt(r.get('photos_per_min')):>12}{fmt(r.get('faces_per_min'), '.0f'):>11}"
            f"{fmt(r.get('steady_photos_per_min')):>12}{_s(r.get('s_per_photo_per_worker')):>13}"
            f"{_cpu_pair(r['cpu_cores']):>14}{fmt(r['memory']['peak_mb'], '.0f'):>13}"
        )
    best = max(rate, key=lambda r: r.get("photos_per_min") or 0.0)
    if best.get("photos_per_min"):
        need = TARGET_CAMERAS * TARGET_FPS * 60
        lines.append(
            f"   highest sustained rate: {best['photos_per_min']:.1f} photos/min ({best['faces_per_min']:.0f}"
            f" faces/min, {best['faces_per_photo']} faces/photo) with faces.workers {best['workers']};"
            f" {TARGET_CAMERAS} cameras x {TARGET_FPS:g} frame/s need {need:.0f}/min"
            f" ({best['photos_per_min'] / need:.0%} of it)"
        )
    return lines


def _render_search(srch: dict[str, Any]) -> list[str]:
    ev, cold = srch["event"], srch["cold"]
    lines = [
        f"3. SEARCH: {SELFIE}.jpg ({srch['selfie_bytes'] / 1e3:.0f} kB) via POST /api/events/<code>/search;"
        f" event seeded with {ev['photos']} photos / {ev['faces']} faces ({ev['true_photos']} photos with"
        f" a real embedding of the person; {ev['expected_matches']} within the {ev['threshold']:g} threshold,"
        f" nearest stranger at {ev['nearest_stranger']}); gallery held"
        f" {fmt(ev['gallery_faces_loaded'], 'd')} faces",
        f"   cold (first after the restart, loads the gallery): {cold['seconds']:.3f} s,"
        f" HTTP {cold['status']}, {cold['matches']} matches",
        f"   {'selfie -> results':<28}{'searches':>9}{'errors':>7}{'p50 s':>8}{'p95 s':>8}{'max s':>8}"
        f"{'mean s':>8}  matches",
    ]
    for label, key in (
        ("sequential", "sequential"),
        ("guest page (to results page)", "page"),
        (f"{srch['concurrent']['concurrency']} at once", "concurrent"),
    ):
        s = srch.get(key)
        if s is None:
            continue
        lines.append(
            f"   {label:<28}{s['searches']:>9}{s['errors']:>7}{fmt(s['p50_s'], '.3f'):>8}"
            f"{fmt(s['p95_s'], '.3f'):>8}{fmt(s['max_s'], '.3f'):>8}{fmt(s['mean_s'], '.3f'):>8}"
            f"  {s['match_counts']}"
        )
    lines.append(
        f"   {srch['concurrent']['concurrency']} at once: {srch['concurrent']['searches_per_s']} searches/s;"
        f" CPU over the searches (cores): {_cpu(srch['box']['cpu_cores'])}"
    )
    return lines


def render(report: dict[str, Any]) -> str:
    m, cfg, res, pool = report["machine"], report["config"], report["results"], report["pool"]
    fs = report["faces_settings"]
    lines = [
        f"shutterbox local face-index benchmark, {report['date']}",
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, Linux {m['kernel']},"
        f" Python {m['python']} (machine {report['busy_before_pct']:.0f}% busy before the run)",
        f"versions: shutterbox {report['versions']['shutterbox']}, dlib {report['versions']['dlib']};"
        f" data in {cfg['data_dir']}",
        f"box settings: faces.workers {cfg['workers'] or f'box default ({default_workers()} here)'}"
        " in part 1,"
        f" {cfg['rate_workers']} in part 2; faces.nice {fs['nice']}, min_face_px {fs['min_face_px']},"
        f" upsample {fs['upsample']}, match_threshold {fs['match_threshold']}; cloud sync off;"
        f" guest.searches_per_minute {SEARCH_RATE_LIMIT} in part 3 (all searches come from 127.0.0.1)",
        f"run: {' '.join(report['argv']) or '(defaults)'}",
    ]
    if pool["frames"]:
        lines.insert(
            3,
            f"frames: pool of {pool['frames']} synthetic {pool['width']}x{pool['height']} JPEGs (q90, avg"
            f" {pool['mb_avg']:.1f} MB), {pool['faces_min']}-{pool['faces_max']} real faces pasted (mean"
            f" {pool['faces_mean']:.1f}), face widths {pool['widths']} px = {pool['proxy_widths']} px in"
            f" the {fs['proxy_long_edge']} px proxy; made in {pool['seconds']:.0f} s; each upload made"
            " distinct by a COM segment",
        )
    lines.append("")
    if "live" in res:
        lines += [*_render_live(res["live"], cfg), ""]
    if "rate" in res:
        lines += [*_render_rate(res["rate"], cfg), ""]
    if "search" in res:
        lines += [*_render_search(res["search"]), ""]
    mem = []
    if "live" in res:
        mem.append(("1. live (steady = 2nd half of the shoot)", res["live"]["box"]["memory"]))
    for r in res.get("rate", []):
        mem.append((f"2. rate, {r['workers']} worker(s) (steady = indexing)", r["memory"]))
    if "search" in res:
        mem.append(("3. search (steady = searching)", res["search"]["box"]["memory"]))
    if mem:
        lines.append(
            "4. MEMORY: RSS of the box's process tree (box + face/selfie workers), sampled every 0.5 s"
        )
        lines.append(f"   {'part':<46}{'idle MB':>9}{'steady MB':>11}{'peak MB':>9}")
        for label, mm in mem:
            lines.append(
                f"   {label:<46}{fmt(mm['idle_mb'], '.0f'):>9}{fmt(mm['steady_mb'], '.0f'):>11}"
                f"{fmt(mm['peak_mb'], '.0f'):>9}"
            )
        lines.append("")
    busy = [(label, c["other"]) for label, c in _cpu_by_part(res) if c["other"] > BUSY_OTHER_CORES]
    for label, other in busy:
        lines.append(
            f"WARNING: other processes used {other:.2f} of {cfg['cpus']} cores during {label}: this"
            " machine was not idle, so its figures are pessimistic"
        )
    lines += [""] if busy else []
    lines.append("SUMMARY against the issue's targets")
    for row in report["targets"]:
        lines.append(f"  {row['verdict']:<5} {row['target']}: {row['figure']}")
    lines.append("")
    lines += [f"note: {n}" for n in report["notes"]]
    lines += [f"error: {e}" for e in report["failures"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="which parts to run (default: live,rate,search)"
    )
    parser.add_argument(
        "--duration", type=float, help="live: seconds the cameras shoot (default 600; --quick 20)"
    )
    parser.add_argument("--cameras", type=int, default=4, help="cameras (FTP sessions, one key each)")
    parser.add_argument(
        "--fps-per-camera", type=float, default=1.0, help="steady frames per second per camera"
    )
    parser.add_argument("--burst-frames", type=int, default=10, help="frames in a burst (0: no bursts)")
    parser.add_argument("--burst-seconds", type=float, default=2.0, help="length of a burst")
    parser.add_argument("--burst-every", type=float, default=30.0, help="seconds between a camera's bursts")
    parser.add_argument(
        "--drain-timeout", type=float, help="live: longest wait for the backlog (default 120; --quick 20)"
    )
    parser.add_argument("--workers", type=int, help="live: the box's faces.workers (default: the box's own)")
    parser.add_argument("--pool", type=int, help="distinct pool frames (default 40; --quick 8)")
    parser.add_argument(
        "--rate-frames", type=int, help="rate: frames per closed-loop run (default 120; --quick 6)"
    )
    parser.add_argument("--rate-workers", default="1,2", help="rate: faces.workers values to measure")
    parser.add_argument("--photos", type=int, default=5000, help="search: photos in the seeded event")
    parser.add_argument("--faces", type=int, default=25000, help="search: faces in the seeded event")
    parser.add_argument(
        "--true-photos", type=int, default=20, help="search: photos holding the selfie's person"
    )
    parser.add_argument("--searches", type=int, help="search: sequential searches (default 100; --quick 20)")
    parser.add_argument(
        "--concurrent-searches", type=int, help="search: concurrent ones (default 50; --quick 8)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="search: guests searching at once")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 20 s shoot, 8 pool frames, 6 per rate run, ~2-3 min"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not set(args.parts) <= set(PARTS):
        parser.error(f"--parts: choose from {','.join(PARTS)}")
    try:
        args.rate_workers = [int(w) for w in args.rate_workers.split(",") if w.strip()]
    except ValueError:
        parser.error("--rate-workers: comma-separated integers")
    positive = (args.duration, args.cameras, args.fps_per_camera, args.pool, args.rate_frames, args.photos)
    if min(positive) <= 0 or args.concurrency < 1 or not args.rate_workers or min(args.rate_workers) < 1:
        parser.error("durations, counts and rates must be positive")
    if args.burst_frames and args.burst_seconds <= 0:
        parser.error("--burst-seconds must be positive")
    if not 0 < args.true_photos <= args.photos or args.faces < args.photos // 2:
        parser.error("--true-photos must be in 1..--photos, --faces at least half --photos")
    return args


def _pool_info(pool: Sequence[PoolFrame], seconds: float) -> dict[str, Any]:
    counts = [p.faces for p in pool]
    widths = sorted({w for p in pool for w in p.widths})
    factor = _synthetic.proxy_factor()
    return {
        "frames": len(pool),
        "width": _synthetic.FRAME_SIZE[0],
        "height": _synthetic.FRAME_SIZE[1],
        "mb_avg": statistics.mean(len(p.base.data) for p in pool) / MB,
        "faces_min": min(counts),
        "faces_max": max(counts),
        "faces_mean": statistics.mean(counts),
        "faces_total": sum(counts),
        "widths": f"{widths[0]}-{widths[-1]}" if widths else "-",
        "proxy_widths": f"{round(widths[0] * factor)}-{round(widths[-1] * factor)}" if widths else "-",
        "seconds": seconds,
    }


NOTES = [
    "shutter to searchable = searchable_local_at - received_at, both stamped by the box (received_at"
    " when the frame is landed, just before its 226); nearest-rank percentiles. The box indexes newest"
    " first, so with a backlog the photos indexed are the freshest ones: 'every frame' counts the rest",
    "a growing backlog = pending rises by more than 1 photo/min (least squares over the shoot) or is not"
    " cleared within the drain limit; the drain time beyond the limit is projected at the drain's rate",
    "rate: photos/min = photos indexed / (last searchable - first received); steady/min leaves out the"
    " first photo's pipeline fill; faces = faces found (searchable ones have an embedding, >= min_face_px)",
    "search: embeddings written straight into the stopped box's database (strangers drawn around the mean"
    " of real dlib embeddings, ~0.9 apart as real people are); cold = first search after the restart;"
    " all searches are local (cloud sync off), no thumbnails fetched",
    "the cameras (FTP client threads), the harness and the box share this machine's CPUs",
]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    machine = machine_info()
    busy = psutil.cpu_percent(interval=1.0)
    run_id = secrets.token_hex(4)
    base = work_base()
    tmp = tempfile.TemporaryDirectory(prefix="sbbench-faces-", dir=base)
    results: dict[str, Any] = {}
    failures: list[str] = []
    pool_info: dict[str, Any] = {}
    try:
        work = Path(tmp.name)
        log(f"work dir {work}")
        t0 = time.monotonic()
        pool: list[PoolFrame] = []
        if {"live", "rate"} & set(args.parts):
            log(
                f"pool: making {args.pool} frames of"
                f" {_synthetic.FRAME_SIZE[0]}x{_synthetic.FRAME_SIZE[1]} ..."
            )
            pool = make_pool(args.pool, work / "pool", machine["cpus"] or 1)
            pool_info = _pool_info(pool, time.monotonic() - t0)
            log(f"  done in {pool_info['seconds']:.0f} s, avg {pool_info['mb_avg']:.1f} MB")
        for part in PARTS:
            if part not in args.parts:
                continue
            try:
                if part == "live":
                    results["live"] = run_live(args, pool, work, run_id)
                elif part == "rate":
                    results["rate"] = [run_rate(args, pool, work, run_id, w) for w in args.rate_workers]
                else:
                    results["search"] = run_search(args, work)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                failures.append(f"{part}: {type(exc).__name__}: {exc}")
                log(f"{part} failed: {exc!r}")
    finally:
        tmp.cleanup()
    defaults = FacesSettings()
    report = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "machine": machine,
        "busy_before_pct": busy,
        "versions": {"shutterbox": shutterbox_version(), "dlib": dlib.__version__},
        "config": {k: v for k, v in vars(args).items() if k != "json"}
        | {"data_dir": str(base), "cpus": machine["cpus"]},
        "faces_settings": defaults.model_dump() | {"proxy_long_edge": CloudSettings().proxy_long_edge},
        "pool": pool_info or {"frames": 0},
        "results": results,
        "targets": _targets(results),
        "notes": NOTES,
        "failures": failures,
    }
    for part in ("live", "search"):
        if part in results:
            report["notes"] += results[part]["box"]["problems"]
    if "live" in results:
        report["notes"] += [f"sampler: {e}" for e in results["live"]["sampler_errors"]]
    if not pool_info and {"live", "rate"} & set(args.parts):
        print("\n".join(["run failed:", *failures]))
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report))
    upload_errors = results.get("live", {}).get("frames", {}).get("upload_errors", 0)
    upload_errors += sum(r["upload_errors"] for r in results.get("rate", []))
    return 1 if failures or upload_errors else 0


if __name__ == "__main__":
    run_script(main)
