"""Pieces of ``bench/faces.py``: the frame pool, camera schedules and camera threads, a sampler of
the box's memory and face-index status, reading the box's database, seeding it for the search test
and timing guest searches.

Nothing here prints figures; ``faces.py`` runs the benchmark and reports.
"""

from __future__ import annotations

import contextlib
import ftplib
import math
import multiprocessing as mp
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _synthetic
import httpx
import numpy as np
import psutil
from _common import FTP_ERRORS, ProcTree
from _ftpload import BaseImage, Endpoint, Frame, comment_offset, login, store
from _sync_helpers import iso_ts

from appliance.control.client import ControlClient
from appliance.faces.engine import FaceModel, decode_selfie

MAX_FACES = 30  # the most faces a pool frame gets (a group shot)
POOL_SEED = 9000
SEARCH_SEED = 4242
EMBEDDING_DIM = 128
# Real dlib embeddings of two different people lie ~0.8-0.9 apart; synthetic strangers are drawn
# around the mean of real embeddings with this per-dimension spread (distance ~ sigma * sqrt(256)).
STRANGER_SIGMA = 0.9 / math.sqrt(2 * EMBEDDING_DIM)
SAME_PERSON_SIGMA = 0.01  # jitter of a true match's copy of a real embedding (~0.11 in distance)


# --------------------------------------------------------------------------------------------
# The frame pool: 24 MP JPEGs with real faces (bench/_synthetic.py)


@dataclass(frozen=True)
class PoolFrame:
    base: BaseImage
    faces: int  # pasted faces (ground truth)
    widths: tuple[int, ...]  # their face-box widths in frame pixels


def pool_face_counts(count: int) -> list[int]:
    """0-30 faces per frame, skewed to few (decor and venue shots with none, portraits, couples,
    tables) with some group shots: mean ~10. Deterministic order, shuffled."""
    counts = [round(MAX_FACES * ((i + 0.5) / count) ** 2) for i in range(count)]
    random.Random(count).shuffle(counts)
    return counts


def _write_pool_frame(job: tuple[Path, int, int]) -> tuple[int, ...]:
    path, faces, seed = job
    return tuple(face.width for face in _synthetic.write_frame(path, faces, seed=seed))


def make_pool(count: int, folder: Path, processes: int) -> list[PoolFrame]:
    """``count`` distinct frames, made ``processes`` at a time (forked: call before any thread)."""
    if not _synthetic.available():
        raise RuntimeError(f"the face pictures are missing from {_synthetic.FACES_DIR}")
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"pool{i:03d}.jpg", n, POOL_SEED + i) for i, n in enumerate(pool_face_counts(count))]
    with ProcessPoolExecutor(processes, mp_context=mp.get_context("fork")) as pool:
        widths = list(pool.map(_write_pool_frame, jobs))
    frames = []
    for (path, faces, _seed), face_widths in zip(jobs, widths, strict=True):
        data = path.read_bytes()
        path.unlink()
        base = BaseImage(data, comment_offset(data), *_synthetic.FRAME_SIZE)
        frames.append(PoolFrame(base, faces, face_widths))
    return frames


# --------------------------------------------------------------------------------------------
# Cameras on a schedule


def camera_schedule(
    duration: float, fps: float, burst_frames: int, burst_seconds: float, burst_every: float, phase: float
) -> list[float]:
    """When one camera shoots, in seconds from the start: ``fps`` frames a second, except that
    every ``burst_every`` s from ``phase`` on, a burst of ``burst_frames`` in ``burst_seconds``
    takes the place of the steady frames of that window."""
    bursts: list[float] = []
    if burst_frames > 0 and burst_every > 0:
        start = phase
        while start < duration:
            bursts.append(start)
            start += burst_every
    steady = (k / fps for k in range(math.ceil(duration * fps)))
    times = [t for t in steady if not any(b <= t < b + burst_seconds for b in bursts)]
    for b in bursts:
        times += [b + j * burst_seconds / burst_frames for j in range(burst_frames)]
    return sorted(t for t in times if t < duration)


@dataclass
class Shot:
    frame: Frame
    camera: int
    due: float  # time.monotonic() the camera fires
    late_s: float = 0.0  # how far behind the schedule the STOR went out
    t_226: float | None = None  # wall clock, 226 received
    error: str | None = None


def run_camera(
    endpoint: Endpoint, folder: str, shots: Sequence[Shot], stop: threading.Event, give_up: float
) -> None:
    """One camera: a persistent FTP session; each shot is sent at its due time (at once when the
    previous upload made it late). Shots still unsent at ``give_up`` (monotonic) are dropped."""
    ftp: ftplib.FTP | None = None
    try:
        for shot in shots:
            if stop.wait(max(0.0, shot.due - time.monotonic())) or time.monotonic() > give_up:
                return
            shot.late_s = max(0.0, time.monotonic() - shot.due)
            try:
                if ftp is None:
                    ftp = login(endpoint, folder)
                store(ftp, shot.frame)
                shot.t_226 = time.time()
            except FTP_ERRORS as exc:
                shot.error = f"{type(exc).__name__}: {exc}".strip()
                if ftp is not None:
                    ftp.close()
                ftp = None
    finally:
        if ftp is not None:
            with contextlib.suppress(*ftplib.all_errors, EOFError):
                ftp.quit()


