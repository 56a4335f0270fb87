"""SyncService: trickles every frame to S3 and indexes its proxy in the event's Rekognition
collection, exactly once, over whatever the venue WiFi does.

Entered on the asyncio thread (``async with``); workers are asyncio tasks that run blocking
cloudsync calls in threads. Order per photo: the searchable proxy first (make it, upload it,
index it), originals after at lower priority, so guests never wait behind a 50 MB RAW. Many
jobs are in flight at once (``cloud.workers``, 16): a job is mostly round trips on a 150 ms
link, so only many at once keep the link busy; originals go one at a time, and only when no
proxy job waits (``SyncQueue.claim`` has the order).

The cloud gets a proxy sized to the link (``cloudproxy``): the local 2048 px proxy, or a
smaller or lighter JPEG made from it so that the proxies offered fit in 70% of what the link
carries (``LinkMeter``, fed by every PUT and the probe) at the rate photos are shot, never so
small that the smallest face the local index searches drops under Rekognition's 40 px.

Exactly once, step by step (each safe to run twice):
- the cloud proxy's long edge, quality and SHA-256 are recorded for the photo before its
  upload, and its file kept until the photo is indexed; a retry sends those same bytes (they
  are remade, identically, only if the file is gone), whatever the link measures by then;
- S3 keys hold the content hash; an object already there whole is not sent again;
- a ledger row ("calling") is committed before IndexFaces and settled in the same transaction
  that stores the FaceIds and marks the job done. A crash in between repeats the call at most
  once, with the same bytes and ExternalImageId, which Rekognition does not store twice; the
  ledger counts both calls, as AWS bills both.
Errors: transient -> retried with capped exponential backoff and jitter, forever; permanent ->
dead letter with the reason (others keep flowing); quota reached -> parked, visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from PIL import Image
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from appliance import metrics
from appliance.bridge import cancel_and_wait
from appliance.proxy import ProxyError, make_proxy
from appliance.store.records import slug
from appliance.store.syncqueue import SyncJob, SyncQueue
from appliance.sync.cloudproxy import Choice, SizeModel, budget, choose, floor_edge, make_cloud_proxy
from appliance.sync.linkrate import LinkMeter
from appliance.sync.uplink import State, Uplink
from cloudsync.bandwidth import ByteBucket
from cloudsync.clients import make_clients
from cloudsync.errors import CloudError, NetworkError, PermanentError, ThrottledError, TransientError
from cloudsync.ratelimit import RateLimiter
from cloudsync.rekognition import FaceIndex, FaceMatch, S3Image
from cloudsync.s3 import MultipartState, PartRecord, S3Uploader, UploadResult

if TYPE_CHECKING:
    from appliance.bridge import Bridge
    from appliance.config import CloudSettings
    from appliance.health import Health
    from appliance.layout import Layout
    from appliance.store import Store

logger = logging.getLogger(__name__)

MAX_BACKOFF = 300.0
STALE_MULTIPART = dt.timedelta(days=1)
PROBE_INTERVAL = 3.0
IDLE_WAIT = 2.0
SHOOTING_WINDOW = 120.0  # photos received per second over the last two minutes
ORIGINALS_AT_ONCE = 1
_COUNTER_NAMES = {
    "quota": "quota_parked",
    "throttled": "throttled",
    "network_error": "network_errors",
    "transient_error": "transient_errors",
    "dead": "dead_lettered",
    "error": "internal_errors",
}


class QuotaReached(Exception):
    pass


def backoff(attempts: int, *, cap: float = MAX_BACKOFF) -> float:
    """Capped exponential with full jitter (attempts counts from 1)."""
    return random.uniform(0.5, 1.0) * min(cap, 2.0 ** min(attempts, 12))  # noqa: S311 - jitter, not crypto


def _jpeg_size(path: Path) -> tuple[int, int]:
    """(bytes, long edge) of a JPEG, from its headers."""
    with Image.open(path) as image:
        return path.stat().st_size, max(image.size)


def _sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class _Journal:
    """cloudsync's blocking Journal, backed by the store through the Bridge (worker threads)."""

    def __init__(self, queue: SyncQueue, bridge: Bridge) -> None:
        self.queue = queue
        self.bridge = bridge

    def load(self, key: str) -> MultipartState | None:
        row = self.bridge.call(self.queue.journal_load, key)
        if row is None:
            return None
        upload_id, part_size, parts = row
        return MultipartState(
            upload_id,
            part_size,
            {int(n): PartRecord(int(n), p["etag"], p["checksum"]) for n, p in parts.items()},
        )

    def save(self, key: str, state: MultipartState) -> None:
        parts = {str(n): {"etag": p.etag, "checksum": p.checksum} for n, p in state.parts.items()}
        self.bridge.call(self.queue.journal_save, key, state.upload_id, state.part_size, parts)

    def clear(self, key: str) -> None:
        self.bridge.call(self.queue.journal_clear, key)


