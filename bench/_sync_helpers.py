"""Pieces of ``bench/sync.py``: camera corpus, the emulated uplink, camera threads, samplers.

Nothing here prints figures; ``sync.py`` runs the benchmark and reports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ftplib
import hashlib
import io
import logging
import math
import random
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from _common import FTP_ERRORS, log, pct, round_or_none
from _ftpload import grain_for as _grain_for
from _ftpload import noise_image as _noise_image
from moto.server import ThreadedMotoServer
from PIL import Image, ImageDraw

from appliance.control.client import ControlClient
from appliance.proxy import make_proxy
from tests.fakes.faultproxy import Direction, FaultProxy, Pacer
from tests.fakes.rekognition import FakeRekognition, declaration

MB = 1_000_000
WIDTH, HEIGHT = 3000, 2000  # a 6 MP camera frame
JPEG_QUALITY = 95  # a camera's "fine"
PEOPLE = [f"guest{i:02d}" for i in range(1, 11)]
BUCKET = "bench-sync"
REGION = "us-east-1"


# --------------------------------------------------------------------------------------------
# Corpus: camera JPEGs with declared faces, every frame distinct


@dataclass(frozen=True)
class Base:
    """An encoded frame without its unique COM segment; ``split`` is where that goes."""

    data: bytes
    split: int
    faces: tuple[dict[str, Any], ...]
    proxy_size: int  # what appliance.proxy.make_proxy makes of it (the box's own code)


@dataclass(frozen=True)
class Frame:
    index: int
    camera: int
    name: str
    base: Base
    comment: bytes  # a COM segment naming the run and the frame
    sha256: str
    size: int

    def data(self) -> bytes:
        return self.base.data[: self.base.split] + self.comment + self.base.data[self.base.split :]


def segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def after_app_segments(data: bytes) -> int:
    pos = 2
    while data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return pos


def _exif(seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "shutterbox-bench"  # Make
    exif[0x0110] = "sync"  # Model
    exif.get_ifd(0x8769)[0x9003] = "2025:06:14 18:30:00"  # DateTimeOriginal
    exif[0xA420] = f"{seed:032x}"  # ImageUniqueID
    return exif.tobytes()


FACE_SIDES = (70, 261)  # px in the 3000 px frame: 48-178 px in the 2048 px proxy


def _faces(rng: random.Random) -> list[dict[str, Any]]:
    """0-5 faces of the known guests, 70-260 px in the frame (48-178 px in the box's 2048 px
    proxy: some under ``faces.min_face_px``, many near it). The declaration names the frame's
    size, so the fake scales the boxes to whatever proxy it is sent."""
    people = rng.sample(PEOPLE, rng.choice((0, 1, 1, 2, 2, 3, 4, 5)))
    faces, x = [], 60
    for person in people:
        side = rng.randrange(*FACE_SIDES)
        faces.append({"person": person, "box": [x, rng.randrange(60, HEIGHT - side - 60), side, side]})
        x += side + rng.randrange(40, 90)
    return faces


def make_bases(count: int, original_mb: float, work: Path) -> list[Base]:
    sigma = _grain_for(original_mb * MB / (WIDTH * HEIGHT))
    bases = []
    for i in range(count):
        rng = random.Random(7000 + i)
        faces = _faces(rng)
        img = _noise_image(WIDTH, HEIGHT, sigma, seed=7000 + i)
        draw = ImageDraw.Draw(img)
        for face in faces:
            x, y, w, h = face["box"]
            draw.ellipse((x, y, x + w, y + h), fill=(224, 172, 105), outline=(0, 0, 0))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=JPEG_QUALITY, exif=_exif(7000 + i))
        encoded = out.getvalue()
        split = after_app_segments(encoded)
        # The face declaration must be the *last* COM segment: the box's proxy keeps Pillow's
        # info["comment"], which is the last one, and the fake Rekognition reads it from the proxy.
        declared = segment(0xFE, declaration(faces, (WIDTH, HEIGHT)).encode())
        data = encoded[:split] + declared + encoded[split:]
        src = work / f"base{i}.jpg"
        src.write_bytes(data)
        proxy = make_proxy(src, work / f"base{i}-proxy.jpg")
        bases.append(Base(data, split, tuple(faces), proxy.size))
    return bases


def make_frames(bases: Sequence[Base], frames: int, cameras: int, run_id: str) -> list[Frame]:
    out = []
    for i in range(frames):
        camera = i % cameras
        name = f"C{camera + 1}_{i // cameras:05d}.JPG"
        base = bases[i % len(bases)]
        comment = segment(0xFE, f"SBBENCH-SYNC {run_id} {name}".encode())
        data = base.data[: base.split] + comment + base.data[base.split :]
        out.append(Frame(i, camera, name, base, comment, hashlib.sha256(data).hexdigest(), len(data)))
    return out


# --------------------------------------------------------------------------------------------
# The cloud behind one emulated uplink


class _SharedPacer(Pacer):
    """FaultProxy's token bucket, made safe to share between two proxies' event loops.

    Both loops use ``time.monotonic`` (asyncio's default clock), so one virtual timeline serves
    both: S3 and Rekognition traffic queue on the same 10 Mbit/s, as on one venue uplink."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def set(self, bits_per_second: float | None, now: float) -> None:
        with self._lock:
            super().set(bits_per_second, now)

    def reserve(self, n: int, now: float) -> float:
        with self._lock:
            return super().reserve(n, now)


class Cloud:
    """moto's S3 server (versioned bucket) and the fake Rekognition, each behind a FaultProxy;
    the two proxies share one bandwidth budget per direction and get the same faults."""

    def __init__(self) -> None:
        self.moto: ThreadedMotoServer | None = None
        self.rekognition: FakeRekognition | None = None
        self.s3_link: FaultProxy | None = None
        self.rek_link: FaultProxy | None = None
        self.s3_url = ""
        self.s3: Any = None

    def start(self) -> Cloud:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        self.s3_url = f"http://{host}:{port}"
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        self.s3.create_bucket(Bucket=BUCKET)
        # Every completed PUT makes a version: a repeated upload shows as a second version.
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        # Rekognition reads S3Object images straight from the bucket (inside AWS, not over the venue link)
        self.rekognition = FakeRekognition(s3=self.s3).start()
        rek_port = int(self.rekognition.url.rsplit(":", 1)[1])
        self.s3_link = FaultProxy((host, int(port)))
        self.rek_link = FaultProxy(("127.0.0.1", rek_port))
        shared: dict[Direction, Pacer] = {"up": _SharedPacer(), "down": _SharedPacer()}
        for link in self.links:
            assert isinstance(link._pacers, dict), "FaultProxy internals changed"
            link._pacers = shared
            link.start()
        return self

    @property
    def links(self) -> list[FaultProxy]:
        return [link for link in (self.s3_link, self.rek_link) if link is not None]

    def emulate(self, mbit: float, latency_s: float) -> None:
        assert self.s3_link is not None
        self.s3_link.bandwidth(mbit * 1e6)  # the pacers are shared: once sets both
        for link in self.links:
            link.latency(latency_s)

    def blackout(self, seconds: float) -> None:
        for link in self.links:
            link.blackout(seconds)

    def heal(self) -> None:
        for link in self.links:
            link.heal()

    def bytes_up(self) -> tuple[int, int]:
        assert self.s3_link is not None
        assert self.rek_link is not None
        return self.s3_link.bytes_up, self.rek_link.bytes_up

    def versions(self, prefix: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=prefix):
            found += page.get("Versions", [])
        return found

    def stop(self) -> None:
        for link in self.links:
            with contextlib.suppress(Exception):
                link.stop()
        if self.rekognition is not None:
            with contextlib.suppress(Exception):
                self.rekognition.stop()
        if self.moto is not None:
            with contextlib.suppress(Exception):
                self.moto.stop()


class BlackoutSchedule(threading.Thread):
    """Blackouts at ``t0 + first``, then every ``every`` seconds, until stopped."""

    def __init__(self, cloud: Cloud, t0: float, first: float, every: float, seconds: float) -> None:
        super().__init__(name="blackouts", daemon=True)
        self.cloud, self.t0, self.first, self.every, self.seconds = cloud, t0, first, every, seconds
        self.windows: list[list[float]] = []  # [wall start, wall end]
        self._stop_event = threading.Event()

    def run(self) -> None:
        if self.seconds <= 0:
            return
        due = self.t0 + self.first
        while not self._stop_event.wait(max(0.0, due - time.monotonic())):
            start = time.time()
            self.cloud.blackout(self.seconds)
            self.windows.append([start, start + self.seconds])
            log(f"  blackout #{len(self.windows)}: link down for {self.seconds:g} s")
            due += self.every if self.every > 0 else math.inf

    def stop(self) -> None:
        """Stop scheduling; a blackout in progress ends now (the caller heals the link)."""
        self._stop_event.set()
        self.join(10)
        now = time.time()
        for window in self.windows:
            window[1] = min(window[1], now)


# --------------------------------------------------------------------------------------------
# Cameras


@dataclass
class Shot:
    frame: Frame
    t_stor: float | None = None  # wall clock, STOR sent
    t_226: float | None = None  # wall clock, 226 received
    late_s: float = 0.0  # how far behind its schedule the STOR went out
    error: str | None = None


def _connect(port: int, user: str, password: str) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=120)
    ftp.connect("127.0.0.1", port)
    ftp.login(user, password)
    return ftp


