"""The Store: every read and write of ``shutterbox.db``.

Runs on the asyncio thread. One writer: every write goes through ``transaction()`` (an asyncio
lock + ``BEGIN IMMEDIATE``). WAL with ``synchronous=FULL``: a frame acknowledged with 226 is a
committed row, and a committed row survives a power cut. ``add_photo`` group-commits: frames
that arrive while a commit is in flight share the next one, so eight cameras cost one fsync.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import astuple, fields
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiosqlite

from appliance import credentials
from appliance.errors import NotFoundError, StoreError
from appliance.store.gallery import GalleryQueries
from appliance.store.records import (
    MAX_BATCH,
    ORIGINALS_POLICIES,
    PHOTO_COLUMNS,
    Event,
    LandedFrame,
    Photo,
    Rejection,
    UploadKey,
    photo_from,
    slug,
    utcnow,
)
from appliance.store.schema import MIGRATIONS
from appliance.validation import nearest

logger = logging.getLogger(__name__)

DB_NAME = "shutterbox.db"
_FRAME_COLUMNS = [f.name for f in fields(LandedFrame)]
_LABEL_CHARS = re.compile(r"[a-z0-9]")  # what a slug keeps: a name without one is empty


class FunctionError(StoreError):
    """A person named a function an event has not declared, or none where the event has several,
    or an empty name (no letter or digit). The admin API answers 422: the request, not the box's
    state, is wrong. (It belongs in ``appliance.errors``'s tree under StoreError.)"""


def function_names(names: Iterable[str]) -> list[str]:
    """Function names a person declares, as they type them; FunctionError for an empty one (no
    letter a-z or digit: its slug would be a made-up ``x``)."""
    names = list(names)
    if any(not _LABEL_CHARS.search(name.lower()) for name in names):
        raise FunctionError("function name is empty: give each function a name with letters a-z or digits")
    return names


class Store(GalleryQueries):
    """Open with ``async with Store(path) as store``."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._db: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._pending: list[tuple[LandedFrame, asyncio.Future[tuple[Photo, bool]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[], None]] = []  # told (on the loop) when photos were queued

    def unlisten(self, callback: Callable[[], None]) -> None:
        """Stop telling ``callback`` about queued photos (a service shutting down)."""
        if callback in self.listeners:
            self.listeners.remove(callback)

    async def __aenter__(self) -> Self:
        if self.readonly:
            uri = f"file:{self.path}?mode=ro"
            self._db = await aiosqlite.connect(uri, uri=True)
        else:
            self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        await self._db.execute("PRAGMA busy_timeout = 10000")
        await self._db.execute("PRAGMA foreign_keys = ON")
        if not self.readonly:
            await self._db.execute("PRAGMA journal_mode = WAL")
            await self._db.execute("PRAGMA synchronous = FULL")
            await self._migrate()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with self.transaction() as db:
                for statement in _statements(script):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")
            logger.info("database migrated to version %d", number)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        if self.readonly:
            raise StoreError("store opened read-only")
        async with self._write_lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    # --- the read surface the store's companions (FaceStore, SyncQueue, pairs) share; writes go
    # through ``transaction()``, which serialises them on the one writer connection

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Every row of one read (a snapshot of the last commit on a read-only store)."""
        async with self.db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        """The first row of one read, or None."""
        async with self.db.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    # --- events and functions

    async def create_event(
        self,
        name: str,
        *,
        code: str | None = None,
        demo: bool = False,
        functions: Iterable[str] = ("main",),
        originals_policy: str = "all",
    ) -> Event:
        if originals_policy not in ORIGINALS_POLICIES:
            raise StoreError(f"originals policy must be one of {', '.join(ORIGINALS_POLICIES)}")
        for _ in range(20):
            candidate = code or credentials.new_event_code()
            try:
                async with self.transaction() as db:
                    await db.execute(
                        "INSERT INTO events (code, name, created_at, demo, originals_policy)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (candidate, name, utcnow(), int(demo), originals_policy),
                    )
                    for function in dict.fromkeys(slug(f) for f in functions):  # "Party", "party": one
                        await db.execute(
                            "INSERT INTO functions (event, name) VALUES (?, ?)", (candidate, function)
                        )
            except sqlite3.IntegrityError as exc:
                if code is not None:
                    raise StoreError(f"event {code} already exists") from exc
                continue
            return await self.get_event(candidate)
        raise StoreError("could not find a free event code")

    async def add_function(self, event: str, name: str) -> Event:
        """Declare a function of ``event`` (declaring it again changes nothing). Takes any name
        (the cloud backend's push); a person's goes through ``function_names`` first."""
        await self.get_event(event)
        async with self.transaction() as db:
            await db.execute(
                "INSERT OR IGNORE INTO functions (event, name) VALUES (?, ?)", (event, slug(name))
            )
        return await self.get_event(event)

    async def key_function(self, event: str, name: str | None) -> str:
        """The function of ``event`` a person's new key is for: ``name`` as declared (compared as
        a slug, so ``Ceremony`` is ``ceremony``), or the event's only function when ``name`` is
        None. FunctionError in words otherwise: a typo creates nothing, it gets the event's
        functions and the nearest one."""
        ev = await self.get_event(event)
        listed = ", ".join(ev.functions)
        if name is None:
            if len(ev.functions) == 1:
                return ev.functions[0]
            if not ev.functions:
                raise FunctionError(
                    f"event {event} has no functions: add one with"
                    f" shutterbox event edit {event} --add-function NAME"
                )
            raise FunctionError(f"event {event} has functions {listed}: say which with --function")
        if not _LABEL_CHARS.search(name.lower()):
            raise FunctionError(f"function name is empty; the functions of event {event} are {listed}")
        wanted = slug(name)
        if wanted in ev.functions:
            return wanted
        text = f"event {event} has no function {name!r}; its functions are {listed}"
        if not ev.functions:
            text = f"event {event} has no function {name!r} (it has none yet)"
        close = nearest(wanted, ev.functions)
        raise FunctionError(
            text
            + (f". Did you mean {close}?" if close else ".")
            + f" To add a function: shutterbox event edit {event} --add-function NAME"
        )

    async def get_event(self, code: str) -> Event:
        row = await self.fetch_one("SELECT * FROM events WHERE code = ?", (code,))
        if row is None:
            raise NotFoundError(f"no event with code {code!r}")
        functions = await self.fetch_all("SELECT name FROM functions WHERE event = ? ORDER BY name", (code,))
        return Event(
            row["code"],
            row["name"],
            row["created_at"],
            bool(row["demo"]),
            tuple(r[0] for r in functions),
            row["originals_policy"],
            row["index_quota"],
            row["pin_hash"],
            row["host_key_hash"],
            row["moderation"],
            bool(row["face_search"]),
            row["event_date"],
            row["accent"],
            row["cover_photo_id"],
        )

    async def find_event(self, code: str) -> Event | None:
        try:
            return await self.get_event(code)
        except NotFoundError:
            return None

    async def rename_event(self, code: str, name: str) -> Event:
        await self.get_event(code)
        async with self.transaction() as db:
            await db.execute("UPDATE events SET name = ? WHERE code = ?", (name, code))
        return await self.get_event(code)

    async def set_originals_policy(self, code: str, policy: str) -> Event:
        """Which originals of new photos are uploaded (photos already queued keep their jobs)."""
        if policy not in ORIGINALS_POLICIES:
            raise StoreError(f"originals policy must be one of {', '.join(ORIGINALS_POLICIES)}")
        await self.get_event(code)
        async with self.transaction() as db:
            await db.execute("UPDATE events SET originals_policy = ? WHERE code = ?", (policy, code))
        return await self.get_event(code)

    async def set_guest_secret(self, code: str, column: str, value: str | None) -> Event:
        """Set or clear an event's PIN hash or host-link key hash."""
        if column not in ("pin_hash", "host_key_hash"):
            raise StoreError(f"not a guest secret: {column}")
        await self.get_event(code)
        async with self.transaction() as db:
            await db.execute(f"UPDATE events SET {column} = ? WHERE code = ?", (value, code))  # noqa: S608
        return await self.get_event(code)

    async def event_by_host_key(self, key_hash: str) -> Event | None:
        row = await self.fetch_one("SELECT code FROM events WHERE host_key_hash = ?", (key_hash,))
        return await self.get_event(row[0]) if row else None

    async def list_events(self) -> list[Event]:
        rows = await self.fetch_all("SELECT code FROM events ORDER BY created_at, code")
        return [await self.get_event(row[0]) for row in rows]

    async def purge_event(self, code: str) -> list[str]:
        """Delete every row of an event (photos, their jobs and faces, keys, rejections); return
        the files and folders the caller must remove. The usage ledger stays: it is the bill, and
        holds only ids."""
        await self.get_event(code)
        paths = [
            r[0] for r in await self.fetch_all("SELECT stored_path FROM photos WHERE event = ?", (code,))
        ]
        paths += [
            r[0]
            for r in await self.fetch_all(
                "SELECT proxy_path FROM photos WHERE event = ? AND proxy_path IS NOT NULL", (code,)
            )
        ]
        paths += [
            r[0]
            for r in await self.fetch_all(
                "SELECT quarantine_path FROM rejections WHERE event = ? AND quarantine_path IS NOT NULL",
                (code,),
            )
        ]
        users = [
            r[0] for r in await self.fetch_all("SELECT username FROM upload_keys WHERE event = ?", (code,))
        ]
        async with self.transaction() as db:
            await db.execute("DELETE FROM photos WHERE event = ?", (code,))
            await db.execute("DELETE FROM rejections WHERE event = ?", (code,))
            await db.execute("DELETE FROM upload_keys WHERE event = ?", (code,))
            await db.execute("DELETE FROM functions WHERE event = ?", (code,))
            await db.execute("DELETE FROM events WHERE code = ?", (code,))
        return paths + [f"jail:{u}" for u in users]

    # --- upload keys

    async def create_key(
        self,
        *,
        event: str,
        function: str,
        camera: str,
        secret_hash: str,
        username: str | None = None,
        declare_function: bool = False,
    ) -> UploadKey:
        """A key for ``event``'s ``function``. The function must be declared (StoreError), unless
        ``declare_function``: only the cloud backend's push, the source of truth, declares one
        this way; a person's key goes through ``key_function`` first."""
        ev = await self.get_event(event)
        function = slug(function)
        if function not in ev.functions:
            if not declare_function:
                raise FunctionError(f"event {event} has no function {function!r}")
            await self.add_function(event, function)
        base = username or f"{event}-{slug(camera, 12)}"
        async with self.transaction() as db:
            name = base
            suffix = 1
            while await self.fetch_one("SELECT 1 FROM upload_keys WHERE username = ?", (name,)):
                if username is not None:
                    raise StoreError(f"upload key {username} already exists")
                suffix += 1
                name = f"{base}{suffix}"
            await db.execute(
                "INSERT INTO upload_keys (username, event, function, camera, secret_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, event, function, camera, secret_hash, utcnow()),
            )
        return await self.get_key(name)

    async def get_key(self, username: str) -> UploadKey:
        row = await self.fetch_one("SELECT * FROM upload_keys WHERE username = ?", (username,))
        if row is None:
            raise NotFoundError(f"no upload key {username!r}")
        return UploadKey(**dict(row))

    async def find_key(self, username: str) -> UploadKey | None:
        try:
            return await self.get_key(username)
        except NotFoundError:
            return None

    async def list_keys(self, event: str | None = None) -> list[UploadKey]:
        if event is None:
            rows = await self.fetch_all("SELECT * FROM upload_keys ORDER BY created_at")
        else:
            rows = await self.fetch_all(
                "SELECT * FROM upload_keys WHERE event = ? ORDER BY created_at", (event,)
            )
        return [UploadKey(**dict(r)) for r in rows]

    async def revoke_key(self, username: str) -> UploadKey:
        key = await self.get_key(username)
        if key.revoked_at is None:
            async with self.transaction() as db:
                await db.execute(
                    "UPDATE upload_keys SET revoked_at = ? WHERE username = ?", (utcnow(), username)
                )
        return await self.get_key(username)

    async def set_key_secret(self, username: str, secret_hash: str) -> UploadKey:
        """A new secret for an existing, unrevoked key (a credential push that rotates it)."""
        key = await self.get_key(username)
        if key.revoked_at is not None:
            raise StoreError(f"upload key {username} is revoked; push a new key instead")
        async with self.transaction() as db:
            await db.execute(
                "UPDATE upload_keys SET secret_hash = ? WHERE username = ?", (secret_hash, username)
            )
        return await self.get_key(username)

    async def camera_stats(self, since: str) -> list[dict[str, Any]]:
        """Per upload key: frames in total and since ``since`` (ISO UTC), the last frame, and the
        rejected uploads with the latest reason."""
        rows = await self.fetch_all(
            "SELECT k.username, k.event, k.function, k.camera, k.revoked_at,"
            " (SELECT count(*) FROM photos p WHERE p.username = k.username) AS frames_total,"
            " (SELECT count(*) FROM photos p WHERE p.username = k.username AND p.received_at >= ?)"
            " AS frames_today,"
            " (SELECT max(received_at) FROM photos p WHERE p.username = k.username) AS last_frame_at,"
            " (SELECT count(*) FROM rejections r WHERE r.username = k.username"
            "  AND r.resumed_photo_id IS NULL) AS rejected,"
            " (SELECT at || char(31) || reason FROM rejections r WHERE r.username = k.username"
            "  AND r.resumed_photo_id IS NULL"
            "  ORDER BY r.id DESC LIMIT 1) AS last_rejection"
            " FROM upload_keys k ORDER BY k.event, k.created_at",
            (since,),
        )
        return [dict(r) for r in rows]

    # --- photos (the queue)

    async def add_photo(self, frame: LandedFrame) -> tuple[Photo, bool]:
        """Queue a landed frame; returns (photo, created). Same event + same content is one photo."""
        future: asyncio.Future[tuple[Photo, bool]] = asyncio.get_running_loop().create_future()
        self._pending.append((frame, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_pending())
        return await future

    async def _flush_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await self._insert_frames([frame for frame, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            for listener in self.listeners:
                listener()

    async def _insert_frames(self, frames: list[LandedFrame]) -> list[tuple[Photo, bool]]:
        """One statement per batch: a multi-row INSERT is its own atomic transaction (autocommit),
        so a whole batch costs one round trip to the database thread and one WAL fsync. Every
        thread hop costs milliseconds when eight camera sessions compete for the GIL."""
        results: list[tuple[Photo, bool]] = []
        for chunk_start in range(0, len(frames), MAX_BATCH):
            results += await self._insert_chunk(frames[chunk_start : chunk_start + MAX_BATCH])
        return results

    async def _insert_chunk(self, frames: list[LandedFrame]) -> list[tuple[Photo, bool]]:
        row = "(" + ", ".join("?" for _ in _FRAME_COLUMNS) + ")"
        sql = (
            f"INSERT INTO photos ({', '.join(_FRAME_COLUMNS)}) VALUES {', '.join(row for _ in frames)}"  # noqa: S608
            " ON CONFLICT (event, sha256) DO NOTHING RETURNING id, event, sha256"
        )
        params = [value for frame in frames for value in astuple(frame)]
        async with self._write_lock:
            inserted = await self.db.execute_fetchall(sql, params)
        new_ids = {(r[1], r[2]): r[0] for r in inserted}
        existing: dict[tuple[str, str], Photo] = {}
        conflicts = [f for f in frames if (f.event, f.sha256) not in new_ids]
        if conflicts:
            existing = await self._heal_duplicates(conflicts)
        results: list[tuple[Photo, bool]] = []
        first: dict[tuple[str, str], Photo] = {}
        for frame in frames:
            key = (frame.event, frame.sha256)
            if key in first:  # the same bytes twice in one batch: the second is a duplicate
                results.append((first[key], False))
            elif key in new_ids:
                first[key] = Photo(id=new_ids[key], state="queued", **_frame_fields(frame))
                results.append((first[key], True))
            else:
                results.append((existing[key], False))
        return results

    async def _heal_duplicates(self, frames: list[LandedFrame]) -> dict[tuple[str, str], Photo]:
        """Frames whose content is already a photo of the event: a retry, or a resend after a
        crash. A recovered (unattributed) photo takes the camera's attribution; a 'missing' one
        its new file."""
        async with self.transaction() as db:
            for frame in frames:
                await db.execute(
                    "UPDATE photos SET state = 'queued', stored_path = ? "
                    "WHERE event = ? AND sha256 = ? AND state = 'missing'",
                    (frame.stored_path, frame.event, frame.sha256),
                )
                if frame.username is not None:
                    await db.execute(
                        "UPDATE photos SET username = ?, camera = ?, function = ?, original_name = ?,"
                        " ftp_path = ? WHERE event = ? AND sha256 = ? AND username IS NULL",
                        (
                            frame.username,
                            frame.camera,
                            frame.function,
                            frame.original_name,
                            frame.ftp_path,
                            frame.event,
                            frame.sha256,
                        ),
                    )
        found: dict[tuple[str, str], Photo] = {}
        for frame in frames:
            row = await self.fetch_one(
                f"SELECT {PHOTO_COLUMNS} FROM photos WHERE event = ? AND sha256 = ?",  # noqa: S608
                (frame.event, frame.sha256),
            )
            if row is None:
                raise StoreError(f"photo {frame.sha256[:12]} vanished during insert")
            found[(frame.event, frame.sha256)] = _photo(row)
        return found

    async def get_photo(self, photo_id: int) -> Photo:
        row = await self.fetch_one(f"SELECT {PHOTO_COLUMNS} FROM photos WHERE id = ?", (photo_id,))  # noqa: S608
        if row is None:
            raise NotFoundError(f"no photo {photo_id}")
        return _photo(row)

    async def list_photos(self, event: str | None = None, *, limit: int = 100_000) -> list[Photo]:
        if event is None:
            rows = await self.fetch_all(f"SELECT {PHOTO_COLUMNS} FROM photos ORDER BY id LIMIT ?", (limit,))  # noqa: S608
        else:
            rows = await self.fetch_all(
                f"SELECT {PHOTO_COLUMNS} FROM photos WHERE event = ? ORDER BY id LIMIT ?",  # noqa: S608
                (event, limit),
            )
        return [_photo(r) for r in rows]

    async def event_photos(self, event: str, ids: Iterable[int]) -> list[Photo]:
        """Those of ``ids`` that are photos of ``event``, newest first (another event's ids are
        simply not found)."""
        wanted = list(ids)
        found: list[Photo] = []
        for start in range(0, len(wanted), MAX_BATCH):
            chunk = wanted[start : start + MAX_BATCH]
            marks = ",".join("?" * len(chunk))
            rows = await self.fetch_all(
                f"SELECT {PHOTO_COLUMNS} FROM photos WHERE event = ? AND id IN ({marks})",  # noqa: S608
                (event, *chunk),
            )
            found += [_photo(r) for r in rows]
        return sorted(found, key=lambda p: p.id, reverse=True)

    async def event_photo_ids(self, event: str) -> list[int]:
        return [
            int(r[0])
            for r in await self.fetch_all("SELECT id FROM photos WHERE event = ? ORDER BY id", (event,))
        ]

    async def stored_paths(self) -> dict[str, int]:
        rows = await self.fetch_all("SELECT stored_path, id FROM photos")
        return {r[0]: r[1] for r in rows}

    async def set_state(self, photo_ids: Iterable[int], state: str) -> None:
        async with self.transaction() as db:
            await db.executemany("UPDATE photos SET state = ? WHERE id = ?", [(state, i) for i in photo_ids])

    async def rename_photo(self, username: str, old_path: str, new_path: str) -> None:
        """The camera renamed an uploaded file (RNFR/RNTO): follow it in the catalogue."""
        async with self.transaction() as db:
            await db.execute(
                "UPDATE photos SET ftp_path = ?, original_name = ? WHERE username = ? AND ftp_path = ?",
                (new_path, new_path.rsplit("/", 1)[-1], username, old_path),
            )

    # --- rejections

    async def add_rejection(
        self,
        *,
        username: str | None,
        event: str | None,
        original_name: str,
        size: int,
        reason: str,
        quarantine_path: str | None,
    ) -> Rejection:
        async with self.transaction() as db:
            cur = await db.execute(
                "INSERT INTO rejections (at, username, event, original_name, size, reason, quarantine_path)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (utcnow(), username, event, original_name, size, reason, quarantine_path),
            )
            rid = cur.lastrowid
        row = await self.fetch_one("SELECT * FROM rejections WHERE id = ?", (rid,))
        assert row is not None
        return Rejection(**dict(row))

    async def resolve_rejections(self, username: str, original_name: str, photo_id: int) -> int:
        """A resumed upload of ``original_name`` landed as ``photo_id``: its earlier cuts are one
        frame with a resumed transfer, not rejections (the rows stay, for the diagnosis)."""
        async with self.transaction() as db:
            cur = await db.execute(
                "UPDATE rejections SET resumed_photo_id = ?"
                " WHERE username = ? AND original_name = ? AND resumed_photo_id IS NULL",
                (photo_id, username, original_name),
            )
            return cur.rowcount

    async def list_rejections(self, limit: int = 100) -> list[Rejection]:
        rows = await self.fetch_all("SELECT * FROM rejections ORDER BY id DESC LIMIT ?", (limit,))
        return [Rejection(**dict(r)) for r in rows]

    # --- hot folder

    async def hotfolder_seen(self, path: str) -> tuple[int, int] | None:
        row = await self.fetch_one("SELECT size, mtime_ns FROM hotfolder_seen WHERE path = ?", (path,))
        return None if row is None else (row[0], row[1])

    async def mark_hotfolder_seen(self, path: str, size: int, mtime_ns: int, outcome: str) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO hotfolder_seen (path, size, mtime_ns, outcome) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " outcome = excluded.outcome",
                (path, size, mtime_ns, outcome),
            )

    # --- status

    async def counts(self) -> dict[str, Any]:
        by_state = {
            r[0]: r[1] for r in await self.fetch_all("SELECT state, count(*) FROM photos GROUP BY state")
        }
        oldest = await self.fetch_one("SELECT min(received_at) FROM photos WHERE state = 'queued'")
        rejected = await self.fetch_one("SELECT count(*) FROM rejections WHERE resumed_photo_id IS NULL")
        events = await self.fetch_one("SELECT count(*) FROM events")
        keys = await self.fetch_one("SELECT count(*) FROM upload_keys WHERE revoked_at IS NULL")
        return {
            "photos_by_state": by_state,
            "photos_total": sum(by_state.values()),
            "oldest_queued_at": oldest[0] if oldest else None,
            "rejections": rejected[0] if rejected else 0,
            "events": events[0] if events else 0,
            "active_keys": keys[0] if keys else 0,
        }


def _statements(script: str) -> list[str]:
    """Split a migration into statements; a trigger body's own semicolons stay inside it."""
    statements, buffer = [], ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                statements.append(buffer.strip())
            buffer = ""
    return statements


def _frame_fields(frame: LandedFrame) -> dict[str, Any]:
    return {name: getattr(frame, name) for name in _FRAME_COLUMNS}


def _photo(row: sqlite3.Row) -> Photo:
    return photo_from(dict(row))
