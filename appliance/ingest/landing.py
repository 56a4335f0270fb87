"""Land, verify, then acknowledge: turn bytes from a camera into a durable, queued photo.

Runs on the thread of the FTP session (or the hot-folder thread) that received the file; the
queue commit hops to the asyncio loop through the Bridge and this thread waits for it, so the
camera's "226" is sent only after the row is committed. Order, chosen so a crash at any
instant loses nothing that was acknowledged and duplicates nothing:

1. bytes go to ``tmp/<random>.part`` (never visible to the camera);
2. on end of data: fsync, check structure (``formats.inspect``), SHA-256;
3. rename into ``photos/<event>/<sha[:2]>/<sha>.<ext>`` (read-only) and fsync the folder;
4. commit the queue row (same event + same content = the same photo);
5. hard-link the stored file into the camera's jail under its own name, then reply 226.

A crash after 3 and before 4 leaves a stored file with no row: the janitor adopts it at start.
A rejected or interrupted upload is kept under the camera's name (so REST/APPE can resume it)
and copied into ``quarantine/`` with a rejection row the operator can read: a copy of its own,
so nothing the camera does to its file (APPE, MFMT, DELE) changes the operator's evidence or
its age. An upload stopped at the size limit is removed at once (nothing to resume) and only
recorded.

Camera-supplied names reach the log with control characters escaped.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appliance import metrics
from appliance.errors import RejectedUpload
from appliance.ingest.formats import Inspection, InvalidFile, inspect
from appliance.loghygiene import escape_controls
from appliance.store import LandedFrame, Photo
from appliance.store.records import utcnow

if TYPE_CHECKING:
    from appliance.bridge import Bridge
    from appliance.layout import Layout
    from appliance.store import Store

logger = logging.getLogger(__name__)

_EXT_RE = re.compile(r"^\.[a-z0-9]{1,8}$")
_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
_DISK_CHECK_BYTES = 16 << 20
MB = 1 << 20


@dataclass(frozen=True, slots=True)
class Destination:
    """Whose frame this is: the upload key's binding."""

    event: str
    function: str
    camera: str
    username: str | None