def run_camera(
    port: int,
    user: str,
    password: str,
    shots: Sequence[Shot],
    t0: float,
    period: float,
    offset: float,
    stop: threading.Event,
) -> None:
    """One camera: a persistent FTP session, one STOR every ``period`` s by the clock."""
    ftp: ftplib.FTP | None = None
    try:
        for k, shot in enumerate(shots):
            due = t0 + offset + k * period
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            shot.late_s = max(0.0, time.monotonic() - due)
            try:
                if ftp is None:
                    ftp = _connect(port, user, password)
                shot.t_stor = time.time()
                reply = ftp.storbinary(f"STOR {shot.frame.name}", io.BytesIO(shot.frame.data()))
                if reply.startswith("226"):
                    shot.t_226 = time.time()
                else:
                    shot.error = reply
            except FTP_ERRORS as exc:
                shot.error = f"{type(exc).__name__}: {exc}"
                with contextlib.suppress(Exception):
                    if ftp is not None:
                        ftp.close()
                ftp = None
    finally:
        if ftp is not None:
            with contextlib.suppress(Exception):
                ftp.quit()


# --------------------------------------------------------------------------------------------
# Sampling while it runs


@dataclass
class Sample:
    t: float  # wall clock
    s3_up: int
    rek_up: int
    rss_mb: float


