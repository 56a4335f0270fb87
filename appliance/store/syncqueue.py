"""The cloud-sync half of the queue: jobs claimed with a lease and an attempt count, the
multipart journal, the usage ledger and the faces Rekognition stored.

Shares the Store's connection and its single-writer ``transaction()``; runs on the asyncio
thread. Every step is safe to run twice: a job whose lease expired (the box died mid-job) is
claimed again and redone from what was durably recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance.errors import NotFoundError
from appliance.store.records import utcnow

if TYPE_CHECKING:
    from appliance.store.store import Store

LEASE_SECONDS = 300.0
FRESH_SECONDS = 15.0  # a proxy job this young is "fresh" (newest first); older ones are the backlog
PROXY_HOLDS_ORIGINALS_S = 60.0  # a proxy job due within this holds the originals back


@dataclass(frozen=True, slots=True)
class SyncJob:
    id: int
    kind: str  # "proxy": make, upload and index the searchable proxy; "original": upload the file
    attempts: int
    photo_id: int
    event: str
    function: str
    camera: str
    sha256: str
    stored_path: str
    original_name: str
    received_at: str
    proxy_path: str | None
    proxy_sha256: str | None
    index_quota: int | None
    cloud_proxy_edge: int | None = None  # the cloud proxy chosen for this photo (migration 8)
    cloud_proxy_quality: int | None = None
    cloud_proxy_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    job_id: int
    photo_id: int
    kind: str
    event: str
    original_name: str
    attempts: int
    reason: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "photo_id": self.photo_id,
            "kind": self.kind,
            "event": self.event,
            "original_name": self.original_name,
            "attempts": self.attempts,
            "reason": self.reason,
            "updated_at": self.updated_at,
        }


_JOB_SELECT = """
    SELECT j.id, j.kind, j.attempts, p.id, p.event, p.function, p.camera, p.sha256, p.stored_path,
           p.original_name, p.received_at, p.proxy_path, p.proxy_sha256, e.index_quota,
           p.cloud_proxy_edge, p.cloud_proxy_quality, p.cloud_proxy_sha256
    FROM sync_jobs j JOIN photos p ON p.id = j.photo_id JOIN events e ON e.code = p.event
