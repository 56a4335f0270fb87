"""Load-generation half of ``bench/ingest.py``: JPEG corpus, FTP upload clients, verification.

Nothing here knows which server it talks to; ``ingest.py`` runs the very same code against
shutterbox and against vsftpd.

Clients are separate processes (``fork``, so they share the in-memory corpus without copying
it), each holding one persistent ``ftplib`` session. Measured against vsftpd on the 2-core dev
box, threads and processes came out the same within run-to-run noise (sendall releases the
GIL); processes are kept so the eight clients never queue on one GIL for their reply parsing
and bookkeeping while the server under test is the thing being measured.
"""

from __future__ import annotations

import contextlib
import ftplib
import io
import math
import multiprocessing as mp
import os
import queue
import random
import re
import resource
import signal
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops

MB = 1_000_000  # the benchmark reports decimal megabytes
JPEG_QUALITY = 95  # "fine" setting of a camera
BASES_PER_SIZE = 3  # distinct images per size class; frames differ further by a COM segment
COMMENT_TAG = b"SBBENCH"
FTP_TIMEOUT_S = 120.0
START_TIMEOUT_S = 60.0

# --------------------------------------------------------------------------------------------
# Corpus


@dataclass(frozen=True)
class BaseImage:
    """An encoded JPEG; ``split`` is where a frame's COM segment is inserted (after APPn)."""

    data: bytes
    split: int
    width: int
    height: int


@dataclass(frozen=True)
class Frame:
    """One upload: a base image with a unique COM segment, so that every frame has new bytes."""

    name: str
    base: BaseImage
    comment: bytes

    @property
    def size(self) -> int:
        return len(self.base.data) + len(self.comment)

    def chunks(self) -> tuple[memoryview, bytes, memoryview]:
        view = memoryview(self.base.data)
        return view[: self.base.split], self.comment, view[self.base.split :]

    def to_bytes(self) -> bytes:
        return b"".join(self.chunks())


@dataclass(frozen=True)
class Phase:
    name: str
    frames: tuple[Frame, ...]
    # explicit FTPS (AUTH TLS) with protected data channels, ending each upload "camera"-style
    # (close without reading: no close_notify exchange) or "ftplib"-style (unwrap: close_notify
    # both ways, which reads whatever the server sent); None: plain FTP
    tls: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.frames)