@dataclass
class StatusSample:
    t: float
    uplink: str
    jobs: dict[str, int]
    counters: dict[str, int]
    link: dict[str, Any]  # the box's measured link and its last cloud proxy choice


class Sampler(threading.Thread):
    """Link counters and the box's RSS every 0.5 s; the box's sync status every 2 s."""

    def __init__(self, cloud: Cloud, data_dir: Path, rss: Callable[[], float]) -> None:
        super().__init__(name="sampler", daemon=True)
        self.cloud, self.data_dir, self.rss = cloud, data_dir, rss
        self.samples: list[Sample] = []
        self.status: list[StatusSample] = []
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with ControlClient(self.data_dir, timeout=10) as client:
            tick = 0
            while not self._halt.is_set():
                s3_up, rek_up = self.cloud.bytes_up()
                self.samples.append(Sample(time.time(), s3_up, rek_up, self.rss()))
                if tick % 4 == 0:
                    try:
                        cloud = client.request("GET", "/api/status")["cloud"]
                        self.status.append(
                            StatusSample(
                                time.time(),
                                cloud["uplink"],
                                cloud["jobs"],
                                cloud["counters"],
                                cloud.get("link", {}),
                            )
                        )
                    except Exception as exc:  # a slow answer must not end the sampling
                        self.errors.append(repr(exc))
                tick += 1
                self._halt.wait(0.5)

    def stop(self) -> None:
        self._halt.set()
        self.join(15)

    def up_at(self, t: float) -> tuple[float, float]:
        """(S3, Rekognition) bytes up at wall time ``t``, interpolated between samples."""
        before = [s for s in self.samples if s.t <= t]
        after = [s for s in self.samples if s.t > t]
        if not before:
            return 0.0, 0.0
        a = before[-1]
        if not after:
            return float(a.s3_up), float(a.rek_up)
        b = after[0]
        f = (t - a.t) / (b.t - a.t)
        return a.s3_up + f * (b.s3_up - a.s3_up), a.rek_up + f * (b.rek_up - a.rek_up)

    def status_at(self, t: float) -> StatusSample | None:
        before = [s for s in self.status if s.t <= t]
        return before[-1] if before else None