"""


class SyncQueue:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def claim(
        self,
        now: float | None = None,
        lease: float = LEASE_SECONDS,
        *,
        originals: bool = True,
        fresh_seconds: float = FRESH_SECONDS,
    ) -> SyncJob | None:
        """The most urgent ready job, leased to the caller, in this order:

        1. fresh proxies (photos received in the last ``fresh_seconds``), newest first: the frame
           just taken is searchable within seconds, whatever backlog there is;
        2. the backlog of older proxies (a blackout's, a burst's), oldest first: it drains in
           the order it was shot, so the photo waiting longest is never passed over again and
           again by newer ones (newest first throughout would leave the first frames of a
           blackout to the very end: a 30 s blackout plus the whole drain);
        3. originals, oldest first, only when ``originals`` and no proxy job waits (in flight,
           ready, or in a backoff ending within a minute: a blackout's): originals never take the
           link from a searchable proxy, and a proxy failing for hours does not hold them all.

        A fresh photo the link cannot take within ``fresh_seconds`` joins the backlog's end, so
        every photo is either served soon or served in order.
        """
        now = time.time() if now is None else now
        fresh_since = (
            dt.datetime.fromtimestamp(now, dt.UTC) - dt.timedelta(seconds=fresh_seconds)
        ).isoformat(timespec="milliseconds")
        ready = (
            "((j.state = 'pending' AND j.next_attempt_at <= ?) OR (j.state = 'leased' AND j.lease_until < ?))"
        )
        proxies = (
            "SELECT j.id FROM sync_jobs j JOIN photos p ON p.id = j.photo_id"  # noqa: S608 - constants
            f" WHERE {ready} AND j.priority = 0"
        )
        queries = [
            (f"{proxies} AND p.received_at >= ? ORDER BY j.id DESC LIMIT 1", (now, now, fresh_since)),
            (f"{proxies} ORDER BY j.id LIMIT 1", (now, now)),
        ]
        if originals:
            queries.append(
                (
                    f"SELECT j.id FROM sync_jobs j WHERE {ready} AND j.priority > 0 AND NOT EXISTS"  # noqa: S608
                    " (SELECT 1 FROM sync_jobs w WHERE w.priority = 0 AND (w.state = 'leased'"
                    " OR (w.state = 'pending' AND w.next_attempt_at <= ?)))"
                    " ORDER BY j.priority, j.id LIMIT 1",
                    (now, now, now + PROXY_HOLDS_ORIGINALS_S),
                )
            )
        async with self.store.transaction() as db:
            row = None
            for sql, args in queries:
                async with db.execute(sql, args) as cur:
                    row = await cur.fetchone()
                if row is not None:
                    break
            if row is None:
                return None
            await db.execute(
                "UPDATE sync_jobs SET state = 'leased', lease_until = ?, attempts = attempts + 1,"
                " updated_at = ? WHERE id = ?",
                (now + lease, utcnow(), row[0]),
            )
            async with db.execute(_JOB_SELECT + " WHERE j.id = ?", (row[0],)) as cur:
                full = await cur.fetchone()
        assert full is not None
        return SyncJob(*full)

    async def release_leases(self) -> int:
        """At start-up every lease belongs to a process that died: make those jobs ready now
        instead of after the lease runs out."""
        async with self.store.transaction() as db:
            cur = await db.execute(
                "UPDATE sync_jobs SET state = 'pending', lease_until = NULL, next_attempt_at = 0"
                " WHERE state = 'leased'"
            )
            return int(cur.rowcount)

    async def done(self, job_id: int) -> None:
        await self._set(job_id, "done", None)

    async def retry_later(self, job_id: int, delay: float, reason: str) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE sync_jobs SET state = 'pending', next_attempt_at = ?, last_error = ?, updated_at = ?"
                " WHERE id = ?",
                (time.time() + delay, reason, utcnow(), job_id),
            )

    async def dead(self, job_id: int, reason: str) -> None:
        await self._set(job_id, "dead", reason)

    async def block(self, job_id: int, reason: str) -> None:
        """Parked until the operator acts (the event's index quota is reached)."""
        await self._set(job_id, "blocked", reason)

    async def _set(self, job_id: int, state: str, reason: str | None) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE sync_jobs SET state = ?, last_error = coalesce(?, last_error), lease_until = NULL,"
                " updated_at = ? WHERE id = ?",
                (state, reason, utcnow(), job_id),
            )

    async def set_proxy(self, photo_id: int, path: str, sha256: str) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE photos SET proxy_path = ?, proxy_sha256 = ? WHERE id = ?", (path, sha256, photo_id)
            )

    # --- the cloud proxy sized to the link

    async def set_cloud_proxy(self, photo_id: int, edge: int, quality: int, sha256: str) -> None:
        """Record the photo's cloud proxy before its upload; from then on it is the photo's
        (a retry, after a crash too, uploads and indexes these bytes whatever the link does)."""
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE photos SET cloud_proxy_edge = ?, cloud_proxy_quality = ?, cloud_proxy_sha256 = ?"
                " WHERE id = ?",
                (edge, quality, sha256, photo_id),
            )

    async def smallest_face(self, photo_id: int) -> tuple[bool, int | None]:
        """(whether the local index has done the photo, the short side of its smallest searchable
        face in local-proxy pixels, None when it found none)."""
        row = await self.store.fetch_one(
            "SELECT p.faces_state = 'done', (SELECT min(min(f.w, f.h)) FROM faces f"
            " WHERE f.photo_id = p.id AND f.embedding IS NOT NULL) FROM photos p WHERE p.id = ?",
            (photo_id,),
        )
        if row is None:
            return False, None
        return bool(row[0]), None if row[1] is None else int(row[1])

    async def shooting_rate(self, window: float, now: float | None = None) -> float:
        """Searchable photos received per second over the last ``window`` seconds: the photos
        after the first of them over the time since it (at least a second), so a shoot that
        began a few seconds ago counts at its own pace, and a shoot that stopped fades out."""
        now = time.time() if now is None else now
        since = dt.datetime.fromtimestamp(now - window, dt.UTC).isoformat(timespec="milliseconds")
        row = await self.store.fetch_one(
            "SELECT count(*), min(p.received_at) FROM photos p WHERE p.received_at >= ?"
            " AND EXISTS (SELECT 1 FROM sync_jobs j WHERE j.photo_id = p.id AND j.kind = 'proxy')",
            (since,),
        )
        if row is None or not row[0]:
            return 0.0
        first = dt.datetime.fromisoformat(row[1]).timestamp()
        return (int(row[0]) - 1) / max(1.0, now - first)

    # --- storage policy

    async def evictable(self, limit: int) -> list[tuple[int, str, str | None, str | None, int]]:
        """Originals safely in S3 (their upload job is done, checksum verified) still on the
        box, oldest first: (photo id, stored path, username, FTP path, size)."""
        rows = await self.store.fetch_all(
            "SELECT p.id, p.stored_path, p.username, p.ftp_path, p.size FROM photos p"
            " JOIN sync_jobs j ON j.photo_id = p.id AND j.kind = 'original' AND j.state = 'done'"
            " WHERE p.evicted_at IS NULL ORDER BY p.id LIMIT ?",
            (limit,),
        )
        return [(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in rows]

    async def mark_evicted(self, photo_ids: list[int]) -> None:
        """Committed before the files go: a crash in between leaves a file to delete again,
        never a row that claims a file the box does not have."""
        marks = ",".join("?" * len(photo_ids))
        async with self.store.transaction() as db:
            await db.execute(
                f"UPDATE photos SET evicted_at = ? WHERE evicted_at IS NULL AND id IN ({marks})",  # noqa: S608
                (utcnow(), *photo_ids),
            )

    async def evicted(self) -> dict[str, int]:
        row = await self.store.fetch_one(
            "SELECT count(*), coalesce(sum(size), 0) FROM photos WHERE evicted_at IS NOT NULL"
        )
        assert row is not None
        return {"evicted_photos": int(row[0]), "evicted_bytes": int(row[1])}

    async def evicted_paths(self) -> list[str]:
        return [
            r[0]
            for r in await self.store.fetch_all("SELECT stored_path FROM photos WHERE evicted_at IS NOT NULL")
        ]

    # --- quota

    async def indexed_count(self, event: str) -> int:
        row = await self.store.fetch_one(
            "SELECT count(*) FROM photos WHERE event = ? AND searchable_in_cloud_at IS NOT NULL", (event,)
        )
        return int(row[0]) if row else 0

    async def set_quota(self, event: str, quota: int | None) -> int:
        """Set an event's index quota; parked jobs are released. Returns how many."""
        await self.store.get_event(event)
        async with self.store.transaction() as db:
            await db.execute("UPDATE events SET index_quota = ? WHERE code = ?", (quota, event))
            cur = await db.execute(
                "UPDATE sync_jobs SET state = 'pending', next_attempt_at = 0, updated_at = ?"
                " WHERE state = 'blocked' AND photo_id IN (SELECT id FROM photos WHERE event = ?)",
                (utcnow(), event),
            )
            return int(cur.rowcount)

    # --- ledger: every billable call, written before the call and settled after it

    async def ledger_begin(self, event: str, operation: str, key: str, photo_id: int | None) -> int:
        async with self.store.transaction() as db:
            cur = await db.execute(
                "INSERT INTO usage_ledger (at, event, operation, idempotency_key, photo_id, outcome)"
                " VALUES (?, ?, ?, ?, ?, 'calling')",
                (utcnow(), event, operation, key, photo_id),
            )
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    async def ledger_fail(self, ledger_id: int, reason: str) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE usage_ledger SET outcome = ? WHERE id = ?", (f"error: {reason}", ledger_id)
            )

    async def indexed(self, job_id: int, photo_id: int, face_ids: list[str], ledger_id: int) -> None:
        """One transaction: the faces, the ledger's 'ok', the photo searchable, the job done."""
        async with self.store.transaction() as db:
            await db.executemany(
                "INSERT OR IGNORE INTO cloud_faces (photo_id, face_id) VALUES (?, ?)",
                [(photo_id, face) for face in face_ids],
            )
            await db.execute("UPDATE usage_ledger SET outcome = 'ok' WHERE id = ?", (ledger_id,))
            await db.execute(
                "UPDATE photos SET searchable_in_cloud_at = ?"
                " WHERE id = ? AND searchable_in_cloud_at IS NULL",
                (utcnow(), photo_id),
            )
            await db.execute(
                "UPDATE sync_jobs SET state = 'done', lease_until = NULL, updated_at = ? WHERE id = ?",
                (utcnow(), job_id),
            )

    async def ledger(self, event: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, at, event, operation, idempotency_key, photo_id, outcome FROM usage_ledger"
        rows = await self.store.fetch_all(
            sql + (" WHERE event = ?" if event else "") + " ORDER BY id", (event,) if event else ()
        )
        keys = ("id", "at", "event", "operation", "idempotency_key", "photo_id", "outcome")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # --- multipart journal (cloudsync.s3.Journal, made async; the worker bridges it)

    async def journal_load(self, key: str) -> tuple[str, int, dict[str, Any]] | None:
        row = await self.store.fetch_one(
            "SELECT upload_id, part_size, parts FROM multipart_uploads WHERE key = ?", (key,)
        )
        return None if row is None else (row[0], int(row[1]), json.loads(row[2]))

    async def journal_save(self, key: str, upload_id: str, part_size: int, parts: dict[str, Any]) -> None:
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO multipart_uploads (key, upload_id, part_size, parts, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET upload_id = excluded.upload_id,"
                " part_size = excluded.part_size, parts = excluded.parts, updated_at = excluded.updated_at",
                (key, upload_id, part_size, json.dumps(parts), utcnow()),
            )

    async def journal_clear(self, key: str) -> None:
        async with self.store.transaction() as db:
            await db.execute("DELETE FROM multipart_uploads WHERE key = ?", (key,))

    async def journal_upload_ids(self) -> set[str]:
        return {r[0] for r in await self.store.fetch_all("SELECT upload_id FROM multipart_uploads")}

    # --- operator

    async def counts(self) -> dict[str, int]:
        rows = await self.store.fetch_all("SELECT state, count(*) FROM sync_jobs GROUP BY state")
        return {r[0]: r[1] for r in rows}

    async def oldest_waiting(self) -> str | None:
        """received_at of the oldest photo with a job still to do (pending or in flight)."""
        row = await self.store.fetch_one(
            "SELECT min(p.received_at) FROM sync_jobs j JOIN photos p ON p.id = j.photo_id"
            " WHERE j.state IN ('pending', 'leased')"
        )
        return row[0] if row else None

    async def dead_letters(self) -> list[DeadLetter]:
        rows = await self.store.fetch_all(
            "SELECT j.id, j.photo_id, j.kind, p.event, p.original_name, j.attempts,"
            " coalesce(j.last_error, ''), j.updated_at FROM sync_jobs j JOIN photos p ON p.id = j.photo_id"
            " WHERE j.state = 'dead' ORDER BY j.id"
        )
        return [DeadLetter(*r) for r in rows]

    async def revive(self, job_id: int) -> None:
        """Operator: try a dead job again from scratch."""
        async with self.store.transaction() as db:
            cur = await db.execute(
                "UPDATE sync_jobs SET state = 'pending', attempts = 0, next_attempt_at = 0, updated_at = ?"
                " WHERE id = ? AND state = 'dead'",
                (utcnow(), job_id),
            )
            if cur.rowcount != 1:
                raise NotFoundError(f"no dead-lettered job {job_id}")

    async def discard(self, job_id: int) -> None:
        async with self.store.transaction() as db:
            cur = await db.execute(
                "UPDATE sync_jobs SET state = 'discarded', updated_at = ? WHERE id = ? AND state = 'dead'",
                (utcnow(), job_id),
            )
            if cur.rowcount != 1:
                raise NotFoundError(f"no dead-lettered job {job_id}")