def landed_frame(
    dest: Destination,
    name: str,
    ftp_path: str | None,
    sha256: str,
    size: int,
    inspection: Inspection,
    stored: Path,
) -> LandedFrame:
    """The queue row's content for a verified file now at ``stored``."""
    meta = inspection.metadata
    return LandedFrame(
        event=dest.event,
        function=dest.function,
        camera=dest.camera,
        username=dest.username,
        original_name=name,
        ftp_path=ftp_path,
        sha256=sha256,
        size=size,
        kind=inspection.kind,
        searchable=inspection.searchable,
        stored_path=str(stored),
        received_at=utcnow(),
        capture_time=meta.capture_time,
        body_serial=meta.body_serial,
        make=meta.make,
        model=meta.model,
        orientation=meta.orientation,
        width=meta.width,
        height=meta.height,
    )


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path: Path) -> None:
    """mkdir -p, fsyncing each parent whose entry was created."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        fsync_dir(folder.parent)


class Lander:
    """Shared by every session thread; holds no per-upload state."""

    def __init__(
        self, layout: Layout, store: Store, bridge: Bridge, *, reserve_mb: int, max_file_size_mb: int
    ) -> None:
        self.layout = layout
        self.store = store
        self.bridge = bridge
        self.reserve_bytes = reserve_mb * MB
        self.max_file_size = max_file_size_mb * MB

    # --- called when a transfer starts

    def check_space(self) -> None:
        """Refuse (452) before accepting a single byte when the disk is at its reserve."""
        free = shutil.disk_usage(self.layout.root).free
        if free < self.reserve_bytes:
            raise RejectedUpload(
                "452 Insufficient storage space on the box; upload refused, nothing was lost.",
                f"disk reserve reached: {free // MB} MB free, reserve {self.reserve_bytes // MB} MB",
            )

    def open(self, dest: Destination, jail_path: Path, ftp_path: str | None, mode: str) -> StagingFile:
        """The caller has already called ``check_space`` (the FTP handler does, before pyftpdlib
        opens the file, where a refusal can still be answered with 452)."""
        return StagingFile(self, dest, jail_path, ftp_path, mode)

    # --- called when the data channel ends

    def land(self, upload: StagingFile) -> Photo:
        """Verify, store and queue a finished upload. Raises RejectedUpload (the reply to send)."""
        upload.seal()
        try:
            photo = self._land_path(
                upload.dest, upload.tmp_path, upload.original_name, upload.ftp_path, upload.sha256()
            )
        except RejectedUpload as exc:
            self.keep_partial(upload, exc.reason, metrics.reject_reason(exc.reply))
            raise
        self._link_into_jail(Path(photo.stored_path), upload.jail_path)
        if upload.resumed:
            self._resolve_cuts(upload, photo)
        return photo

    def _resolve_cuts(self, upload: StagingFile, photo: Photo) -> None:
        """A resume completed the frame: the cuts before it were the transfer's, not the
        camera's (kept in the log and the rejections list, no longer counted against it)."""
        username = upload.dest.username
        if username is None:
            return
        resolved = self.bridge.call(self.store.resolve_rejections, username, upload.original_name, photo.id)
        if resolved:
            metrics.FRAMES_RESUMED.inc(resolved)
            logger.info(
                "%s from %s completed by a resume as photo %d (%d earlier cut%s not counted as rejected)",
                escape_controls(upload.original_name),
                upload.dest.camera,
                photo.id,
                resolved,
                "" if resolved == 1 else "s",
            )

    def land_file(self, dest: Destination, source: Path) -> Photo:
        """Ingest a file from outside the FTP path (hot folder): copy, then land like an upload."""
        self.check_space()
        tmp = self.layout.tmp / f"{secrets.token_hex(8)}.part"
        try:
            shutil.copyfile(source, tmp)
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
            return self._land_path(dest, tmp, source.name, None)
        finally:
            tmp.unlink(missing_ok=True)

    def _land_path(
        self, dest: Destination, tmp: Path, name: str, ftp_path: str | None, sha256: str | None = None
    ) -> Photo:
        size = tmp.stat().st_size
        if size > self.max_file_size:
            raise RejectedUpload(
                "552 File exceeds the box's size limit.", f"{size} bytes > limit {self.max_file_size}"
            )
        try:
            inspection = inspect(tmp, name)
        except InvalidFile as exc:
            raise RejectedUpload(
                f"451 Upload incomplete or corrupt ({exc.reason}); please send it again.", exc.reason
            ) from exc
        if sha256 is None:
            with tmp.open("rb") as handle:
                sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        ext = Path(name).suffix.lower()
        if not _EXT_RE.match(ext):
            ext = ".bin"
        stored = self.layout.photos / dest.event / sha256[:2] / f"{sha256}{ext}"
        _makedirs_durable(stored.parent)
        if stored.exists():
            tmp.unlink()  # same content already stored: a retry or a duplicate send
        else:
            os.chmod(tmp, 0o444)
            os.rename(tmp, stored)
        fsync_dir(stored.parent)
        frame = landed_frame(dest, name, ftp_path, sha256, size, inspection, stored)
        photo, created = self.bridge.call(self.store.add_photo, frame)
        metrics.frame_received(inspection.kind, size)
        logger.info(
            "%s photo %d: %s from %s (%s, %d bytes, sha256 %s)",
            "queued" if created else "duplicate of",
            photo.id,
            escape_controls(name),
            dest.camera,
            inspection.kind,
            size,
            sha256[:12],
        )
        return photo

    def _link_into_jail(self, stored: Path, jail_path: Path) -> None:
        """Show the camera its file under its own name (SIZE, LIST, "don't overwrite" checks)."""
        link = self.layout.tmp / f"{secrets.token_hex(8)}.link"
        try:
            os.link(stored, link)
            os.replace(link, jail_path)
        except OSError as exc:  # the view is a courtesy; the photo is already safe
            logger.warning(
                "could not show %s in the camera's folder: %s", escape_controls(jail_path.name), exc
            )
        finally:
            # rename(2) onto a name that is already this inode (the same frame sent again)
            # does nothing and leaves the link
            link.unlink(missing_ok=True)

    # --- called when a transfer is rejected or interrupted

    def keep_partial(self, upload: StagingFile, reason: str, label: str) -> None:
        """Keep the bytes under the camera's name for a resume, quarantine them, record why
        (``label`` is the reason's metric label, see ``metrics.reject_reason``). An upload over the
        size limit is not kept at all: nothing to resume, and it can be gigabytes."""
        upload.seal()
        metrics.FRAMES_REJECTED.labels(label).inc()
        if not upload.tmp_path.exists():
            return
        size = upload.tmp_path.stat().st_size
        quarantined: Path | None = None
        if label == "too_large":
            self._drop_oversize(upload)
        elif size == 0:
            upload.tmp_path.unlink()
        else:
            quarantined = self._quarantine_copy(upload, size)
            try:
                os.replace(upload.tmp_path, upload.jail_path)
            except OSError:
                upload.tmp_path.unlink(missing_ok=True)
        logger.warning(
            "rejected %s from %s (%d bytes)%s: %s",
            escape_controls(upload.original_name),
            upload.dest.camera,
            size,
            ", removed" if label == "too_large" else "",
            reason,
        )
        self.bridge.call(
            self.store.add_rejection,
            username=upload.dest.username,
            event=upload.dest.event,
            original_name=upload.original_name,
            size=size,
            reason=reason,
            quarantine_path=str(quarantined) if quarantined else None,
        )

    def _quarantine_copy(self, upload: StagingFile, size: int) -> Path | None:
        """An independent copy (its own inode, mtime = now) for the operator; none when the copy
        would eat into the disk reserve (the frame stays in the camera's folder for a resume)."""
        if shutil.disk_usage(self.layout.root).free - size < self.reserve_bytes:
            logger.warning(
                "not quarantining a copy of %s (%d bytes): the disk is at its reserve",
                escape_controls(upload.original_name),
                size,
            )
            return None
        day = time.strftime("%Y%m%d")
        safe = _SAFE_NAME_RE.sub("_", upload.original_name)[:80]
        quarantined = (
            self.layout.quarantine / day / f"{time.strftime('%H%M%S')}-{secrets.token_hex(4)}-{safe}"
        )
        quarantined.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(upload.tmp_path, quarantined)  # copy_file_range/sendfile: in the kernel
        except OSError as exc:
            quarantined.unlink(missing_ok=True)
            logger.warning(
                "could not quarantine a copy of %s: %s", escape_controls(upload.original_name), exc
            )
            return None
        metrics.FRAMES_QUARANTINED.inc()
        return quarantined

    def _drop_oversize(self, upload: StagingFile) -> None:
        upload.tmp_path.unlink(missing_ok=True)
        if upload.resumed:  # the partial it resumed is the start of the same oversize file
            with contextlib.suppress(OSError):
                st = upload.jail_path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_mode & 0o200:  # a partial, not a landed frame
                    upload.jail_path.unlink()