# --------------------------------------------------------------------------------------------
# Small things


def iso_ts(text: str) -> float:
    """The box's ISO 8601 UTC stamp (``...+00:00``) as a POSIX timestamp."""
    stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


_UPLINK_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) WARNING .*uplink (\w+) -> (\w+)")


def uplink_transitions(log_text: str) -> list[tuple[float, str, str]]:
    """(wall time, from, to) of every uplink state change in the box's log (local-time stamps)."""
    found = []
    for line in log_text.splitlines():
        m = _UPLINK_RE.match(line)
        if m:
            stamp = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            found.append((stamp.timestamp(), m.group(2), m.group(3)))
    return found


def latency_stats(values: Sequence[float]) -> dict[str, Any]:
    """p50/p95/max/mean in seconds; censored values (not searchable in time) are +inf."""
    finite = [v for v in values if not math.isinf(v)]
    return {
        "photos": len(values),
        "not_searchable_in_time": len(values) - len(finite),
        "p50_s": round_or_none(pct(values, 50)),
        "p95_s": round_or_none(pct(values, 95)),
        "max_s": round_or_none(max(values)) if values else None,
        "mean_s": round_or_none(statistics.mean(finite)) if finite and len(finite) == len(values) else None,
    }


BOX_UPLOAD_MBIT = 400  # the box's own cap, far above the emulated link (the link is the bottleneck)


def cloud_box_settings(
    cloud: Cloud,
    *,
    workers: int | None = None,
    proxy_long_edge: int | None = None,
    rekognition_tps: float | None = None,
) -> dict[str, str]:
    """The box's settings to sync to ``cloud``'s moto S3 and fake Rekognition through its links."""
    assert cloud.s3_link is not None
    assert cloud.rek_link is not None
    settings = {
        "cloud__bucket": BUCKET,
        "cloud__s3_endpoint_url": cloud.s3_link.url(),
        "cloud__rekognition_endpoint_url": cloud.rek_link.url(),
        "cloud__access_key_id": "test",
        "cloud__secret_access_key": "test",
        "cloud__upload_mbit": str(BOX_UPLOAD_MBIT),
    }
    if workers:
        settings["cloud__workers"] = str(workers)
    if proxy_long_edge:
        settings["cloud__proxy_long_edge"] = str(proxy_long_edge)
    if rekognition_tps:
        settings["cloud__rekognition_tps"] = str(rekognition_tps)
    return settings


def work_dir(base: Path | None = None) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="sbbench-sync-", dir=base)
