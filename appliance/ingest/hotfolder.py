"""Hot folder: files dropped by tethering software or a card reader are ingested like uploads.

A watchdog observer thread reports changes; one worker thread waits until a file has stopped
growing (size and mtime unchanged for ``settle_seconds``), then lands it through the same
Lander as FTP (validate, hash, store, queue). A file already seen with the same size and mtime
is not read again. Source files are left where they are.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from appliance import metrics
from appliance.errors import ConfigError, RejectedUpload
from appliance.ingest.landing import Destination

if TYPE_CHECKING:
    from appliance.bridge import Bridge
    from appliance.config import HotFolderSettings
    from appliance.ingest.landing import Lander
    from appliance.store import Store

logger = logging.getLogger(__name__)

_IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", "~")
_CHANGES = {"created", "modified", "moved", "closed"}


class _Events(FileSystemEventHandler):
    def __init__(self, inbox: queue.Queue[Path]) -> None:
        self.inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        # "opened" and "closed_no_write" are also our own reads of the file: ignore them, or
        # every ingested file comes back for another look.
        if not event.is_directory and event.event_type in _CHANGES:
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                if raw:
                    self.inbox.put(Path(raw if isinstance(raw, str) else raw.decode()))


class HotFolder:
    def __init__(self, settings: HotFolderSettings, store: Store, lander: Lander, bridge: Bridge) -> None:
        if settings.path is None or settings.event is None:
            raise ConfigError("hotfolder.path and hotfolder.event must both be set")
        self.root = settings.path
        self.settle = settings.settle_seconds
        self.dest = Destination(settings.event, settings.function, settings.camera, None)
        self.store = store
        self.lander = lander
        self.bridge = bridge
        self._inbox: queue.Queue[Path] = queue.Queue()
        self._stop = threading.Event()
        self._observer = Observer()
        self._worker = threading.Thread(target=self._run, name="hotfolder", daemon=True)

    async def __aenter__(self) -> Self:
        await self.store.get_event(self.dest.event)  # fail early on a wrong event code
        self.root.mkdir(parents=True, exist_ok=True)
        self._observer.schedule(_Events(self._inbox), str(self.root), recursive=True)
        self._observer.start()
        for path in self.root.rglob("*"):  # files that arrived while the box was off
            if path.is_file():
                self._inbox.put(path)
        self._worker.start()
        logger.info("watching hot folder %s for event %s", self.root, self.dest.event)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._observer.stop()
        # Join off the loop: the worker may be waiting on the loop for a Store call.
        await asyncio.to_thread(self._observer.join, 10)
        await asyncio.to_thread(self._worker.join, 30)

    def _run(self) -> None:
        watching: dict[Path, tuple[int, int, float]] = {}
        while not self._stop.is_set():
            try:
                path = self._inbox.get(timeout=0.25)
                watching.setdefault(path, (-1, -1, time.monotonic()))
            except queue.Empty:
                pass
            now = time.monotonic()
            for path, (size, mtime, since) in list(watching.items()):
                if self._stop.is_set():
                    return  # what is left is picked up by the start-up scan next time
                try:
                    st = path.stat()
                except FileNotFoundError:
                    del watching[path]
                    continue
                if (st.st_size, st.st_mtime_ns) != (size, mtime):
                    watching[path] = (st.st_size, st.st_mtime_ns, now)
                elif now - since >= self.settle:
                    del watching[path]
                    self._take(path, st.st_size, st.st_mtime_ns)

    def _take(self, path: Path, size: int, mtime_ns: int) -> None:
        if path.name.startswith(".") or path.name.endswith(_IGNORED_SUFFIXES) or size == 0:
            return
        key = str(path)
        try:
            if self.bridge.call(self.store.hotfolder_seen, key) == (size, mtime_ns):
                return
            try:
                photo = self.lander.land_file(self.dest, path)
                outcome = f"photo {photo.id}"
            except RejectedUpload as exc:
                outcome = f"rejected: {exc.reason}"
                logger.warning("hot folder file %s rejected: %s", path, exc.reason)
                metrics.FRAMES_REJECTED.labels(metrics.reject_reason(exc.reply)).inc()
                self.bridge.call(
                    self.store.add_rejection,
                    username=None,
                    event=self.dest.event,
                    original_name=path.name,
                    size=size,
                    reason=exc.reason,
                    quarantine_path=None,
                )
            self.bridge.call(self.store.mark_hotfolder_seen, key, size, mtime_ns, outcome)
        except Exception:
            logger.exception("hot folder could not ingest %s; will retry when it changes", path)
