"""SyncService: trickles every frame to S3 and indexes its proxy in the event's Rekognition
collection, exactly once, over whatever the venue WiFi does.

Entered on the asyncio thread (``async with``); workers are asyncio tasks that run blocking
cloudsync calls in threads. Order per photo: the searchable proxy first (make it, upload it,
index it), originals after at lower priority, so guests never wait behind a 50 MB RAW.

Exactly once, step by step (each safe to run twice):
- the proxy's bytes are made once and kept; a retry sends those same bytes;
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
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from appliance import metrics
from appliance.bridge import cancel_and_wait
from appliance.proxy import ProxyError, make_proxy
from appliance.store.store import slug
from appliance.store.syncqueue import SyncJob, SyncQueue
from appliance.sync.uplink import State, Uplink
from cloudsync.bandwidth import ByteBucket
from cloudsync.clients import make_clients
from cloudsync.errors import CloudError, NetworkError, PermanentError, ThrottledError, TransientError
from cloudsync.ratelimit import RateLimiter
from cloudsync.rekognition import FaceIndex, FaceMatch, S3Image
from cloudsync.s3 import MultipartState, PartRecord, S3Uploader

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
    ) -> None:
        self.settings = settings
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
        )
        self.bandwidth = ByteBucket(s.upload_mbit * 125_000 if s.upload_mbit else None)
        assert s.bucket is not None
        self.uploader = S3Uploader(
            s3,
            s.bucket,
            multipart_threshold=s.multipart_threshold_mb << 20,
            part_size=s.part_size_mb << 20,
            pace=self.bandwidth.take,
        )
        self.faces = FaceIndex(
            rekognition,
            RateLimiter(s.rekognition_tps),
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
            try:
                job = await self.queue.claim()
            except Exception:
                logger.exception("sync worker %d could not claim a job", number)
                await asyncio.sleep(5.0)
                continue
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_WAIT):  # not wait_for: see health.every
                        await self._wake.wait()
                continue
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
        dropped = await self._cloud(self.faces.delete_collection, event)
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
            proxy = await asyncio.to_thread(
                make_proxy, Path(job.stored_path), dest, long_edge=self.settings.proxy_long_edge
            )
            await self.queue.set_proxy(job.photo_id, str(proxy.path), proxy.sha256)
            path, proxy_sha = proxy.path, proxy.sha256
        sent = await self._cloud(
            self.uploader.upload, self._key(job, f"proxy/{job.sha256}.jpg"), path, proxy_sha, self.journal
        )
        if not sent.already_there:
            metrics.uploaded(sent.bytes_sent)
        if not self.settings.index_faces:
            await self.queue.done(job.id)
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

    async def _index(self, job: SyncJob, path: Path, proxy_sha: str) -> None:
        if job.event not in self._collections:
            # one CreateCollection per event, not one per worker that meets it first
            async with self._collection_locks.setdefault(job.event, asyncio.Lock()):
                if job.event not in self._collections:
                    await self._cloud(self.faces.ensure_collection, job.event)
                    self._collections.add(job.event)
        if self.settings.index_from_s3:
            assert self.settings.bucket is not None
            image: bytes | S3Image = S3Image(self.settings.bucket, self._key(job, f"proxy/{job.sha256}.jpg"))
        else:
            image = await asyncio.to_thread(path.read_bytes)
        key = f"{job.event}:{job.photo_id}:{proxy_sha}"
        ledger_id = await self.queue.ledger_begin(job.event, "IndexFaces", key, job.photo_id)
        try:
            result = await asyncio.to_thread(
                self.faces.index,
                job.event,
                image,
                str(job.photo_id),
                max_faces=self.settings.max_faces,
                quality=self.settings.quality_filter,
            )
        except CloudError as exc:
            await self.queue.ledger_fail(ledger_id, str(exc))
            raise
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
            try:
                await asyncio.to_thread(self.probe_uploader.checksum_of, f"{self.settings.prefix}/.probe")
            except NetworkError:
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
                    self.faces.search, event, selfie_jpeg, threshold=self.settings.search_similarity
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
        }