def noise_image(width: int, height: int, sigma: float, seed: int) -> Image.Image:
    """Smooth random colour blocks plus grain; ``sigma`` (grain) sets how well it compresses."""
    rnd = random.Random(seed)
    block = 50
    small_size = (max(1, width // block), max(1, height // block))
    small = Image.frombytes("RGB", small_size, rnd.randbytes(small_size[0] * small_size[1] * 3))
    base = small.resize((width, height), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((width, height), sigma).convert("RGB")
    return ImageChops.add(base, grain, scale=1.0, offset=-128)


def _exif(seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "shutterbox-bench"  # Make
    exif[0x0110] = "noise generator"  # Model
    exif[0x0132] = "2025:01:01 12:00:00"  # DateTime
    exif.get_ifd(0x8769)[0x9003] = "2025:01:01 12:00:00"  # DateTimeOriginal
    exif[0xA420] = f"{seed:032x}"  # ImageUniqueID
    return exif.tobytes()


def _encode(img: Image.Image, seed: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY, exif=_exif(seed))
    return buf.getvalue()


def comment_offset(data: bytes) -> int:
    """Offset just past SOI and the APPn segments (JFIF, Exif), where a COM segment may go."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos = 2
    while data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return pos


def _dimensions(size_mb: float) -> tuple[int, int]:
    """3:2 frame: 6 MP for the small frames, about 1 MP per MB above that (25 MB -> 25 MP)."""
    megapixels = max(size_mb, min(6.0, 3 * size_mb))
    height = int(math.sqrt(megapixels * 1e6 / 1.5))
    return int(height * 1.5) // 16 * 16, height // 16 * 16


def grain_for(bytes_per_pixel: float) -> float:
    """Bisect the grain level on a small tile until it encodes at ``bytes_per_pixel``."""
    lo, hi = 0.0, 160.0
    tile = (800, 800)
    for _ in range(12):
        mid = (lo + hi) / 2
        size = len(_encode(noise_image(*tile, mid, seed=0), seed=0))
        if size / (tile[0] * tile[1]) < bytes_per_pixel:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def make_bases(size_mb: float, count: int = BASES_PER_SIZE) -> list[BaseImage]:
    width, height = _dimensions(size_mb)
    sigma = grain_for(size_mb * MB / (width * height))
    bases = []
    for i in range(count):
        seed = int(size_mb * 1000) * 100 + i + 1
        data = _encode(noise_image(width, height, sigma, seed), seed)
        bases.append(BaseImage(data, comment_offset(data), width, height))
    return bases


def make_frame(name: str, base: BaseImage, run_id: str) -> Frame:
    text = COMMENT_TAG + f" {run_id} {name}".encode()
    comment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return Frame(name, base, comment)


def check_frame(frame: Frame) -> None:
    """Decode a frame fully with Pillow: the corpus must be valid JPEG."""
    with Image.open(io.BytesIO(frame.to_bytes())) as img:
        img.load()
        if img.format != "JPEG" or img.size != (frame.base.width, frame.base.height):
            raise ValueError(f"corpus frame {frame.name} does not decode as expected")


# --------------------------------------------------------------------------------------------
# Clients


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    password: str


@dataclass
class WorkerResult:
    worker: int
    start: float = 0.0  # time.monotonic() (CLOCK_MONOTONIC, comparable across processes)
    end: float = 0.0
    frames_ok: int = 0
    bytes_ok: int = 0
    lat_226: list[float] = field(default_factory=list)  # last byte sent -> 226 received
    lat_stor: list[float] = field(default_factory=list)  # STOR sent -> 226 received
    errors: list[str] = field(default_factory=list)
    cpu_s: float = 0.0


@dataclass
class LoadResult:
    workers: list[WorkerResult]
    wall_s: float
    server_cpu_s: float | None

    @property
    def frames_ok(self) -> int:
        return sum(w.frames_ok for w in self.workers)

    @property
    def bytes_ok(self) -> int:
        return sum(w.bytes_ok for w in self.workers)

    @property
    def errors(self) -> list[str]:
        return [e for w in self.workers for e in w.errors]

    @property
    def lat_226(self) -> list[float]:
        return [x for w in self.workers for x in w.lat_226]

    @property
    def lat_stor(self) -> list[float]:
        return [x for w in self.workers for x in w.lat_stor]

    @property
    def client_cpu_s(self) -> float:
        return sum(w.cpu_s for w in self.workers)


def _insecure_tls() -> ssl.SSLContext:
    """Self-signed servers on loopback: encryption on, verification off (TLS 1.2 or 1.3, as the
    server chooses: 1.3 with both here)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def login(endpoint: Endpoint, folder: str, tls: bool = False) -> ftplib.FTP:
    ftp = (
        ftplib.FTP_TLS(context=_insecure_tls(), timeout=FTP_TIMEOUT_S)
        if tls
        else ftplib.FTP(timeout=FTP_TIMEOUT_S)
    )
    try:
        ftp.connect(endpoint.host, endpoint.port)
        ftp.login(endpoint.user, endpoint.password)
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.prot_p()
        ftp.voidcmd("TYPE I")
        with contextlib.suppress(ftplib.error_perm):  # exists, or not allowed: CWD tells
            ftp.mkd(folder)
        ftp.cwd(folder)
    except BaseException:
        ftp.close()
        raise
    return ftp


def store(ftp: ftplib.FTP, frame: Frame, unwrap: bool = False) -> tuple[float, float]:
    """Upload one frame; return (STOR -> 226, last byte -> 226) in seconds."""
    t_stor = time.monotonic()
    conn = ftp.transfercmd(f"STOR {frame.name}")
    try:
        for chunk in frame.chunks():
            conn.sendall(chunk)
    finally:
        # A camera's way closes without reading, which turns TLS 1.3 tickets the server sent
        # and nobody read into a reset that cuts the upload (issue #12); ftplib's way unwraps.
        if unwrap and isinstance(conn, ssl.SSLSocket):
            conn = conn.unwrap()
        conn.close()
    t_sent = time.monotonic()
    ftp.voidresp()
    t_done = time.monotonic()
    return t_done - t_stor, t_done - t_sent


def _worker(
    wid: int,
    endpoint: Endpoint,
    phase: Phase,
    next_index: Any,
    ready: Any,
    start: Any,
    results: Any,
    release: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # ... with SIGTERM (not its own handler)
    folder = f"c{wid}"
    frames = phase.frames
    res = WorkerResult(wid)
    ftp: ftplib.FTP | None = None
    try:
        ftp = login(endpoint, folder, phase.tls is not None)
    except ftplib.all_errors as exc:
        res.errors.append(f"login: {exc!r}")
    try:
        ready.wait(START_TIMEOUT_S + FTP_TIMEOUT_S)
    except threading.BrokenBarrierError:
        return  # the parent gave up on this phase
    start.wait(START_TIMEOUT_S)
    res.start = time.monotonic()
    while ftp is not None:
        with next_index.get_lock():
            index = next_index.value
            next_index.value += 1
        if index >= len(frames):
            break
        frame = frames[index]
        try:
            lat_stor, lat_226 = store(ftp, frame, phase.tls == "ftplib")
        except (ftplib.error_perm, ftplib.error_temp) as exc:  # the session is still usable
            res.errors.append(f"{frame.name}: {str(exc).strip()}")
            continue
        except ftplib.all_errors as exc:
            res.errors.append(f"{frame.name}: {exc!r}")
            ftp.close()
            try:
                ftp = login(endpoint, folder, phase.tls is not None)
            except ftplib.all_errors as exc2:
                res.errors.append(f"re-login: {exc2!r}")
                ftp = None
            continue
        res.frames_ok += 1
        res.bytes_ok += frame.size
        res.lat_226.append(lat_226)
        res.lat_stor.append(lat_stor)
    res.end = time.monotonic()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    res.cpu_s = usage.ru_utime + usage.ru_stime
    results.put(res)
    release.wait(START_TIMEOUT_S)  # keep the sessions open until the parent read server CPU
    if ftp is not None:
        try:
            ftp.quit()
        except ftplib.all_errors:
            ftp.close()


def run_load(
    endpoints: Sequence[Endpoint],
    phase: Phase,
    clients: int,
    server_cpu: Callable[[], float | None],
    tick: Callable[[], None],
    tick_s: float = 0.5,
) -> LoadResult:
    """Upload ``phase`` with ``clients`` concurrent sessions taking frames from a shared counter.

    Client ``i`` logs in as ``endpoints[i % len(endpoints)]``.

    ``server_cpu`` reads the server's CPU seconds (before and after the uploads); ``tick`` is
    called every ``tick_s`` while the parent waits (memory sampling).
    """
    ctx = mp.get_context("fork")  # the children inherit the corpus without copying it
    next_index = ctx.Value("l", 0)
    ready = ctx.Barrier(clients + 1)
    start = ctx.Event()
    release = ctx.Event()
    results: Any = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                i,
                endpoints[i % len(endpoints)],
                phase,
                next_index,
                ready,
                start,
                results,
                release,
            ),
            name=f"ftp-client-{i}",
            daemon=True,
        )
        for i in range(clients)
    ]
    try:
        for p in procs:
            p.start()
        try:
            ready.wait(START_TIMEOUT_S + FTP_TIMEOUT_S)  # every session has tried to log in
        except threading.BrokenBarrierError:
            raise RuntimeError("FTP clients did not start") from None
        cpu_before = server_cpu()
        start.set()
        done: dict[int, WorkerResult] = {}
        next_tick = time.monotonic()
        while len(done) < clients:
            if time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + tick_s
            try:
                res = results.get(timeout=max(0.01, next_tick - time.monotonic()))
                done[res.worker] = res
            except queue.Empty:
                for i, p in enumerate(procs):
                    if i not in done and p.exitcode is not None:
                        done[i] = WorkerResult(i, errors=[f"client died ({p.exitcode})"])
        cpu_after = server_cpu()
        release.set()
        for p in procs:
            p.join(10)
    finally:
        release.set()
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(5)
    workers = [done[i] for i in range(clients)]
    started = [w for w in workers if w.end]
    wall = max(w.end for w in started) - min(w.start for w in started) if started else 0.0
    server_cpu_s = None
    if cpu_before is not None and cpu_after is not None:
        server_cpu_s = cpu_after - cpu_before
    return LoadResult(workers, wall, server_cpu_s)


# --------------------------------------------------------------------------------------------
# Verification

_TAG_RE = re.compile(re.escape(COMMENT_TAG) + rb" (\w+) ([\w.-]+)")


def _walk_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath, name)


def count_intact(root: Path, phase: Phase, run_id: str) -> int:
    """How many frames of ``phase`` are stored byte-for-byte somewhere under ``root``.

    Layout-agnostic: files are recognised by the COM segment each frame carries.
    """
    by_name = {f.name: f for f in phase.frames}
    sizes = {f.size for f in phase.frames}
    found: set[str] = set()
    for path in _walk_files(root):
        try:
            if path.is_symlink() or path.stat().st_size not in sizes:
                continue
            with path.open("rb") as fh:
                head = fh.read(64 * 1024)
                match = _TAG_RE.search(head)
                if not match or match.group(1).decode() != run_id:
                    continue
                frame = by_name.get(match.group(2).decode())
                if frame is None or frame.name in found:
                    continue
                data = head + fh.read()
        except OSError:
            continue
        if data == frame.to_bytes():
            found.add(frame.name)
    return len(found)
