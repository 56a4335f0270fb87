"""FaceService: keeps the local face index caught up with the queue and answers selfie searches.

Runs on the asyncio thread; the work happens in two process pools started with ``spawn``:

- selfies: one process at normal priority, always ready, embedding ``SELFIE_THREADS`` selfies at
  once on threads, so a guest never waits behind a burst nor, for long, behind other guests.
  It also indexes one photo at a time on a thread of its own at low CPU priority (Linux keeps
  a nice value per thread).
- indexing: the other ``faces.workers - 1`` photos at once, in a second process at low CPU
  priority, each on a thread of its own (``threaded.ThreadedProcess``: one copy of the models,
  not one per photo); none when ``faces.workers`` is 1. Two processes of one indexing thread
  each wait less on each other than two threads of one process, since dlib's pyramid and
  the shape predictor hold the GIL (docs/faces.md), and the selfie process is there anyway.
Each indexing slot takes the newest photo not yet indexed (so after a burst the frame just
taken is searchable first), makes or reads its proxy, finds and embeds its faces; the result
is committed with the photo's "done" mark.

Search is exact: the event's embeddings sit in memory as one NumPy matrix per event
(``EventGallery``), loaded on the first search and topped up as photos are indexed. A search is
asked of one event's gallery, which holds nothing else: isolation is by construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from appliance import metrics
from appliance.bridge import cancel_and_wait
from appliance.faces import worker
from appliance.faces.engine import RESNET_DAT, models_dir
from appliance.faces.netspec import model_path
from appliance.faces.regions import RegionsUnavailable, proposer_path
from appliance.faces.threaded import ThreadedProcess
from appliance.store.faces import EventVectors, FaceStore, FaceTodo, FoundFace

if TYPE_CHECKING:
    from appliance.config import FacesSettings
    from appliance.layout import Layout
    from appliance.store import Store

logger = logging.getLogger(__name__)

SELFIE_THREADS = 2  # selfies embedded at once (4 guests at once: p95 0.50 -> see docs/faces.md)
MAX_CRASHES = 2  # a photo that kills the face process twice alone is recorded as failed


def default_workers() -> int:
    """Photos indexed at once: one per core, at most 4. The process runs at low priority, so
    FTP and the guest pages take a core whenever they need one (bench/faces.py measures both)."""
    return max(1, min(4, os.cpu_count() or 2))


class EventGallery:
    """One event's searchable faces in memory: a float32 matrix grown by doubling, so topping it
    up after every indexed photo costs nothing like a copy of the whole event."""

    def __init__(self, event: str) -> None:
        self.event = event
        self._ids = np.zeros(64, np.int64)
        self._face_ids = np.zeros(64, np.int64)
        self._vectors = np.zeros((64, 128), np.float32)
        self.faces = 0
        self.last_face_id = 0

    def add(self, more: EventVectors) -> None:
        n = len(more.photo_ids)
        if n:
            if self.faces + n > len(self._ids):
                capacity = max(2 * len(self._ids), self.faces + n)
                self._ids = np.resize(self._ids, capacity)
                self._face_ids = np.resize(self._face_ids, capacity)
                self._vectors = np.resize(self._vectors, (capacity, 128))
            self._ids[self.faces : self.faces + n] = more.photo_ids
            self._face_ids[self.faces : self.faces + n] = 0 if more.face_ids is None else more.face_ids
            self._vectors[self.faces : self.faces + n] = more.vectors
            self.faces += n
        self.last_face_id = max(self.last_face_id, more.last_face_id)

    def search(self, query: np.ndarray, threshold: float) -> list[tuple[int, float]]:
        """(photo id, distance) of every photo with a face closer than ``threshold``, closest
        first; a photo counts once, by its closest face."""
        return [(p, d) for p, d, _ in self.closest(query, threshold)]

    def closest(self, query: np.ndarray, threshold: float) -> list[tuple[int, float, int]]:
        """(photo id, distance, face id) of every photo with a face closer than ``threshold``,
        closest first, by the photo's closest face (the face a guest's thumbnail centres on)."""
        return closest_faces(
            self._vectors[: self.faces],
            self._ids[: self.faces],
            self._face_ids[: self.faces],
            query,
            threshold,
        )


def closest_faces(
    vectors: np.ndarray, photo_ids: np.ndarray, face_ids: np.ndarray, query: np.ndarray, threshold: float
) -> list[tuple[int, float, int]]:
    """(photo id, distance, face id) per photo with a row closer to ``query`` than ``threshold``:
    the photo's closest row, closest photos first."""
    if not len(vectors):
        return []
    distances = np.linalg.norm(vectors - query.astype(np.float32), axis=1)
    hits = np.flatnonzero(distances < threshold)
    best: dict[int, tuple[int, float, int]] = {}
    for i in hits[np.argsort(distances[hits], kind="stable")]:
        photo = int(photo_ids[i])
        if photo not in best:
            best[photo] = (photo, float(distances[i]), int(face_ids[i]))
    return list(best.values())


