"""The janitor: reconciles the disk with the queue at start, then sweeps old leftovers.

Runs on the asyncio thread (file walks go to a worker thread with ``asyncio.to_thread``).
At start, before the FTP server listens, so nothing moves underneath it:

- ``tmp/`` holds uploads that were in flight at the crash: never acknowledged, so they are
  quarantined (the camera resends them);
- a stored photo file with no queue row (crash between rename and commit) is adopted after its
  content is re-hashed; if its camera resends it later, the row gets the camera's attribution;
- a queue row whose file is gone is marked ``missing`` and logged loudly.

Every ten minutes: interrupted uploads kept for resume (writable files in the jails) older than
``storage.partial_hours`` and quarantined files older than ``storage.quarantine_days`` go. A
file's age is the earlier of its mtime and ctime: cameras cannot set either (MFMT changes
nothing, quarantine copies are the box's own files), and a future mtime (a clock that jumped,
a file from an older version) cannot keep a file forever.

Every 10 s, the storage policy: below ``storage.evict_below_mb`` free, originals whose upload to
S3 is done (checksum verified) are deleted from the box, oldest first, with the camera's view of
them (a hard link in its jail), until free space is back above the mark. The row is marked
first; a crash in between leaves a file that the next pass deletes. Never an unsynced frame,
never a proxy (the local face index and the guests' full view need it). Guests' downloads fall
back to the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from appliance.bridge import cancel_and_wait
from appliance.errors import NotFoundError
from appliance.ingest.formats import Inspection, InvalidFile, inspect
from appliance.ingest.landing import Destination, landed_frame
from appliance.store.syncqueue import SyncQueue

if TYPE_CHECKING:
    from appliance.config import StorageSettings
    from appliance.layout import Layout
    from appliance.store import Store

logger = logging.getLogger(__name__)

SWEEP_INTERVAL = 600.0
EVICT_INTERVAL = 10.0
EVICT_BATCH = 200


class Janitor:
    def __init__(self, layout: Layout, store: Store, settings: StorageSettings) -> None:
        self.layout = layout
        self.store = store
        self.settings = settings
        self.queue = SyncQueue(store)
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        await self.reconcile()
        self._tasks = [asyncio.create_task(self._sweep_forever())]
        if self.settings.evict_below_mb:
            self._tasks.append(asyncio.create_task(self._evict_forever()))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await cancel_and_wait(self._tasks)

    # --- storage policy

    async def _evict_forever(self) -> None:
        while True:
            try:
                await self.evict()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("storage policy pass failed; trying again later")
            await asyncio.sleep(EVICT_INTERVAL)

    async def evict(self) -> dict[str, int]:
        """One pass of the storage policy (see the module docstring)."""
        mark = self.settings.evict_below_mb << 20
        leftovers = await self.queue.evicted_paths()
        await asyncio.to_thread(_unlink_all, leftovers)
        evicted = {"photos": 0, "bytes": 0}
        while shutil.disk_usage(self.layout.root).free < mark:
            batch = await self.queue.evictable(EVICT_BATCH)
            if not batch:
                logger.warning(
                    "disk below storage.evict_below_mb and nothing left that is safely in S3 to delete"
                )
                break
            await self.queue.mark_evicted([photo_id for photo_id, *_ in batch])
            freed = await asyncio.to_thread(self._delete_originals, batch)
            evicted["photos"] += len(batch)
            evicted["bytes"] += freed
            if freed == 0:  # nothing on this filesystem shrank: stop rather than spin
                break
        if evicted["photos"]:
            logger.warning(
                "storage policy: deleted %d originals (%.0f MB) already in S3; %.0f MB free",
                evicted["photos"],
                evicted["bytes"] / 1e6,
                shutil.disk_usage(self.layout.root).free / 1e6,
            )
        return evicted

    def _delete_originals(self, batch: list[tuple[int, str, str | None, str | None, int]]) -> int:
        freed = 0
        for _, stored, username, ftp_path, size in batch:
            original = Path(stored)
            if username and ftp_path:
                link = self.layout.ftp / username / ftp_path.lstrip("/")
                with contextlib.suppress(OSError):
                    if link.exists() and original.exists() and os.path.samefile(link, original):
                        link.unlink()
            with contextlib.suppress(FileNotFoundError):
                original.unlink()
                freed += size
        return freed

    async def reconcile(self) -> dict[str, int]:
        report = {"interrupted": 0, "adopted": 0, "missing": 0}
        for part in sorted(self.layout.tmp.iterdir()):
            if part.suffix == ".part" and part.stat().st_size > 0:
                target = await asyncio.to_thread(self._quarantine, part, f"restart-{part.name}")
                await self.store.add_rejection(
                    username=None,
                    event=None,
                    original_name=part.name,
                    size=target.stat().st_size,
                    reason="upload interrupted by a restart of the box (never acknowledged)",
                    quarantine_path=str(target),
                )
                report["interrupted"] += 1
            else:
                part.unlink()
        known = await self.store.stored_paths()
        on_disk = await asyncio.to_thread(self._stored_files)
        for path in on_disk:
            if str(path) not in known and await self._adopt(path):
                report["adopted"] += 1
        evicted = set(await self.queue.evicted_paths())  # gone on purpose: safely in S3
        missing = await asyncio.to_thread(
            lambda: [
                photo_id
                for stored, photo_id in known.items()
                if stored not in evicted and not os.path.exists(stored)
            ]
        )
        if missing:
            await self.store.set_state(missing, "missing")
            logger.error("%d queued photos have no file on disk (ids %s...)", len(missing), missing[:10])
            report["missing"] = len(missing)
        if any(report.values()):
            logger.warning("reconciled data folder at start: %s", report)
        return report

    def _stored_files(self) -> list[Path]:
        if not self.layout.photos.exists():
            return []
        return [p for p in self.layout.photos.glob("*/*/*") if p.is_file()]

    async def _adopt(self, path: Path) -> bool:
        event = path.parent.parent.name
        try:
            ev = await self.store.get_event(event)
        except NotFoundError:
            ev = None  # a folder of an unknown event: quarantined below

        def check() -> tuple[str, Inspection, int]:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            return digest, inspect(path, path.name), path.stat().st_size

        try:
            sha256, inspection, size = await asyncio.to_thread(check)
        except (InvalidFile, OSError) as exc:
            logger.error("stored file %s is unreadable or corrupt (%s); quarantining", path, exc)
            sha256, inspection, size = "", None, 0
        if ev is None or inspection is None or not path.name.startswith(sha256):
            await asyncio.to_thread(self._quarantine, path, f"orphan-{path.name}")
            return False
        function = ev.functions[0] if ev.functions else "main"
        recovered = Destination(event, function, "recovered", None)
        frame = landed_frame(recovered, path.name, None, sha256, size, inspection, path)
        photo, _ = await self.store.add_photo(frame)
        logger.warning("adopted stored file %s with no queue row as photo %d", path.name, photo.id)
        return True

    def _quarantine(self, path: Path, name: str) -> Path:
        target = self.layout.quarantine / time.strftime("%Y%m%d") / name
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
        return target

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                removed = await asyncio.to_thread(self.sweep)
                if removed:
                    logger.info("janitor removed %d old partial or quarantined files", removed)
            except Exception:
                logger.exception("janitor sweep failed")

    def sweep(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        removed = 0
        partial_cutoff = now - self.settings.partial_hours * 3600
        for path in self.layout.ftp.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                st = path.lstat()
                # completed frames are read-only hard links to the store; partials are writable
                if path.is_file() and st.st_mode & 0o200 and _age_mark(st) < partial_cutoff:
                    path.unlink()
                    removed += 1
        quarantine_cutoff = now - self.settings.quarantine_days * 86400
        for day in self.layout.quarantine.iterdir() if self.layout.quarantine.exists() else ():
            for path in day.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if _age_mark(path.stat()) < quarantine_cutoff:
                        path.unlink()
                        removed += 1
            with contextlib.suppress(OSError):
                day.rmdir()  # only when empty
        return removed


def _age_mark(st: os.stat_result) -> float:
    """When the file was last written, as far as the box knows (see the module docstring)."""
    return min(st.st_mtime, st.st_ctime)


def _unlink_all(paths: list[str]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)