# --------------------------------------------------------------------------------------------
# Sampling the box while it runs


@dataclass(frozen=True)
class StatusPoint:
    t: float  # wall clock
    faces: dict[str, Any]  # the "faces" part of /api/status


class Sampler(threading.Thread):
    """RSS of the box's process tree every 0.5 s and its face-index status every second
    (over the control socket, as ``shutterbox status`` does). ``sample_once`` takes one sample
    by hand (a caller that is waiting anyway)."""

    def __init__(self, tree: ProcTree, data_dir: Path, period: float = 0.5) -> None:
        super().__init__(name="sampler", daemon=True)
        self.tree, self.period = tree, period
        self.client = ControlClient(data_dir, timeout=10)
        self.rss: list[tuple[float, float]] = []  # (wall clock, MB)
        self.status: list[StatusPoint] = []
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._ticks = 0

    def sample_once(self) -> None:
        with self._lock:
            self.rss.append((time.time(), self.tree.rss_mb()))
            if self._ticks % max(1, round(1.0 / self.period)) == 0:
                try:
                    faces = self.client.request("GET", "/api/status")["faces"]
                    self.status.append(StatusPoint(time.time(), dict(faces)))
                except Exception as exc:  # a slow answer must not end the sampling
                    self.errors.append(repr(exc))
            self._ticks += 1

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample_once()
            self._halt.wait(self.period)

    def stop(self) -> None:
        """Idempotent."""
        self._halt.set()
        if self.is_alive():
            self.join(15)
        self.client.close()

    def latest(self) -> dict[str, Any]:
        return self.status[-1].faces if self.status else {}

    def status_at(self, t: float) -> StatusPoint | None:
        before = [s for s in self.status if s.t <= t]
        return before[-1] if before else None

    def rss_between(self, start: float, end: float) -> list[float]:
        return [mb for t, mb in self.rss if start <= t <= end]


class CpuWatch:
    """CPU used over a window, in cores: the whole machine, the box's process tree, this harness
    (its camera threads and FTP client processes included) and everything else (other jobs on
    the machine: figures taken while it is busy are suspect)."""

    def __init__(self, tree: ProcTree) -> None:
        self.tree = tree
        self.start = self._read()

    def _read(self) -> tuple[float, float, float, float]:
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal
        own = psutil.Process().cpu_times()
        harness = own.user + own.system + own.children_user + own.children_system
        return time.monotonic(), busy, self.tree.cpu_s() or 0.0, harness

    def cores(self) -> dict[str, float]:
        end = self._read()
        elapsed = max(1e-9, end[0] - self.start[0])
        machine, box, harness = ((end[i] - self.start[i]) / elapsed for i in (1, 2, 3))
        return {
            "machine": round(machine, 2),
            "box": round(box, 2),
            "harness": round(harness, 2),
            "other": round(max(0.0, machine - box - harness), 2),
        }


# --------------------------------------------------------------------------------------------
# The box's database


def _connect_ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


@dataclass(frozen=True)
class PhotoRow:
    id: int
    name: str
    received: float  # wall clock
    searchable: float | None  # wall clock of searchable_local_at
    faces_state: str | None
    faces: int  # faces found
    searchable_faces: int  # of those, with an embedding

    @property
    def latency(self) -> float:
        """Shutter (received by the box) to searchable on the box; +inf while not searchable."""
        return math.inf if self.searchable is None else self.searchable - self.received


def read_photos(db: Path, event: str) -> list[PhotoRow]:
    """An event's photos with their face-index timestamps, read-only (the box may be stopped)."""
    with contextlib.closing(_connect_ro(db)) as con:
        rows = con.execute(
            "SELECT p.id, p.original_name, p.received_at, p.searchable_local_at, p.faces_state,"
            " count(f.id), count(f.embedding) FROM photos p LEFT JOIN faces f ON f.photo_id = p.id"
            " WHERE p.event = ? GROUP BY p.id ORDER BY p.id",
            (event,),
        ).fetchall()
    return [
        PhotoRow(r[0], r[1], iso_ts(r[2]), iso_ts(r[3]) if r[3] else None, r[4], r[5], r[6]) for r in rows
    ]


# --------------------------------------------------------------------------------------------
# A big event for the search test: rows written straight into the (stopped) box's database


def real_embeddings(pictures: Sequence[str]) -> dict[str, np.ndarray]:
    """The embedding of the largest face of each picture, as the box's selfie worker makes it."""
    model = FaceModel()  # the box's defaults: min_face_px 80, upsample 0
    found = {}
    for name in pictures:
        image, _jpeg = decode_selfie(_synthetic.selfie_bytes(name))
        face, _count = model.largest(image)
        if face is None or face.embedding is None:
            raise RuntimeError(f"no searchable face in {name}")
        found[name] = face.embedding.astype(np.float32)
    return found