@dataclass(frozen=True, slots=True)
class LocalSearch:
    matches: list[tuple[int, float]]  # (photo id, distance)
    faces_in_selfie: int
    selfie_jpeg: bytes  # normalised selfie, for a cloud search
    error: str | None  # "not_an_image", "too_large", "no_face", "face_too_small"
    # photo id -> the matched face's id, for every photo of the event with a face near the
    # selfie (a cloud match's face too): the thumbnail centres on it
    faces: dict[int, int] = field(default_factory=dict)
    embedding: np.ndarray | None = None  # the selfie's, in memory only (live results)


NewFaces = Callable[[str, EventVectors], None]  # (event, faces just indexed)


class FaceService:
    def __init__(
        self, settings: FacesSettings, store: Store, layout: Layout, *, proxy_long_edge: int
    ) -> None:
        self.settings = settings
        self.store = store
        self.layout = layout
        self.index_db = FaceStore(store)  # the faces table and the photos' index marks
        self.proxy_long_edge = proxy_long_edge
        self.workers = settings.workers or default_workers()
        self._index_pool: ThreadedProcess | None = None  # faces.workers - 1 indexing threads
        self._indexing = False
        self._selfie_pool: ThreadedProcess | None = None
        self._galleries: dict[str, EventGallery] = {}
        self._gallery_locks: dict[str, asyncio.Lock] = {}
        self._inflight: set[int] = set()
        self._crashes: dict[int, int] = {}  # photo id -> crashes while indexed alone (suspects)
        self._running = 0
        self._solo = False
        self._solo_waiting = 0
        self._slots = asyncio.Condition()
        self._claim_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.latencies: deque[float] = deque(maxlen=1000)  # shutter (received) to searchable, s
        self.selfie_pid: int | None = None
        self.indexed = 0
        self.onnx_model: Path | None = None
        self.proposer: Path | None = None  # both processes scan HOG around proposals (regions.py)
        self.listeners: list[NewFaces] = []  # told of every face added to a gallery in memory

    # --- life cycle

    def _initargs(
        self, nice: int, *, fast: bool = False
    ) -> tuple[int, int, int, str | None, int, bool, str | None]:
        return (
            self.settings.min_face_px,
            self.settings.upsample,
            nice,
            str(self.onnx_model) if self.onnx_model else None,
            1,
            fast,
            str(self.proposer) if self.proposer else None,
        )

    def _selfie_process(self) -> ThreadedProcess:
        """Normal priority, ``SELFIE_THREADS`` selfies at once: guests searching together share
        the cores instead of queueing one behind another. With indexing on, it also indexes
        one photo at a time on a background thread at ``faces.nice``: two processes of one
        indexing thread wait less on each other's GIL than one of two threads, and this one
        runs anyway (no third process's memory). The indexer's full graph optimisation then
        serves selfies too (3.8 against 7.3 ms a face)."""
        background = (1, self.settings.nice) if self.settings.enabled else None
        return ThreadedProcess(
            min(SELFIE_THREADS, os.cpu_count() or 1),
            worker.init,
            self._initargs(0, fast=background is not None),
            background=background,
        )

    def _indexing_process(self) -> ThreadedProcess:
        # The indexer embeds ~8 faces a photo, all day: onnxruntime's full graph optimisation
        # halves that (7.3 -> 3.8 ms a face on x86_64) for ~24 MB. One photo of the
        # ``faces.workers`` is indexed beside the selfies: the others here.
        return ThreadedProcess(self.workers - 1, worker.init, self._initargs(self.settings.nice, fast=True))

    async def _onnx_model(self) -> Path:
        """dlib's ResNet as ONNX, converted once from the packaged ``.dat`` (keyed by its SHA-256),
        in a short-lived process of its own: onnx and the conversion's ~160 MB never stay in the
        box's process. A later start finds the file (hashing the 22 MB ``.dat`` here, ~40 ms)
        and starts no converter (spawning one cost ~1 s of every start)."""
        dat = models_dir() / RESNET_DAT
        path = await asyncio.to_thread(model_path, dat, self.layout.models)
        if path.is_file():
            logger.info("face embedding: onnxruntime, model %s", path.name)
            return path
        started = time.monotonic()
        path = Path(await _in_converter(worker.convert_model, str(dat), str(self.layout.models)))
        logger.info(
            "face embedding: onnxruntime, model %s (converted from the .dat in %.1f s)",
            path.name,
            time.monotonic() - started,
        )
        return path

    async def _proposer_model(self) -> Path | None:
        """The face proposal model HOG scans around (``faces.scan = "regions"``; photos and selfies),
        derived once from the packaged CenterFace as ``_onnx_model`` does; None for a full scan,
        or when the model is missing (said in the log: indexing works on, at full-scan cost)."""
        if self.settings.scan != "regions" or self.settings.upsample:
            why = "faces.upsample above 0" if self.settings.upsample else "faces.scan full"
            logger.info("face detection: HOG over every photo's whole picture (%s)", why)
            return None
        try:
            path = await asyncio.to_thread(proposer_path, self.layout.models)
            if not path.is_file():
                path = Path(await _in_converter(worker.convert_proposer, str(self.layout.models)))
        except (RegionsUnavailable, OSError, ValueError) as exc:
            logger.warning("face detection: HOG over whole pictures, since %s", exc)
            return None
        logger.info("face detection: HOG around the faces %s proposes", path.name)
        return path

    async def __aenter__(self) -> Self:
        self.onnx_model = await self._onnx_model()
        self.proposer = await self._proposer_model()
        # The selfie process always runs: it also reads and normalises selfies for a cloud search.
        # Both processes start at once (each takes ~0.5 s to import and load the models).
        self._selfie_pool = self._selfie_process()
        self._indexing = self.settings.enabled
        if self._indexing and self.workers > 1:
            self._index_pool = self._indexing_process()
        pids = await asyncio.gather(
            *(
                asyncio.wrap_future(pool.submit(worker.warm))
                for pool in (self._selfie_pool, self._index_pool)
                if pool
            )
        )
        self.selfie_pid = pids[0]
        if not self._indexing:
            logger.info("local face indexing off (faces.enabled = false)")
            return self
        self.store.listeners.append(self._wake.set)
        # slot 0 indexes in the selfie process, the others in the indexing process
        self._tasks = [
            asyncio.create_task(self._indexer(i == 0), name=f"faces-{i}") for i in range(self.workers)
        ]
        logger.info(
            "local face index: %d photos at once (one beside the selfies, %d in the indexing process)",
            self.workers,
            self.workers - 1,
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await cancel_and_wait(self._tasks)
        self.store.unlisten(self._wake.set)
        # Photos in flight are simply indexed again at the next start. Both processes end at once.
        pools = (self._index_pool, self._selfie_pool)
        await asyncio.gather(*(asyncio.to_thread(pool.shutdown) for pool in pools if pool is not None))

    @property
    def enabled(self) -> bool:
        return self._indexing

    # --- indexing

    async def _claim(self) -> FaceTodo | None:
        async with self._claim_lock:
            todo = await self.index_db.todo(1, skip=self._inflight)
            if not todo:
                return None
            self._inflight.add(todo[0].photo_id)
            return todo[0]

    async def _indexer(self, beside_selfies: bool) -> None:
        while True:
            todo = await self._claim()
            if todo is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):  # not wait_for: see health.every
                        await self._wake.wait()
                continue
            try:
                async with self._slot(solo=todo.photo_id in self._crashes):
                    await self._index(todo, beside_selfies)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("indexing photo %d failed; it is tried again later", todo.photo_id)
                await asyncio.sleep(5.0)
            finally:
                self._inflight.discard(todo.photo_id)

    @contextlib.asynccontextmanager
    async def _slot(self, *, solo: bool) -> AsyncIterator[None]:
        """A place in the indexing process. A photo that was in flight when the process died is
        a suspect and runs alone, so that only the photo that kills it is blamed."""
        async with self._slots:
            if solo:
                self._solo_waiting += 1
                await self._slots.wait_for(lambda: not self._solo and not self._running)
                self._solo_waiting -= 1
                self._solo = True
            else:
                await self._slots.wait_for(lambda: not self._solo and not self._solo_waiting)
            self._running += 1
        try:
            yield
        finally:
            async with self._slots:
                self._running -= 1
                self._solo = False if solo else self._solo
                self._slots.notify_all()

    async def _index(self, todo: FaceTodo, beside_selfies: bool) -> None:
        pool = self._selfie_pool if beside_selfies else self._index_pool
        assert pool is not None
        proxy = self.layout.proxies / todo.event / f"{todo.sha256}.jpg"
        alone = todo.photo_id in self._crashes
        try:
            async with asyncio.timeout(self.settings.photo_timeout):
                call = (todo.stored_path, str(proxy), self.proxy_long_edge, todo.proxy_path is not None)
                result = await asyncio.wrap_future(
                    pool.submit(worker.index_photo, *call, background=beside_selfies)
                )
        except (BrokenProcessPool, TimeoutError) as exc:
            hung = isinstance(exc, TimeoutError)
            crashes = self._crashes.get(todo.photo_id, 0) + (1 if alone else 0)
            self._crashes[todo.photo_id] = crashes
            # the first of the photos in flight to notice restarts the process
            if pool is self._index_pool or pool is self._selfie_pool:
                which = "selfie" if pool is self._selfie_pool else "face"
                if hung:
                    logger.error(
                        "the %s process has not finished photo %d in %g s: taken as hung, restarting it",
                        which,
                        todo.photo_id,
                        self.settings.photo_timeout,
                    )
                    pool.kill()  # the other photos in flight fail over as in a crash
                else:
                    logger.error("the %s process died indexing photo %d; restarting it", which, todo.photo_id)
                if pool is self._index_pool:
                    self._restart_index_pool()
                else:
                    self._restart_selfie_process(pool)
            if crashes >= MAX_CRASHES:
                verb, state = ("hung", "hung") if hung else ("killed", "crashed")
                logger.error(
                    "photo %d %s the face process %d times: not indexed", todo.photo_id, verb, crashes
                )
                await self.index_db.record(todo, [], proxy=None, failed=f"worker {state}")
            return
        found = [
            FoundFace(
                f.left,
                f.top,
                f.width,
                f.height,
                None if f.embedding is None else f.embedding.astype("<f4").tobytes(),
            )
            for f in result.faces
        ]
        made = (str(result.proxy.path), result.proxy.sha256) if result.proxy else None
        if result.error:
            logger.warning("photo %d has no readable image for face search: %s", todo.photo_id, result.error)
        if not await self.index_db.record(todo, found, proxy=made, failed=result.error):
            if result.proxy is not None:
                result.proxy.path.unlink(missing_ok=True)  # the event was purged meanwhile
            return
        self.indexed += 1
        await self._top_up(todo.event)
        latency = time.time() - _epoch(todo.received_at)
        self.latencies.append(latency)
        metrics.SHUTTER_TO_SEARCHABLE.labels("local").observe(latency)

    def _restart_index_pool(self) -> None:
        self._index_pool = self._indexing_process()

    # --- search

    async def gallery(self, event: str) -> EventGallery:
        lock = self._gallery_locks.setdefault(event, asyncio.Lock())
        async with lock:
            gallery = self._galleries.get(event)
            if gallery is None:
                gallery = EventGallery(event)
                gallery.add(await self.index_db.vectors(event))
                self._galleries[event] = gallery
            return gallery

    async def _top_up(self, event: str) -> None:
        """Add newly committed faces to a gallery already in memory."""
        gallery = self._galleries.get(event)
        if gallery is not None:
            async with self._gallery_locks[event]:
                more = await self.index_db.vectors(event, gallery.last_face_id)
                gallery.add(more)
            if len(more.photo_ids):
                for listener in self.listeners:
                    listener(event, more)

    def forget(self, event: str) -> None:
        """Drop an event's gallery (the event was purged)."""
        self._galleries.pop(event, None)

    async def search(self, event: str, selfie: bytes) -> LocalSearch:
        """Embed the selfie's largest face (in the selfie process) and search the event."""
        pool = self._selfie_pool
        if pool is None:
            raise RuntimeError("local face index is off")
        try:
            result = await asyncio.wrap_future(pool.submit(worker.embed_selfie, selfie))
        except BrokenProcessPool:
            # Died under this selfie or another: once more on a fresh process. A selfie that
            # kills that one too is refused as unreadable.
            self._restart_selfie_process(pool)
            assert self._selfie_pool is not None
            try:
                result = await asyncio.wrap_future(self._selfie_pool.submit(worker.embed_selfie, selfie))
            except BrokenProcessPool:
                self._restart_selfie_process(self._selfie_pool)
                return LocalSearch([], 0, b"", "not_an_image")
        if result.embedding is None:
            return LocalSearch([], result.faces, result.jpeg, result.error)
        gallery = await self.gallery(event)
        # Faces a little past the threshold too: a cloud match's photo has its face found here
        near = gallery.closest(result.embedding, self.settings.match_threshold + 0.15)
        matches = [(p, d) for p, d, _ in near if d < self.settings.match_threshold]
        faces = {p: f for p, _, f in near}
        return LocalSearch(matches, result.faces, result.jpeg, None, faces, result.embedding)

    def _restart_selfie_process(self, dead: ThreadedProcess) -> None:
        """Once per death, whichever of the searches in flight notices first."""
        if dead is self._selfie_pool:
            logger.error("the selfie process died; restarting it")
            self._selfie_pool = self._selfie_process()
            self.selfie_pid = self._selfie_pool.pid

    async def ping(self) -> None:
        """Round trip to the selfie process: guests' searches depend on it answering. A dead one
        is replaced here too, so that the box heals without waiting for a guest to notice."""
        pool = self._selfie_pool
        if pool is not None:
            try:
                await asyncio.wrap_future(pool.submit(worker.warm))
            except BrokenProcessPool:
                self._restart_selfie_process(pool)
                raise

    async def status(self, reader: Store | None = None) -> dict[str, Any]:
        """``reader``: a read-only Store to count from (the admin API's, so a status poll never
        queues behind ingest's writes on the writer's connection)."""
        lat = sorted(self.latencies)
        counts = await (FaceStore(reader) if reader is not None else self.index_db).counts()
        return {
            "enabled": self.enabled,
            "workers": self.workers,
            "in_flight": len(self._inflight),
            "selfie_pid": self.selfie_pid,
            "index_pid": self._index_pool.pid if self._index_pool is not None else self.selfie_pid,
            # every process that indexes: the indexing process and the selfie process
            "index_pids": [
                pool.pid
                for pool in (self._index_pool, self._selfie_pool)
                if pool is not None and self._indexing
            ],
            **counts,
            "searchable_p50_s": round(lat[len(lat) // 2], 2) if lat else None,
            "searchable_p95_s": round(lat[int(len(lat) * 0.95)], 2) if lat else None,
            "galleries": {e: g.faces for e, g in self._galleries.items()},
        }


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


async def _in_converter(function: Callable[..., str], *args: str) -> str:
    """``function(*args)`` in a short-lived process of its own: onnx and a conversion's memory
    never stay in the box's process."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, function, *args)
    finally:
        await asyncio.to_thread(pool.shutdown, wait=True)