class StagingFile:
    """The file object pyftpdlib writes an upload into; the bytes go to ``tmp/``.

    STOR writes a fresh temporary; REST+STOR and APPE start from a copy of the camera's
    existing file (so a resumed upload ends byte-identical and the stored photo is never
    modified in place).
    """

    def __init__(
        self, lander: Lander, dest: Destination, jail_path: Path, ftp_path: str | None, mode: str
    ) -> None:
        self.lander = lander
        self.dest = dest
        self.jail_path = jail_path
        self.ftp_path = ftp_path
        self.original_name = jail_path.name
        self.tmp_path = lander.layout.tmp / f"{secrets.token_hex(8)}.part"
        # SHA-256 as the bytes arrive: hashlib releases the GIL, so this overlaps the network
        # instead of re-reading the file after the camera is done.
        self._hasher = hashlib.sha256()
        if "r" in mode or "a" in mode:
            if not jail_path.is_file():  # an errno: pyftpdlib's reply is os.strerror(errno)
                code = errno.EISDIR if jail_path.is_dir() else errno.ENOENT
                raise FileNotFoundError(code, os.strerror(code), jail_path.name)
            try:
                shutil.copyfile(jail_path, self.tmp_path)
                self._file = self.tmp_path.open("ab" if "a" in mode else "r+b")
                self._file.seek(0, os.SEEK_END)
                self._rehash()
            except BaseException:
                self.tmp_path.unlink(missing_ok=True)
                raise
        else:
            self._file = self.tmp_path.open("wb")
        self._written = self._file.tell()
        self.resumed = self._written > 0  # APPE or REST+STOR on top of bytes already here
        self._next_disk_check = _DISK_CHECK_BYTES
        self.sealed = False

    @property
    def name(self) -> str:
        return str(self.jail_path)

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write(self, data: bytes) -> int:
        self._written += len(data)
        if self._written > self.lander.max_file_size:
            raise RejectedUpload(
                "552 File exceeds the box's size limit; transfer aborted.",
                f"upload passed the size limit of {self.lander.max_file_size // MB} MB",
            )
        if self._written >= self._next_disk_check:
            self._next_disk_check = self._written + _DISK_CHECK_BYTES
            free = shutil.disk_usage(self.lander.layout.root).free
            if free < self.lander.reserve_bytes // 2:
                raise RejectedUpload(
                    "452 Insufficient storage space on the box; transfer aborted.",
                    f"disk filled during upload: {free // MB} MB free",
                )
        self._hasher.update(data)
        return self._file.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        """REST: resume at ``offset``; bytes after it are dropped, as the camera will resend them."""
        position = self._file.seek(offset, whence)
        self._file.truncate(position)
        self._written = position
        self.resumed = position > 0
        self._rehash()
        return position

    def _rehash(self) -> None:
        """Hash what the temporary holds up to the write position (after a resume's copy)."""
        self._file.flush()
        self._hasher = hashlib.sha256()
        with self.tmp_path.open("rb") as handle:
            remaining = self._file.tell()
            while remaining > 0:
                chunk = handle.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                self._hasher.update(chunk)
                remaining -= len(chunk)

    def sha256(self) -> str:
        return self._hasher.hexdigest()

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        """pyftpdlib closes the file when it is done with it. By then an upload that received
        bytes has been landed or kept (sealed); one that was not (a REST past the end, a transfer
        queued and then abandoned) holds nothing of the camera's: remove its temporary."""
        self._file.close()
        if not self.sealed:
            self.sealed = True
            self.tmp_path.unlink(missing_ok=True)

    def seal(self) -> None:
        """Flush and fsync the bytes received so far (idempotent)."""
        if self.sealed:
            return
        self.sealed = True
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