@dataclass(frozen=True)
class Seeded:
    photos: int
    faces: int
    true_photos: int  # photos holding a face of the selfie's person
    expected_matches: int  # photos with a face closer to the query than the threshold
    nearest_stranger: float  # distance from the query to the closest synthetic stranger
    seconds: float


def seed_event(
    db: Path,
    event: str,
    *,
    photos: int,
    faces: int,
    person: Sequence[np.ndarray],
    others: Sequence[np.ndarray],
    true_photos: int,
    query: np.ndarray,
    threshold: float,
    stored_path: Path,
) -> Seeded:
    """Insert ``photos`` indexed photos holding ``faces`` faces into a stopped box's database.

    Strangers' embeddings are drawn around the mean of the real ones (``person`` and ``others``)
    so that they lie as far from the selfie and from each other as different real people do;
    ``true_photos`` photos get one face that is a real embedding of the selfie's person (cycled
    through ``person``) with a little jitter. Every row points at one small real file, so the
    janitor finds no photo missing at the next start; ``faces_state`` is 'done', so nothing is
    indexed again."""
    t0 = time.monotonic()
    rng = np.random.default_rng(SEARCH_SEED)
    centre = np.mean([*person, *others], axis=0)
    per_photo = rng.multinomial(faces, np.full(photos, 1.0 / photos))
    holders = rng.choice(np.flatnonzero(per_photo > 0), size=true_photos, replace=False)
    start = time.time() - 6 * 3600  # an evening's event: the photos span the last six hours
    rows = []
    for i in range(photos):
        received = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i * 4.0)) + ".000+00:00"
        indexed = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i * 4.0 + 2)) + ".000+00:00"
        sha = f"{rng.integers(0, 2**63):016x}{i:048x}"
        name = f"SEED_{i:05d}.JPG"
        rows.append((event, name, sha, str(stored_path), received, indexed))
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        con.executemany(
            "INSERT INTO photos (event, function, camera, original_name, sha256, size, kind, searchable,"
            " state, stored_path, received_at, width, height, faces_state, searchable_local_at)"
            " VALUES (?, 'main', 'seed', ?, ?, 8000000, 'jpeg', 1, 'queued', ?, ?, 6000, 4000, 'done', ?)",
            rows,
        )
        ids = [
            r[0]
            for r in con.execute(
                "SELECT id FROM photos WHERE event = ? AND camera = 'seed' ORDER BY id", (event,)
            )
        ]
        vectors = (centre + rng.normal(0.0, STRANGER_SIGMA, (faces, EMBEDDING_DIM))).astype(np.float32)
        owners = np.repeat(np.arange(photos), per_photo)
        first_face = np.concatenate([[0], np.cumsum(per_photo)[:-1]])
        for k, photo in enumerate(holders):
            jitter = rng.normal(0.0, SAME_PERSON_SIGMA, EMBEDDING_DIM)
            vectors[first_face[photo]] = (person[k % len(person)] + jitter).astype(np.float32)
        con.executemany(
            "INSERT INTO faces (photo_id, event, x, y, w, h, embedding) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (ids[owner], event, 100, 100, 120, 120, vectors[n].astype("<f4").tobytes())
                for n, owner in enumerate(owners)
            ),
        )
    distances = np.linalg.norm(vectors - query, axis=1)
    is_true = np.zeros(faces, bool)
    is_true[first_face[holders]] = True
    matched = {int(owners[n]) for n in np.flatnonzero(distances < threshold)}
    return Seeded(
        photos,
        faces,
        true_photos,
        len(matched),
        float(distances[~is_true].min()),
        time.monotonic() - t0,
    )


# --------------------------------------------------------------------------------------------
# Guest searches


@dataclass(frozen=True)
class Search:
    seconds: float
    status: int
    matches: int  # -1 when the answer was not a result


def search(client: httpx.Client, url: str, selfie: bytes) -> Search:
    """One guest search through the HTTP API, timed from the request to the parsed answer."""
    t0 = time.perf_counter()
    response = client.post(url, files={"selfie": ("selfie.jpg", selfie, "image/jpeg")})
    body = response.json()
    seconds = time.perf_counter() - t0
    matches = len(body["matches"]) if response.status_code == 200 else -1
    return Search(seconds, response.status_code, matches)


def page_search(client: httpx.Client, url: str, selfie: bytes) -> Search:
    """One guest search as the phone makes it: the event page's form (consent ticked) posted to
    ``url``, its 303 followed to the results page, timed until that page's HTML has arrived (the
    first photos are in it; thumbnails load after). ``matches``: the tiles on the page."""
    t0 = time.perf_counter()
    response = client.post(
        url,
        files={"selfie": ("selfie.jpg", selfie, "image/jpeg")},
        data={"consent": "yes"},
        follow_redirects=True,
    )
    seconds = time.perf_counter() - t0
    redirected = bool(response.history) and response.history[0].status_code == 303
    if response.status_code != 200 or not redirected:
        return Search(seconds, response.status_code if response.status_code != 200 else 0, -1)
    return Search(seconds, 200, response.text.count(" data-photo="))
