"""The janitor: reconciles the disk with the queue at start, then sweeps old leftovers.

Runs on the asyncio thread (file walks go to a worker thread with ``asyncio.to_thread``).
At start, before the FTP server listens, so nothing moves underneath it:

- ``tmp/`` holds uploads that were in flight at the crash: never acknowledged, so they are
  quarantined (the camera resends them);
- a stored photo file with no queue row (crash between rename and commit) is adopted after its
  content is re-hashed; if its camera resends it later, the row gets the camera's attribution;
- a queue row whose file is gone is marked ``missing`` and logged loudly.

Every ten minutes: interrupted uploads kept for resume (writable files in the jails) older than
``storage.partial_hours`` and quarantined files older than ``storage.quarantine_days`` go.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from appliance.errors import NotFoundError
from appliance.ingest.formats import Inspection, InvalidFile, inspect
from appliance.ingest.landing import Destination, landed_frame

if TYPE_CHECKING:
    from appliance.config import StorageSettings
    from appliance.layout import Layout
    from appliance.store import Store

logger = logging.getLogger(__name__)

SWEEP_INTERVAL = 600.0


class Janitor:
    def __init__(self, layout: Layout, store: Store, settings: StorageSettings) -> None:
        self.layout = layout
        self.store = store
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self.reconcile()
        self._task = asyncio.create_task(self._sweep_forever())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

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
        missing = await asyncio.to_thread(
            lambda: [photo_id for stored, photo_id in known.items() if not os.path.exists(stored)]
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
                if path.is_file() and st.st_mode & 0o200 and st.st_mtime < partial_cutoff:
                    path.unlink()
                    removed += 1
        quarantine_cutoff = now - self.settings.quarantine_days * 86400
        for day in self.layout.quarantine.iterdir() if self.layout.quarantine.exists() else ():
            for path in day.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < quarantine_cutoff:
                        path.unlink()
                        removed += 1
            with contextlib.suppress(OSError):
                day.rmdir()  # only when empty
        return removed
