"""Whole-event soak: cameras, faults, guests and the cloud at once; every acknowledged frame checked.

What it does
    A real ``shutterbox up`` (tests/boxproc.py) with cloud sync to moto's S3 server and the fake
    Rekognition (tests/fakes/rekognition.py), each behind a FaultProxy (the emulated venue uplink,
    ``_sync_helpers.Cloud``), and its data folder on a size-limited filesystem (``_soak_faults.Disk``).
    Two events; six emulated camera bodies split across them, each with its own upload key and the
    dialogue of its brand (``_soak_cameras``: Canon MKD/RMD probe and card layout, Nikon nested
    MKD and sessions dropped without QUIT, Sony FTPS; RAW+JPEG pairs; two bodies with the same file
    names; REST/APPE resumes). Frames carry real public-domain faces (local dlib index) and a
    declaration of the same people (fake Rekognition): who is in which photo is known exactly.
    Guests post selfies to both events' search API throughout (``_soak_guests``).

    Faults, planned over the shooting time (``_soak_faults``): transfers cut by FIN, RST, TLS
    without close-notify or a session dropped mid-file, then resumed; the box SIGKILLed at random
    moments and restarted; the uplink slowed, stalled and blacked out; RSTs mid-body to S3; S3 503
    SlowDown and 500 (a WSGI layer in front of moto); Rekognition throttling and 500s
    (``fail_next``); the disk driven to its reserve (cameras get 452 until the ballast goes).

    Then: cameras finish their cards, faults stop, the link heals, the sync drains, every person
    is searched once more in every event, and the checks run (``_soak_checks``): every frame that
    got 226 is in the queue intact, in S3 (original, and proxy for a JPEG) and indexed exactly once
    (ledger, the fake's own log, stored faces); no truncated frame was queued and the cut ones are
    in quarantine; every guest answer held only that person and only that event; no crash; memory
    bounded; frames lost = 0. Printed as a table with PASS/FAIL; exit 1 when a check fails (they are
    all about correctness, none about timing), 2 when the run itself could not complete.

How to run
    make soak                                         # --preset full: 21 min of shooting, ~2,800 files
    .venv/bin/python bench/soak.py --preset medium    # 5.5 min of shooting, ~740 files
    .venv/bin/python bench/soak.py --preset short     # what tests/test_soak.py runs: 100 s, ~220 files
    .venv/bin/python bench/soak.py --json > out.json
    Root is needed for the loop-mounted disk (else a tmpfs, else the reserve setting is used).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import secrets
import signal
import ssl
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*

import psutil
from _common import log, machine_info, run_script, terminate, work_base
from _soak_cameras import DEFAULT_CAMERAS, Camera, CameraSpec, CutPlan
from _soak_checks import Checker, Observed, Row, render
from _soak_corpus import RAW_EXT, check_raw_bases, make_jpeg_bases, make_raw_base, make_selfies
from _soak_faults import BoxKeeper, Disk, FaultPlan, RssSampler, S3Faults, Timeline, plan
from _soak_guests import Guest, search_everyone
from _sync_helpers import BUCKET, MB, Cloud, cloud_box_settings

from appliance.control.client import ControlClient
from appliance.errors import ShutterboxError
from tests.boxproc import free_port, make_box

MiB = 1 << 20


@dataclass(frozen=True)
class Config:
    shoot_s: float
    period_s: float  # seconds between two shots of one camera
    faults: FaultPlan
    cameras: tuple[CameraSpec, ...] = DEFAULT_CAMERAS
    bases: int = 16  # distinct pictures
    raw_mb: float = 1.2
    guests: int = 3
    guest_every_s: float = 4.0
    link_mbit: float = 60.0
    latency_ms: float = 20.0
    stall_timeout_s: float = 180.0  # cards and sync after the shooting: give up when nothing moves
    rss_bound_mb: float = 1536.0
    reserve_mb: int = 256
    disk: str = "auto"
    index_delay_s: float = 0.2  # the fake's IndexFaces delay: widens the window a kill can hit
    seed: int = 1


PRESETS = {
    "short": Config(
        shoot_s=100.0,
        period_s=3.5,
        faults=FaultPlan(
            kill_every=50.0,
            blackout_every=50.0,
            blackout_s=10.0,
            stall_every=100.0,
            stall_s=6.0,
            slow_every=100.0,
            slow_s=15.0,
            slow_mbit=2.0,
            s3_every=33.0,
            rekognition_every=33.0,
            disk_every=100.0,
            disk_s=15.0,
            cut_every=9.0,
        ),
        bases=12,
        raw_mb=0.8,
        guests=2,
    ),
    "medium": Config(
        shoot_s=330.0,
        period_s=3.5,
        faults=FaultPlan(
            kill_every=110.0,
            blackout_every=165.0,
            blackout_s=20.0,
            stall_every=165.0,
            stall_s=8.0,
            slow_every=165.0,
            slow_s=25.0,
            slow_mbit=2.0,
            s3_every=60.0,
            rekognition_every=60.0,
            disk_every=330.0,
            disk_s=20.0,
            cut_every=12.0,
        ),
    ),
    "full": Config(
        shoot_s=1260.0,
        period_s=3.5,
        faults=FaultPlan(
            kill_every=180.0,
            blackout_every=240.0,
            blackout_s=30.0,
            stall_every=200.0,
            stall_s=8.0,
            slow_every=300.0,
            slow_s=30.0,
            slow_mbit=2.0,
            s3_every=150.0,
            rekognition_every=150.0,
            disk_every=600.0,
            disk_s=30.0,
            cut_every=15.0,
        ),
    ),
}


class Soak:
    """One soak run: ``start`` builds and starts everything, ``shoot`` runs the event, ``finish``
    waits for the cards and the sync, ``observe`` gathers the end state, ``stop`` tears it all
    down in reverse (from any point: only what was started is stopped)."""

    def __init__(self, cfg: Config, work: Path) -> None:
        self.cfg, self.work = cfg, work
        self.run_id = secrets.token_hex(3)
        self.halt_faults = threading.Event()
        self.halt_guests = threading.Event()
        self.give_up = threading.Event()
        self.cuts = CutPlan()
        self.squeezed = False
        self.started: list[str] = []  # what ``stop`` has to undo, in order
        self.cameras: list[Camera] = []
        self.guests: list[Guest] = []

    # --- set-up

    def start(self) -> None:
        cfg, work = self.cfg, self.work
        corpus = work / "corpus"
        corpus.mkdir()
        t = time.monotonic()
        self.jpegs = make_jpeg_bases(cfg.bases, corpus)  # forks: before any thread
        self.raws = {b: make_raw_base(b, int(cfg.raw_mb * MB), 8000 + i) for i, b in enumerate(RAW_EXT)}
        check_raw_bases(self.raws, corpus)
        self.selfies = make_selfies()
        log(f"corpus: {len(self.jpegs)} pictures, {len(self.selfies)} selfies ({time.monotonic() - t:.0f} s)")

        self.disk = Disk(work, _estimate_disk_mb(cfg), cfg.disk)
        self.started.append("disk")
        data = self.disk.setup()
        log(f"disk: {self.disk.mode}, {self.disk.size_mb} MB {'; '.join(self.disk.notes)}".rstrip())
        self.cloud = Cloud()
        self.started.append("cloud")
        self.cloud.start()
        self.cloud.emulate(cfg.link_mbit, cfg.latency_ms / 1000)
        fake, moto, s3_link = self.cloud.rekognition, self.cloud.moto, self.cloud.s3_link
        assert fake is not None
        assert moto is not None
        assert s3_link is not None
        self.fake, self.s3_link = fake, s3_link
        self.s3faults = S3Faults(moto)
        fake.delay("IndexFaces", cfg.index_delay_s)

        settings = cloud_box_settings(self.cloud)
        settings.update(
            ftp__port=str(free_port()),  # fixed: cameras and guests find the box again after a restart
            web__port=str(free_port()),
            faces__workers="1",
            storage__reserve_mb=str(cfg.reserve_mb),
            guest__searches_per_minute="100000",  # every guest comes from 127.0.0.1
            guest__code_attempts_per_hour="100000",
            guest__cloud_timeout="5",
        )
        self.box = make_box(data, **settings)
        self.keeper = BoxKeeper(self.box)
        self.started.append("keeper")
        self.keeper.start()
        self.events = {"A": self.box.new_event("Soak wedding"), "B": self.box.new_event("Soak gala")}
        keys = {c.name: self.box.new_key(self.events[c.event], camera=c.name) for c in cfg.cameras}
        ca = work / "box-ca.pem"
        ca.write_text(self.box.run_cli("ca-cert").stdout, encoding="ascii")
        tls = ssl.create_default_context(cafile=str(ca))
        tls.check_hostname = False  # the cameras dial 127.0.0.1; the chain is still verified
        self.web = f"http://127.0.0.1:{self.box.info['web_port']}"

        self.t0 = time.monotonic() + 2.0
        shots = int(cfg.shoot_s / cfg.period_s)
        for i, spec in enumerate(cfg.cameras):
            offset = i * cfg.period_s / len(cfg.cameras)
            camera = Camera(
                spec,
                i,
                event=self.events[spec.event],
                key=keys[spec.name],
                port=self.box.ftp_port,
                jpegs=self.jpegs,
                raw=self.raws[spec.brand] if spec.raw_every else None,
                schedule=[self.t0 + offset + k * cfg.period_s for k in range(shots)],
                cuts=self.cuts,
                give_up=self.give_up,
                run_id=self.run_id,
                tls_context=tls,
            )
            self.cameras.append(camera)
        codes = list(self.events.values())
        self.guests = [
            Guest(n, self.web, codes, self.selfies, cfg.guest_every_s, self.halt_guests)
            for n in range(cfg.guests)
        ]
        self.actions = plan(cfg.faults, cfg.shoot_s, cfg.seed)
        self.timeline = Timeline(self.actions, self.t0, self.handlers(), self.halt_faults)
        self.sampler = RssSampler(self.keeper)
        self.started.append("threads")
        for thread in [self.sampler, *self.cameras, *self.guests, self.timeline]:
            thread.start()
        log(
            f"shoot: {shots} shots per camera, one every {cfg.period_s:g} s;"
            f" {len(self.actions)} faults planned"
        )

    # --- the faults

    def handlers(self) -> dict[str, Callable[[str], str]]:
        cfg, cloud, keeper, disk, fake = self.cfg, self.cloud, self.keeper, self.disk, self.fake
        f, latency = cfg.faults, cfg.latency_ms / 1000

        def kill(arg: str) -> str:
            keeper.kill9(float(arg))
            return f"SIGKILL, down {arg} s, restarted as pid {keeper.pid()}"

        def blackout(arg: str) -> str:
            for link in cloud.links:
                link.blackout(f.blackout_s, reset=arg == "reset", refuse_new=arg == "refuse")
            return f"uplink gone for {f.blackout_s:g} s ({arg})"

        def stall(arg: str) -> str:
            for link in cloud.links:
                link.stall(f.stall_s)
            return f"uplink stalled for {f.stall_s:g} s"

        def slow(arg: str) -> str:
            cloud.emulate(f.slow_mbit, latency + 0.2)
            return f"uplink {f.slow_mbit:g} Mbit/s, +{latency + 0.2:.2f} s each way, for {f.slow_s:g} s"

        def unslow(arg: str) -> str:
            cloud.emulate(cfg.link_mbit, latency)
            return f"uplink back to {cfg.link_mbit:g} Mbit/s"

        def s3(arg: str) -> str:
            if arg == "rst":
                self.s3_link.reset_after(150_000, "up", times=2)
                self.s3_link.reset_all()  # the box's pooled connections go: its next ones are cut
                return "S3 connections reset; the next two new ones reset after 150 kB up"
            self.s3faults.fail_next(arg, 3)
            return f"next 3 S3 writes answer {arg}"

        def rekognition(arg: str) -> str:
            operation, code, times = {
                "throttle": ("IndexFaces", "ThrottlingException", 3),
                "5xx": ("IndexFaces", "InternalServerError", 2),
                "search": ("SearchFacesByImage", "ThrottlingException", 2),
            }[arg]
            fake.fail_next(operation, code, times)
            return f"next {times} {operation} answer {code}"

        def squeeze(arg: str) -> str:
            self.squeezed = True
            return disk.squeeze(keeper, cfg.reserve_mb)

        def release(arg: str) -> str:
            self.squeezed = False
            return disk.release(keeper, cfg.reserve_mb)

        def cut(arg: str) -> str:
            self.cuts.request(arg)
            return "the next upload able to is cut"

        return {
            "kill": kill,
            "blackout": blackout,
            "stall": stall,
            "slow": slow,
            "unslow": unslow,
            "s3": s3,
            "rekognition": rekognition,
            "squeeze": squeeze,
            "release": release,
            "cut": cut,
        }

    def heal(self) -> None:
        """The end of the faults: the link as configured, no error pending, the disk released."""
        self.timeline.finish(180)
        self.cloud.heal()
        self.s3faults.clear()
        for operation in ("IndexFaces", "SearchFacesByImage"):
            self.fake.delay(operation, 0.0)
        unused = 0
        while self.cuts.take(tls=True) is not None:
            unused += 1
        if self.squeezed:
            self.disk.release(self.keeper, self.cfg.reserve_mb)
            self.squeezed = False
        log(f"faults stopped, link healed ({unused} cut requests unused)")

    # --- the run

    def progress(self, what: str) -> None:
        logs = [c.log for c in self.cameras]
        acked = sum(u.acked_at is not None for lg in logs for u in lg.uploads)
        made = sum(len(lg.uploads) for lg in logs)
        answers = sum(len(g.answers) for g in self.guests)
        st = _status(self.box.data)
        box = "box down"
        if st is not None:
            jobs = st["cloud"]["jobs"]
            box = (
                f"queue {st['queue'].get('photos_total', '?')}, sync pending {jobs.get('pending', 0)}"
                f" leased {jobs.get('leased', 0)} done {jobs.get('done', 0)}, faces pending"
                f" {st['faces'].get('photos_pending', '?')}, uplink {st['cloud']['uplink']}"
            )
        fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1
        log(
            f"  t={time.monotonic() - self.t0:5.0f}s {what}: 226 {acked}/{made}, searches {answers}; {box};"
            f" harness fds {fds}"
        )

    def shoot(self) -> None:
        """Until the last shutter (the cameras' own clocks); then the faults end (the timeline
        applies what is still due first) and the link heals."""
        end = self.t0 + self.cfg.shoot_s
        next_tick = time.monotonic() + 15.0
        while (now := time.monotonic()) < end:
            if now >= next_tick:
                self.progress("shooting")
                next_tick += 15.0
            time.sleep(min(1.0, end - now))
        self.heal()

    def finish(self) -> dict[str, bool]:
        log("cameras finish their cards ...")
        delivered = _wait(
            "delivery",
            lambda: sum(len(c.card) + len(c.schedule) - c.shots for c in self.cameras),
            self.cfg.stall_timeout_s,
            lambda: self.progress("delivering"),
        )
        self.give_up.set()
        for camera in self.cameras:
            camera.join(60)
        log("the sync drains ...")
        drained = _wait(
            "drain",
            lambda: _jobs_left(self.box.data),
            self.cfg.stall_timeout_s,
            lambda: self.progress("draining"),
        )
        self.halt_guests.set()
        for guest in self.guests:
            guest.join(60)
        return {"delivered": delivered, "drained": drained}

    def observe(self) -> Observed:
        """The end state; stops the box (its exit code counts) but leaves the files in place."""
        codes = list(self.events.values())
        final = search_everyone(self.web, codes, self.selfies)
        with ControlClient(self.box.data, timeout=120) as client:
            photos = [
                p for code in codes for p in client.request("GET", "/api/photos", params={"event": code})
            ]
            ledger = [
                r for code in codes for r in client.request("GET", "/api/ledger", params={"event": code})
            ]
            rejections = list(client.request("GET", "/api/rejections", params={"limit": 10_000}))
            deadletters = list(client.request("GET", "/api/deadletters"))
        self.sampler.stop()
        self.keeper.stop()
        psutil.wait_procs(self.keeper.leftovers(), timeout=5)  # the last box's own, still exiting
        leftovers = []
        for proc in self.keeper.leftovers():
            with contextlib.suppress(psutil.Error):
                leftovers.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[-60:]}")
        left_mb = self.keeper.leftover_mb()
        reaped = self.keeper.reap()  # after counting: they hold the box's log, and the disk busy
        log(f"the killed boxes left {len(leftovers)} processes running ({left_mb:.0f} MB); {reaped} killed")
        s3 = self.cloud.s3

        def s3_get(key: str) -> bytes:
            return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

        # moto clones every version of the prefix (each with an open temporary file) for each
        # ListObjectVersions call, whatever its page size: one call per event, and the objects
        # themselves from ListObjectsV2, which clones nothing
        objects: list[dict[str, Any]] = []
        extra: int | None = 0
        for code in codes:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"events/{code}/"):
                objects += page.get("Contents", [])
            listed = s3.list_object_versions(Bucket=BUCKET, Prefix=f"events/{code}/", MaxKeys=10**7)
            older = sum(not v.get("IsLatest") for v in listed.get("Versions", []))
            extra = None if extra is None or listed.get("IsTruncated") else extra + older

        return Observed(
            events=self.events,
            cameras={c.spec.name: c.log for c in self.cameras},
            photos=photos,
            ledger=ledger,
            rejections=rejections,
            deadletters=deadletters,
            objects=objects,
            extra_versions=extra,
            index_calls=[
                (str(c.params.get("CollectionId")), str(c.params.get("ExternalImageId")))
                for c in self.fake.calls
                if c.operation == "IndexFaces"
            ],
            collections={k: v for k, v in self.fake.collections.items() if k in codes},
            fake_invalid=len(self.fake.invalid_requests),
            fake_crashes=len(self.fake.crashes),
            answers=[a for g in self.guests for a in g.answers],
            final_answers=final,
            s3_get=s3_get,
            log_text=self.box.log,
            kills=self.keeper.kills,
            restarts=self.keeper.restarts,
            graceful=self.keeper.graceful,
            crashes=list(self.keeper.crashes),
            peak_rss_mb=self.sampler.peak(),
            peak_with_leftovers_mb=self.sampler.peak_with_leftovers(),
            leftovers=leftovers,
            leftover_mb=left_mb,
            rss_runs=self.sampler.runs(),
            rss_bound_mb=self.cfg.rss_bound_mb,
        )

    def faults(self, o: Observed) -> dict[str, Any]:
        tl, logs = self.timeline, [c.log for c in self.cameras]
        in_ledger = {
            code: sum(code in r["outcome"] for r in o.ledger)
            for code in ("ThrottlingException", "InternalServerError")
        }
        resumes = [x for lg in logs for x in lg.resumes]
        return {
            "sigkill_restarts": self.keeper.kills,
            "graceful_restarts": self.keeper.graceful,
            "blackouts": {arg: tl.count("blackout", arg) for arg in ("stall", "reset", "refuse")},
            "stalls": tl.count("stall"),
            "slow_windows": tl.count("slow"),
            "s3_errors_injected": dict(self.s3faults.injected),
            "s3_rst_mid_body": tl.count("s3", "rst"),
            "s3_link_resets": self.s3_link.resets,
            "rekognition_faults": {
                arg: tl.count("rekognition", arg) for arg in ("throttle", "5xx", "search")
            },
            "rekognition_error_rows_in_ledger": in_ledger,
            "disk_mode": self.disk.mode,
            "disk_squeezes": self.disk.squeezes,
            "refused_452": sum(lg.refused_disk for lg in logs),
            "cuts_done": {
                h: sum(c.how == h for lg in logs for c in lg.cuts) for h in ("fin", "rst", "tls", "drop")
            },
            "resumes_ok": {v: sum(x.ok and x.verb == v for x in resumes) for v in ("REST", "APPE")},
            "resumes_after_a_failure": sum(x.ok and x.after == "failure" for x in resumes),
            "camera_sessions": sum(lg.sessions for lg in logs),
            "sessions_ended_without_quit": sum(lg.without_quit for lg in logs),
            "camera_transfer_errors": sum(lg.transfer_errors for lg in logs),
            "guest_searches_unanswered": sum(a.status == 0 for a in o.answers),
        }

    def stop(self) -> None:
        self.halt_faults.set()
        self.give_up.set()
        self.halt_guests.set()
        if "threads" in self.started:
            self.timeline.finish(120)
            for thread in [*self.cameras, *self.guests]:
                thread.join(120)
            self.sampler.stop()
        if "keeper" in self.started:
            with contextlib.suppress(Exception):
                self.keeper.stop()
            self.keeper.reap()
        if "cloud" in self.started:
            if self.cloud.s3 is not None:
                self.cloud.s3.close()
            self.cloud.stop()
        if "disk" in self.started:
            self.disk.teardown()


def _estimate_disk_mb(cfg: Config) -> int:
    shots = int(cfg.shoot_s / cfg.period_s) + 1
    raws = sum(shots // c.raw_every + 1 for c in cfg.cameras if c.raw_every)
    data = shots * len(cfg.cameras) * 1.8 * MB + raws * cfg.raw_mb * MB  # original + proxy (+ thumbs)
    return int(data * 1.3 / MiB) + cfg.reserve_mb + 1024


def _status(data: Path) -> dict[str, Any] | None:
    """The box's /api/status, or None while it is down. A SIGKILLed box leaves its control socket
    file behind, and httpcore does not close a unix socket whose connect() is refused: the
    ResourceWarning it then raises on collection is silenced here (not ours, not the box's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            with ControlClient(data, timeout=10) as client:
                return dict(client.request("GET", "/api/status"))
        except ShutterboxError:
            return None


def _wait(what: str, left: Callable[[], int | None], stall_s: float, tick: Callable[[], None]) -> bool:
    """Until ``left()`` is 0; False once it has not gone down for ``stall_s`` (no deadline as such:
    a slow, busy machine only makes it take longer)."""
    best, moved = None, time.monotonic()
    next_tick = time.monotonic() + 15.0
    while (n := left()) != 0:
        if n is not None and (best is None or n < best):
            best, moved = n, time.monotonic()
        if time.monotonic() - moved > stall_s:
            log(f"  {what}: {best} left, none done for {stall_s:g} s")
            return False
        if time.monotonic() >= next_tick:
            tick()
            next_tick += 15.0
        time.sleep(1.0)
    return True


def _jobs_left(data: Path) -> int | None:
    st = _status(data)
    if st is None:
        return None
    jobs = st["cloud"]["jobs"]
    return int(jobs.get("pending", 0) + jobs.get("leased", 0) + jobs.get("blocked", 0))


def run(cfg: Config, work: Path) -> dict[str, Any]:
    """The whole soak in ``work``; returns the report (``report["ok"]``: every check passed)."""
    started = time.time()
    saved = os.environ.get("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE")
    os.environ["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = str(64 * 1024)  # moto keeps bodies in temp files
    soak = Soak(cfg, work)
    log(f"soak {soak.run_id}: {cfg.shoot_s:g} s of shooting, {len(cfg.cameras)} cameras, work dir {work}")
    report: dict[str, Any] = {
        "run_id": soak.run_id,
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "config": _config_json(cfg),
    }
    try:
        soak.start()
        report["disk"] = {"mode": soak.disk.mode, "size_mb": soak.disk.size_mb, "notes": soak.disk.notes}
        soak.shoot()
        phases: dict[str, Any] = soak.finish()
        observed = soak.observe()
        observed.delivered, observed.drained = phases["delivered"], phases["drained"]
        rows = Checker(observed).run()
        phases["seconds"] = round(time.time() - started)
        report.update(
            faults=soak.faults(observed),
            phases=phases,
            timeline=[dataclasses.asdict(d) for d in soak.timeline.done],
            timeline_errors=soak.timeline.errors,
            camera_errors=[s for c in soak.cameras for s in c.log.samples][:12],
            checks=[dataclasses.asdict(row) for row in rows],
            ok=all(row.verdict != "FAIL" for row in rows),
        )
    finally:
        soak.stop()
        if saved is None:
            os.environ.pop("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", None)
        else:
            os.environ["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = saved
    return report


def _config_json(cfg: Config) -> dict[str, Any]:
    data = dataclasses.asdict(cfg)
    data["cameras"] = [f"{c.name} ({c.brand}, event {c.event})" for c in cfg.cameras]
    return data


def render_report(report: dict[str, Any], machine: dict[str, Any]) -> str:
    cfg, faults = report["config"], report.get("faults", {})
    lines = [
        f"shutterbox whole-event soak {report['run_id']}, {report['date']}",
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['ram_gb']} GB RAM,"
        f" Linux {machine['kernel']}, Python {machine['python']}",
        f"shooting {cfg['shoot_s']:g} s, one shot per camera every {cfg['period_s']:g} s; cameras:"
        f" {', '.join(cfg['cameras'])}; {cfg['guests']} guests every ~{cfg['guest_every_s']:g} s",
        f"uplink {cfg['link_mbit']:g} Mbit/s +{cfg['latency_ms']:g} ms each way; disk:"
        f" {report.get('disk', {}).get('mode', '?')} ({report.get('disk', {}).get('size_mb', '?')} MB),"
        f" reserve {cfg['reserve_mb']} MB",
        f"phases: {report.get('phases', {})}",
        "",
        "faults injected:",
    ]
    lines += [f"  {k}: {v}" for k, v in faults.items()]
    lines += ["", "checks:"]
    lines.append(render([Row(**row) for row in report.get("checks", [])]))
    failed = [row["name"] for row in report.get("checks", []) if row["verdict"] == "FAIL"]
    lines += [
        "",
        f"RESULT: {'PASS' if report.get('ok') else 'FAIL'}"
        + (f" ({len(failed)} checks failed)" if failed else ""),
    ]
    lines += [f"fault not applied: {item}" for item in report.get("timeline_errors", [])]
    lines += [f"a camera saw: {item}" for item in report.get("camera_errors", [])]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="full", help="run length and fault rates"
    )
    parser.add_argument(
        "--shoot-minutes", type=float, help="shooting time (the preset's fault rates are kept)"
    )
    parser.add_argument("--period", type=float, help="seconds between two shots of one camera")
    parser.add_argument("--guests", type=int, help="guest threads searching throughout")
    parser.add_argument(
        "--disk", choices=("auto", "loop", "tmpfs", "reserve"), help="how the disk is limited"
    )
    parser.add_argument("--rss-bound-mb", type=float, help="the box's memory bound (default 1536)")
    parser.add_argument("--seed", type=int, help="fault timeline seed")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    cfg = PRESETS[args.preset]
    changes: dict[str, Any] = {}
    if args.shoot_minutes is not None:
        changes["shoot_s"] = args.shoot_minutes * 60
    for name, attr in (("period", "period_s"), ("guests", "guests"), ("disk", "disk"), ("seed", "seed")):
        if getattr(args, name) is not None:
            changes[attr] = getattr(args, name)
    if args.rss_bound_mb is not None:
        changes["rss_bound_mb"] = args.rss_bound_mb
    return dataclasses.replace(cfg, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_from(args)
    signal.signal(signal.SIGTERM, terminate)
    machine = machine_info()
    tmp = tempfile.TemporaryDirectory(prefix="sbsoak-", dir=work_base())
    try:
        try:
            report = run(cfg, Path(tmp.name))
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            log(f"run failed: {exc!r}\n{traceback.format_exc()}")
            return 2
    finally:
        tmp.cleanup()
    report["machine"] = machine
    print(json.dumps(report, indent=2) if args.json else render_report(report, machine))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    run_script(main)