class SyncService:
    def __init__(
        self,
        settings: CloudSettings,
        store: Store,
        layout: Layout,
        bridge: Bridge,
        health: Health | None = None,
        *,
        min_face_px: int = 60,
    ) -> None:
        """``min_face_px``: the smallest face the local index searches (``faces.min_face_px``),
        which bounds how small the cloud proxy may be."""
        self.settings = settings
        self.min_face_px = min_face_px
        self.meter = LinkMeter()
        self.size_model = SizeModel()
        self._shooting: tuple[float, float] = (-1e9, 0.0)  # (when measured, photos per second)
        self._originals = 0  # original jobs claimed and not finished
        self._making = asyncio.Semaphore(1)  # one cloud proxy encoded at a time (~40 ms; memory)
        # Local proxies the sync makes before the face index does: a decoded original is tens of
        # MB, and cloud.workers (16) jobs decoding at once took the box past 700 MB in bench-sync.
        self._decoding = asyncio.Semaphore(2)
        self.last_choice: dict[str, Any] = {}
        self.health = health
        self.store = store
        self.layout = layout
        self.bridge = bridge
        self.queue = SyncQueue(store)
        self.uplink = Uplink()
        self.enabled = settings.bucket is not None
        self.paused = layout.sync_paused.exists()
        self.stats: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._collections: set[str] = set()
        self._collection_locks: dict[str, asyncio.Lock] = {}
        self._indexing: Counter[str] = Counter()
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __aenter__(self) -> Self:
        released = await self.queue.release_leases()
        if released:
            logger.warning("%d sync jobs were in flight when the box stopped; they run again", released)
        if self.paused:
            logger.warning("cloud sync is paused by the operator (shutterbox sync resume)")
        if not self.enabled:
            logger.info("cloud sync off (no cloud.bucket configured)")
            return self
        s = self.settings
        s3, rekognition, probe = make_clients(
            region=s.region,
            s3_endpoint_url=s.s3_endpoint_url,
            rekognition_endpoint_url=s.rekognition_endpoint_url,
            access_key_id=s.access_key_id,
            secret_access_key=s.secret_access_key.get_secret_value() if s.secret_access_key else None,
            max_connections=s.workers + 2,
        )
        self.bandwidth = ByteBucket(s.upload_mbit * 125_000 if s.upload_mbit else None)
        assert s.bucket is not None
        self.uploader = S3Uploader(
            s3,
            s.bucket,
            multipart_threshold=s.multipart_threshold_mb << 20,
            part_size=s.part_size_mb << 20,
            pace=self.bandwidth.take,
            on_transfer=self._transferred,
        )
        self.rekognition = FaceIndex(
            rekognition,
            RateLimiter(s.rekognition_rate),
            observe=lambda operation, result: metrics.REKOGNITION_CALLS.labels(operation, result).inc(),
        )
        self.journal = _Journal(self.queue, self.bridge)
        self.probe_uploader = S3Uploader(probe, s.bucket)
        self.store.listeners.append(self._wake.set)
        self._tasks = [asyncio.create_task(self._worker(i), name=f"sync-{i}") for i in range(s.workers)]
        self._tasks.append(asyncio.create_task(self._probe(), name="sync-probe"))
        self._tasks.append(asyncio.create_task(self._sweep_multipart(), name="sync-multipart-sweep"))
        logger.info("cloud sync to s3://%s/%s with %d workers", s.bucket, s.prefix, s.workers)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await cancel_and_wait(self._tasks)
        self.store.unlisten(self._wake.set)

    # --- workers

    async def _worker(self, number: int) -> None:
        while True:
            await self.uplink.wait_usable()
            if self.paused:
                await asyncio.sleep(1.0)
                continue
            originals = self._originals < ORIGINALS_AT_ONCE
            if originals:
                self._originals += 1  # reserved before the await: two workers cannot both take one
            job: SyncJob | None = None
            try:
                job = await self.queue.claim(originals=originals)
            except Exception:
                logger.exception("sync worker %d could not claim a job", number)
            finally:
                if originals and (job is None or job.kind != "original"):
                    self._originals -= 1
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_WAIT):  # not wait_for: see health.every
                        await self._wake.wait()
                continue
            try:
                if self.paused:  # paused while we were claiming: hand the job back untouched
                    await self.queue.retry_later(job.id, 0.0, "sync was paused")
                    continue
                self._active += 1  # no await between the check above and this line
                self._idle.clear()
                try:
                    await self._run(job)
                finally:
                    self._active -= 1
                    if self._active == 0:
                        self._idle.set()
            finally:
                if job.kind == "original":
                    self._originals -= 1

    @contextlib.asynccontextmanager
    async def paused_for(self, reason: str) -> AsyncIterator[None]:
        """No job runs inside this block (jobs in flight finish first)."""
        logger.info("sync paused: %s", reason)
        was, self.paused = self.paused, True
        try:
            await self._idle.wait()
            yield
        finally:
            self.paused = was or self.layout.sync_paused.exists()  # the operator may have acted meanwhile

    async def set_paused(self, paused: bool) -> None:
        """The operator's pause (kept across restarts): jobs in flight finish, no new one starts."""
        marker = self.layout.sync_paused
        if paused:
            await asyncio.to_thread(marker.write_text, "paused by the operator\n", encoding="utf-8")
        else:
            await asyncio.to_thread(marker.unlink, missing_ok=True)
        if paused != self.paused:
            logger.warning("cloud sync %s by the operator", "paused" if paused else "resumed")
        self.paused = paused
        self._wake.set()

    async def purge_cloud(self, event: str) -> dict[str, int | bool]:
        """Delete the event's S3 prefix and Rekognition collection (call inside paused_for)."""
        if not self.enabled:
            return {"s3_objects_deleted": 0, "collection_deleted": False}
        deleted = await self._cloud(self.uploader.delete_prefix, f"{self.settings.prefix}/{event}/")
        dropped = await self._cloud(self.rekognition.delete_collection, event)
        self._collections.discard(event)
        return {"s3_objects_deleted": deleted, "collection_deleted": dropped}

    async def _run(self, job: SyncJob) -> None:
        result = "done"
        try:
            if job.kind == "proxy":
                await self._proxy_job(job)
            else:
                await self._original_job(job)
            self.uplink.ok()
        except QuotaReached:
            result = "quota"
            await self.queue.block(job.id, "the event's index quota is reached")
        except ThrottledError as exc:
            result = "throttled"
            self.uplink.trouble()
            await self.queue.retry_later(job.id, backoff(1, cap=10.0), str(exc))
        except NetworkError as exc:
            result = "network_error"
            self.uplink.failed()
            await self.queue.retry_later(job.id, backoff(job.attempts, cap=30.0), str(exc))
        except TransientError as exc:
            result = "transient_error"
            self.uplink.trouble()
            await self.queue.retry_later(job.id, backoff(job.attempts), str(exc))
        except (PermanentError, ProxyError) as exc:
            result = "dead"
            logger.warning("photo %d %s job dead-lettered: %s", job.photo_id, job.kind, exc)
            await self.queue.dead(job.id, str(exc))
        except Exception as exc:
            result = "error"
            logger.exception("photo %d %s job failed unexpectedly", job.photo_id, job.kind)
            await self.queue.retry_later(job.id, backoff(job.attempts), f"internal error: {exc!r}")
        self.stats[_COUNTER_NAMES.get(result, f"{job.kind}_done")] += 1
        metrics.sync_job(job.kind, result)

    async def _cloud(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """A blocking cloudsync call on a thread, with a few quick in-job retries of transient
        errors (the durable backoff in the queue takes over after that)."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(3),
            wait=wait_random_exponential(multiplier=0.5, max=5),
            reraise=True,
        ):
            with attempt:
                return await asyncio.to_thread(fn, *args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    def _key(self, job: SyncJob, name: str) -> str:
        return f"{self.settings.prefix}/{job.event}/{job.function}/{slug(job.camera, 40)}/{name}"

    async def _proxy_job(self, job: SyncJob) -> None:
        path = Path(job.proxy_path) if job.proxy_path else None
        proxy_sha = job.proxy_sha256
        if path is None or proxy_sha is None or not path.exists():
            dest = self.layout.proxies / job.event / f"{job.sha256}.jpg"
            async with self._decoding:
                proxy = await asyncio.to_thread(
                    make_proxy, Path(job.stored_path), dest, long_edge=self.settings.proxy_long_edge
                )
            await self.queue.set_proxy(job.photo_id, str(proxy.path), proxy.sha256)
            path, proxy_sha = proxy.path, proxy.sha256
        local_path = path
        path, proxy_sha, first = await self._cloud_proxy(job, path, proxy_sha)
        key, tried = self._key(job, f"proxy/{job.sha256}.jpg"), False

        def upload() -> UploadResult:
            # The job's first PUT of bytes chosen just now: nothing can be at the key yet. Any
            # later try (in this job too: a PUT whose answer was lost may have landed) checks.
            nonlocal tried
            check_first, tried = tried or not (first and job.attempts <= 1), True
            return self.uploader.upload(key, path, proxy_sha, self.journal, check_first=check_first)

        sent = await self._cloud(upload)
        if not sent.already_there:
            metrics.uploaded(sent.bytes_sent)
        if not self.settings.index_faces:
            await self.queue.done(job.id)
            await self._forget_cloud_proxy(path, local_path)
            return
        if job.index_quota is not None:
            used = await self.queue.indexed_count(job.event) + self._indexing[job.event]
            if used >= job.index_quota:
                raise QuotaReached
        self._indexing[job.event] += 1
        try:
            await self._index(job, path, proxy_sha)
        finally:
            self._indexing[job.event] -= 1
        await self._forget_cloud_proxy(path, local_path)

    # --- the cloud proxy sized to the link

    async def _cloud_proxy(self, job: SyncJob, local: Path, local_sha: str) -> tuple[Path, str, bool]:
        """(path, SHA-256, chosen now) of the photo's cloud proxy: the one recorded for it, or
        one chosen now for the link and recorded before anything is uploaded."""
        local_bytes, local_edge = await asyncio.to_thread(_jpeg_size, local)
        first = (
            job.cloud_proxy_sha256 is None or job.cloud_proxy_edge is None or job.cloud_proxy_quality is None
        )
        if first:
            choice = await self._choose(job, local_bytes, local_edge)
        else:
            assert job.cloud_proxy_edge is not None
            assert job.cloud_proxy_quality is not None
            choice = Choice(job.cloud_proxy_edge, job.cloud_proxy_quality)
        if choice.is_local(local_edge):
            path, sha = local, local_sha
        else:
            path = (
                self.layout.proxies
                / job.event
                / "cloud"
                / f"{job.sha256}-{choice.long_edge}q{choice.quality}.jpg"
            )
            if not first and path.exists():
                sha = await asyncio.to_thread(_sha256_file, path)
            else:
                async with self._making:
                    sha, size = await asyncio.to_thread(make_cloud_proxy, local, path, choice)
                if first:
                    self.size_model.learn(self.size_model.estimate(local_bytes, local_edge, choice), size)
        if first or sha != job.cloud_proxy_sha256:
            if not first:
                logger.warning(
                    "photo %d: its cloud proxy made again is not the recorded one (%s, not %s); recording it",
                    job.photo_id,
                    sha[:12],
                    (job.cloud_proxy_sha256 or "")[:12],
                )
            await self.queue.set_cloud_proxy(job.photo_id, choice.long_edge, choice.quality, sha)
        return path, sha, first

    async def _choose(self, job: SyncJob, local_bytes: int, local_edge: int) -> Choice:
        done, smallest = await self.queue.smallest_face(job.photo_id)
        face = smallest if done and smallest is not None else self.min_face_px
        floor = floor_edge(local_edge, face)
        link = self.link_rate()
        shooting = await self.shooting_rate()
        allowed = budget(link, shooting)
        choice = choose(
            allowed,
            local_bytes=local_bytes,
            local_edge=local_edge,
            max_edge=self.settings.proxy_long_edge,
            floor=floor,
            model=self.size_model,
        )
        self.last_choice = {
            "long_edge": choice.long_edge,
            "quality": choice.quality,
            "floor": floor,
            "budget_bytes": None if allowed is None else round(allowed),
        }
        return choice

    def link_rate(self) -> float | None:
        """Bytes per second the link carries for the sync: measured, never above the box's own
        cap (``cloud.upload_mbit``, also the guess before anything was measured)."""
        cap = self.settings.upload_mbit * 125_000 if self.settings.upload_mbit else None
        measured = self.meter.rate()
        if measured is None:
            return cap
        return measured if cap is None else min(measured, cap)

    async def shooting_rate(self) -> float:
        """Searchable photos received per second over the last minutes (re-read every 2 s)."""
        now = time.monotonic()
        at, rate = self._shooting
        if now - at > 2.0:
            rate = await self.queue.shooting_rate(SHOOTING_WINDOW)
            self._shooting = (now, rate)
        return rate

    def _transferred(self, nbytes: int, started: float, ended: float, waits: int) -> None:
        self.meter.transfer(nbytes, started, ended, waits=waits)

    async def _forget_cloud_proxy(self, path: Path, local: Path) -> None:
        """The photo is indexed: its cloud proxy (when not the local one) is not needed again."""
        if path != local:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def _index(self, job: SyncJob, path: Path, proxy_sha: str) -> None:
        if job.event not in self._collections:
            # one CreateCollection per event, not one per worker that meets it first
            async with self._collection_locks.setdefault(job.event, asyncio.Lock()):
                if job.event not in self._collections:
                    await self._cloud(self.rekognition.ensure_collection, job.event)
                    self._collections.add(job.event)
        if self.settings.index_from_s3:
            assert self.settings.bucket is not None
            image: bytes | S3Image = S3Image(self.settings.bucket, self._key(job, f"proxy/{job.sha256}.jpg"))
        else:
            image = await asyncio.to_thread(path.read_bytes)
        key = f"{job.event}:{job.photo_id}:{proxy_sha}"
        ledger_id = await self.queue.ledger_begin(job.event, "IndexFaces", key, job.photo_id)
        started = time.monotonic()
        try:
            result = await asyncio.to_thread(
                self.rekognition.index,
                job.event,
                image,
                str(job.photo_id),
                max_faces=self.settings.max_faces,
                quality=self.settings.quality_filter,
            )
        except CloudError as exc:
            await self.queue.ledger_fail(ledger_id, str(exc))
            raise
        if isinstance(image, bytes):  # the bytes went up as base64 in the request
            self.meter.transfer(len(image) * 4 // 3, started, time.monotonic())
        await self.queue.indexed(job.id, job.photo_id, list(result.face_ids), ledger_id)
        received = dt.datetime.fromisoformat(job.received_at)
        metrics.SHUTTER_TO_SEARCHABLE.labels("cloud").observe(
            (dt.datetime.now(dt.UTC) - received).total_seconds()
        )

    async def _original_job(self, job: SyncJob) -> None:
        ext = Path(job.original_name).suffix.lower()
        ext = ext if ext[1:].isalnum() and len(ext) <= 9 else ".bin"
        key = self._key(job, f"{job.sha256}{ext}")
        sent = await self._cloud(self.uploader.upload, key, Path(job.stored_path), job.sha256, self.journal)
        if not sent.already_there:
            metrics.uploaded(sent.bytes_sent)
        await self.queue.done(job.id)

    async def _probe(self) -> None:
        """A cheap single-attempt HEAD every few seconds: during a blackout requests just hang,
        so the workers' own failures come late; the probe says "offline" within seconds and
        "back" within seconds."""
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            if self.health is not None:
                self.health.beat("cloud-monitor")
            started = time.monotonic()
            try:
                await asyncio.to_thread(self.probe_uploader.checksum_of, f"{self.settings.prefix}/.probe")
                self.meter.rtt(time.monotonic() - started)
            except NetworkError:
                self.meter.outage(started, time.monotonic())
                self.uplink.failed()
                continue
            except CloudError:
                pass  # an answer, even an error, means the link works
            if self.uplink.state is State.OFFLINE or self.uplink.failures:
                self.uplink.ok()

    async def _sweep_multipart(self) -> None:
        """Abort multipart uploads no journal knows and older than a day (a box replaced mid-event,
        a purged photo): S3 bills their parts until they are aborted."""
        while True:
            try:
                keep = await self.queue.journal_upload_ids()
                aborted = await asyncio.to_thread(
                    self.uploader.abort_stale, f"{self.settings.prefix}/", keep, STALE_MULTIPART
                )
                if aborted:
                    logger.info("aborted %d stale multipart uploads", aborted)
            except CloudError as exc:
                logger.info("stale multipart sweep skipped: %s", exc)
            await asyncio.sleep(STALE_MULTIPART.total_seconds())

    # --- operator

    async def search_faces(self, event: str, selfie_jpeg: bytes, *, wait: float) -> list[FaceMatch] | None:
        """Search the event's Rekognition collection (the guests' lane of the rate limiter).
        None when the cloud cannot answer now (sync off, uplink offline, no collection yet, no
        face Rekognition accepts, an error or a slow answer): the caller searches locally."""
        if not self.enabled or not self.settings.index_faces or self.uplink.state is State.OFFLINE:
            return None
        try:
            async with asyncio.timeout(wait):
                return await asyncio.to_thread(
                    self.rekognition.search, event, selfie_jpeg, threshold=self.settings.search_similarity
                )
        except TimeoutError:
            self.uplink.trouble()
            logger.warning("cloud face search for %s took over %.1f s; answered locally", event, wait)
        except NetworkError as exc:
            self.uplink.failed()
            logger.warning("cloud face search for %s failed (%s); answered locally", event, exc)
        except CloudError as exc:
            logger.info("cloud face search for %s not possible (%s); answered locally", event, exc)
        return None

    async def status(self, reader: Store | None = None) -> dict[str, Any]:
        """``reader``: a read-only Store to count from (see FaceService.status)."""
        return {
            "enabled": self.enabled,
            "bucket": self.settings.bucket,
            "uplink": self.uplink.state.value,
            "uplink_since": self.uplink.since,
            "paused": self.paused,
            "jobs": await (SyncQueue(reader) if reader is not None else self.queue).counts(),
            "counters": dict(self.stats),
            "link": self._link_status(),
        }

    def _link_status(self) -> dict[str, Any]:
        measured = self.meter.rate() if self.enabled else None
        return {
            "measured_mbit": None if measured is None else round(measured * 8 / 1e6, 2),
            "base_rtt_ms": round(self.meter.base_rtt() * 1000) if self.enabled else None,
            "shooting_per_s": round(self._shooting[1], 2),
            "cloud_proxy": self.last_choice,
        }
