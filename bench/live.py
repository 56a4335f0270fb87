"""Guest results page benchmark: time to first result, page weight, and live updates to open pages.

What it measures
    A real ``shutterbox up`` on loopback (cloud sync off, the local face index on its default
    workers) with one event; four base photos from ../shared/faces go up by FTP and are indexed
    before anything is timed.

    1. time to first result: ``--searches`` sequential page searches with obama-3.jpg
       (``POST /e/<code>/search`` with consent, then the 303 followed to the results page's HTML),
       POST to HTML p50/p95; the JSON API (``POST /api/events/<code>/search``), interleaved with
       them, is the anchor.
    2. page weight: bytes of the event page and of a results page (HTML with its CSS and script
       inline; the images are not counted) against the 30 KB target.
    3. live updates: ``--watchers`` watched searches (``watch=yes``) are opened; the box's process
       tree RSS before and after them (per watcher: the delta over the count, tiny and noisy beside
       the theoretical bytes of a held result, measured here with tracemalloc); one more watched
       search must be sent to ``?full=1`` (the cap ``guest.live_watchers_per_event`` is set to
       ``--watchers``). Then every page polls its ``.json`` as results.js does (3 s after each
       answer, random first phase, one HTTP client each), and ``--uploads`` new photos of the same
       person go up by FTP ``--every`` s apart. Reported: shutter (the STOR's 226) to the first poll
       that brings the photo to a page, p50/p95/max over pages x photos, how many arrived, the
       polls' own latency and the box's CPU while only polling. Anchor: the local index's own
       shutter to searchable for the same photos (received_at to searchable_local_at) and the
       box's status figures.
    The script prints figures; it never fails on timing (exit 1 only when a part could not run).

How to reproduce
    make bench-live                       # or: .venv/bin/python bench/live.py (~2-3 min)
    .venv/bin/python bench/live.py --json
    The box, the pollers and the uploads share the machine's CPUs.

Threads: the main thread drives the box (subprocess, CLI, httpx); the live part runs an asyncio
loop on it, with each FTP upload on a worker thread (asyncio.to_thread).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import ftplib
import io
import json
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _common import (
    FTP_ERRORS,
    HOST,
    ProcTree,
    fmt,
    free_range,
    log,
    log_problems,
    machine_info,
    pct,
    run_script,
    shutterbox_version,
    terminate,
    work_base,
)
from PIL import Image

from appliance.guest.results import Held, Hit

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "faces"
SHUTTERBOX = Path(sys.executable).parent / "shutterbox"
BASE_PHOTOS = ("obama-1.jpg", "biden-1.jpg", "hopper-1.jpg", "curie-couple.jpg")
SELFIE = "obama-3.jpg"
LIVE_SOURCES = ("obama-1.jpg", "obama-2.jpg")  # re-encoded so that each upload is a new file
START_TIMEOUT_S = 90.0
INDEX_TIMEOUT_S = 120.0
POLL_S = 3.0  # results.js: the next poll 3 s after an answer
POLL_RETRY_S = 10.0  # results.js: 10 s after a failed poll
TARGET_PAGE_BYTES = 30 * 1024
EMBEDDING_BYTES = 128 * 4  # float32
PHONES = "127.0.1."  # guests' phones: 127.0.1.10, .11, ... (each page its own address)
DATA_PHOTO = re.compile(r'data-photo="(\d+)"')
FAILURES: tuple[type[BaseException], ...] = (
    RuntimeError,
    httpx.HTTPError,
    subprocess.SubprocessError,
    *FTP_ERRORS,  # OSError among them
)


# --------------------------------------------------------------------------------------------
# the box


@dataclass
class Box:
    data: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    info: dict[str, Any]
    token: str = ""

    @property
    def web(self) -> str:
        return f"http://{HOST}:{self.info['web_port']}"

    @property
    def admin(self) -> str:
        return f"http://{HOST}:{self.info['admin_port']}"

    def cli(self, *args: str) -> Any:
        out = subprocess.run(
            [str(SHUTTERBOX), *args, "--data", str(self.data), "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return json.loads(out.stdout)

    def api(self, path: str, **params: str) -> Any:
        reply = httpx.get(
            f"{self.admin}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        reply.raise_for_status()
        return reply.json()

    def faces(self) -> dict[str, Any]:
        return dict(self.api("/api/status")["faces"])


@contextlib.contextmanager
def running_box(work: Path, watchers: int) -> Iterator[Box]:
    data = work / "data"
    data.mkdir(parents=True)
    low, high = free_range(40, [])
    env = {
        **os.environ,
        "SHUTTERBOX_FTP__HOST": HOST,
        "SHUTTERBOX_FTP__PORT": "0",
        "SHUTTERBOX_FTP__PASSIVE_PORTS": f"{low}-{high}",
        "SHUTTERBOX_WEB__HOST": HOST,
        "SHUTTERBOX_WEB__PORT": "0",
        "SHUTTERBOX_ADMIN__PORT": "0",
        "SHUTTERBOX_MDNS__ENABLED": "false",
        "SHUTTERBOX_STORAGE__RESERVE_MB": "64",
        "SHUTTERBOX_STORAGE__EVICT_BELOW_MB": "0",
        # every guest here is 127.0.0.1: lift the per-client limits; cap the watchers at the count
        "SHUTTERBOX_GUEST__SEARCHES_PER_MINUTE": "1000",
        "SHUTTERBOX_GUEST__CODE_ATTEMPTS_PER_HOUR": "1000",
        "SHUTTERBOX_GUEST__LIVE_WATCHERS_PER_EVENT": str(watchers),
    }
    log_file = (data / "box.log").open("wb")
    proc = subprocess.Popen(
        [str(SHUTTERBOX), "up", "--data", str(data)], env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    try:
        info_file = data / "run" / "box.json"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not info_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the box did not start: {(data / 'box.log').read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(0.3)
        box = Box(data, env, proc, json.loads(info_file.read_text()))
        box.token = str(box.cli("admin-token", "rotate")["token"])
        yield box
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log_file.close()


def wait_indexed(box: Box, timeout: float = INDEX_TIMEOUT_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        faces = box.faces()
        if faces["photos_pending"] == 0 and faces["in_flight"] == 0:
            return faces
        if time.monotonic() > deadline:
            raise RuntimeError(f"the face index did not catch up: {faces}")
        time.sleep(0.3)


def upload(box: Box, user: str, password: str, name: str, data: bytes) -> tuple[float, float]:
    """One camera upload (its own FTP session); (monotonic, wall) time of its 226."""
    with ftplib.FTP(timeout=30) as ftp:
        ftp.connect(HOST, int(box.info["ftp_port"]))
        ftp.login(user, password)
        reply = ftp.storbinary(f"STOR {name}", io.BytesIO(data))
        at = (time.monotonic(), time.time())
    if not reply.startswith("226"):
        raise RuntimeError(f"{name}: {reply}")
    return at


def variant(source: str, k: int) -> bytes:
    """A new file of the same picture: another JPEG quality and a slight crop."""
    image = Image.open(FACES / source).convert("RGB")
    w, h = image.size
    cut = 2 + k
    out = io.BytesIO()
    image.crop((cut, cut, w - cut, h - cut)).save(out, "JPEG", quality=80 + k)
    return out.getvalue()


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def _stats(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": None if not values else round(statistics.median(values), digits),
        "p95": None if not values else round(pct(values, 95) or 0.0, digits),
        "max": None if not values else round(max(values), digits),
    }


def steady_rss(tree: ProcTree, samples: int = 5) -> float:
    tree.wait_idle()
    values = []
    for _ in range(samples):
        values.append(tree.rss_mb())
        time.sleep(0.2)
    return statistics.median(values)


# --------------------------------------------------------------------------------------------
# 1-2. time to first result, page weight


def first_result(box: Box, event: str, selfie: bytes, searches: int) -> dict[str, Any]:
    files = {"selfie": ("me.jpg", selfie, "image/jpeg")}
    page_s: list[float] = []
    api_s: list[float] = []
    last_page = b""
    matches = 0
    with httpx.Client(base_url=box.web, timeout=60) as client:
        t0 = time.perf_counter()  # the first search loads the event's gallery: kept apart
        cold = client.post(f"/api/events/{event}/search", files=files)
        cold_s = time.perf_counter() - t0
        cold.raise_for_status()
        for _ in range(searches):
            t0 = time.perf_counter()
            reply = client.post(
                f"/e/{event}/search", files=files, data={"consent": "yes"}, follow_redirects=True
            )
            page_s.append(time.perf_counter() - t0)
            if reply.status_code != 200 or not reply.history or reply.history[0].status_code != 303:
                raise RuntimeError(f"page search: {reply.status_code} {reply.text[:300]}")
            last_page = reply.content
            t0 = time.perf_counter()
            answer = client.post(f"/api/events/{event}/search", files=files)
            api_s.append(time.perf_counter() - t0)
            answer.raise_for_status()
            matches = len(answer.json()["matches"])
        event_page = client.get(f"/e/{event}")
        event_page.raise_for_status()
    return {
        "cold_api_s": round(cold_s, 3),
        "page_s": _stats(page_s),
        "api_s": _stats(api_s),
        "matches": matches,
        "shown_on_page": len(DATA_PHOTO.findall(last_page.decode())),
        "event_page_bytes": len(event_page.content),
        "results_page_bytes": len(last_page),
    }


# --------------------------------------------------------------------------------------------
# 3. live updates


@dataclass
class Page:
    url: str  # the results page's .json
    address: str  # the phone's: each page polls from its own source address, as on the LAN
    have: list[int]
    first_seen: dict[int, float] = field(default_factory=dict)  # photo id -> monotonic time
    poll_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    watching: bool = True


def phone(i: int, same_address: bool) -> str:
    return HOST if same_address else f"{PHONES}{10 + i}"


def open_watchers(
    box: Box, event: str, selfie: bytes, count: int, same_address: bool
) -> tuple[list[Page], dict[str, Any]]:
    """``count`` watched searches, each from its phone's address, then one more that the cap
    turns away."""
    files = {"selfie": ("me.jpg", selfie, "image/jpeg")}
    pages: list[Page] = []
    watched_bytes = 0
    extra: dict[str, Any] = {}
    for i in range(count + 1):
        address = phone(i, same_address)
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(base_url=box.web, timeout=60, transport=transport) as client:
            reply = client.post(f"/e/{event}/search", files=files, data={"consent": "yes", "watch": "yes"})
            if reply.status_code != 303:
                raise RuntimeError(f"watched search: {reply.status_code} {reply.text[:300]}")
            where = reply.headers["location"]
            html = client.get(where)
            html.raise_for_status()
            if len(pages) < count:
                if 'data-poll="/e/' not in html.text:
                    raise RuntimeError(f"watcher {len(pages) + 1} is not watching: {where}")
                watched_bytes = len(html.content)
                shown = [int(found) for found in DATA_PHOTO.findall(html.text)]
                pages.append(Page(f"{where}.json", address, shown))
            else:
                extra = {
                    "redirect": re.sub(r"/r/[^?]+", "/r/<token>", where),
                    "full": where.endswith("?full=1"),
                    "page_says": re.sub(
                        r"<[^>]+>",
                        "",
                        next(iter(re.findall(r'<p[^>]*id="live-full"[^>]*>.*?</p>', html.text)), ""),
                    ),
                    "polls": 'data-poll=""' not in html.text,
                }
    return pages, {"watched_results_page_bytes": watched_bytes, "over_the_cap": extra}


async def poller(client: httpx.AsyncClient, page: Page, stop: asyncio.Event, arrived: asyncio.Event) -> None:
    """One open results page, as results.js polls: 3 s after each answer, 10 s after a failure."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), random.uniform(0, POLL_S))
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            reply = await client.get(page.url, params={"have": ",".join(map(str, page.have))})
            reply.raise_for_status()
            answer = reply.json()
        except httpx.HTTPStatusError as exc:
            page.errors[str(exc.response.status_code)] += 1
            wait = POLL_RETRY_S
        except (httpx.HTTPError, ValueError) as exc:
            page.errors[type(exc).__name__] += 1
            wait = POLL_RETRY_S
        else:
            now = time.monotonic()
            page.poll_s.append(now - t0)
            for match in answer["new"]:
                photo = int(match["photo_id"])
                page.first_seen.setdefault(photo, now)
                page.have.insert(0, photo)
                arrived.set()
            page.watching = bool(answer["watching"])
            wait = POLL_S
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)


async def photo_id(box: Box, event: str, name: str) -> int:
    for _ in range(100):
        photos = await asyncio.to_thread(box.api, "/api/photos", event=event)
        for photo in photos:
            if photo["original_name"] == name:
                return int(photo["id"])
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} is not in the event")


async def live(
    box: Box,
    tree: ProcTree,
    event: str,
    key: tuple[str, str],
    pages: list[Page],
    args: argparse.Namespace,
) -> dict[str, Any]:
    stop, arrived = asyncio.Event(), asyncio.Event()
    clients = [
        httpx.AsyncClient(
            base_url=box.web, timeout=30, transport=httpx.AsyncHTTPTransport(local_address=p.address)
        )
        for p in pages
    ]
    tasks = [asyncio.create_task(poller(c, p, stop, arrived)) for c, p in zip(clients, pages, strict=True)]
    uploads: list[dict[str, Any]] = []
    try:
        await asyncio.sleep(POLL_S)  # every page has polled once
        cpu0, t0 = tree.cpu_s(), time.monotonic()
        await asyncio.sleep(args.quiet_polling)
        cpu1, t1 = tree.cpu_s(), time.monotonic()
        polls_quiet = sum(len(p.poll_s) for p in pages)
        log(f"live: {len(pages)} pages polling; {args.uploads} uploads {args.every:g} s apart ...")
        for k in range(args.uploads):
            name = f"LIVE_{k + 1:03d}.JPG"
            data = variant(LIVE_SOURCES[k % len(LIVE_SOURCES)], k)
            at, wall = await asyncio.to_thread(upload, box, *key, name, data)
            uploads.append(
                {"name": name, "t_226": at, "wall_226": wall, "id": await photo_id(box, event, name)}
            )
            log(f"  {name}: 226 (photo {uploads[-1]['id']})")
            if k < args.uploads - 1:
                await asyncio.sleep(max(0.0, at + args.every - time.monotonic()))
        deadline = time.monotonic() + args.tail
        ids = [u["id"] for u in uploads]
        while not all(i in p.first_seen for p in pages for i in ids) and time.monotonic() < deadline:
            arrived.clear()  # a poller sets it when a page gets a photo
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(arrived.wait(), deadline - time.monotonic())
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.aclose()
    quiet_cores = None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / (t1 - t0)
    return {
        "uploads": uploads,
        "quiet_polling": {
            "seconds": round(t1 - t0, 1),
            "polls": polls_quiet,
            "box_cpu_cores": None if quiet_cores is None else round(quiet_cores, 3),
        },
    }


def analyse_live(
    pages: Sequence[Page], uploads: Sequence[dict[str, Any]], photos: list[dict[str, Any]]
) -> dict[str, Any]:
    delays = [p.first_seen[u["id"]] - u["t_226"] for p in pages for u in uploads if u["id"] in p.first_seen]
    rows = {int(p["id"]): p for p in photos}
    index_s = []  # the box's own shutter to searchable, same photos
    for u in uploads:
        row = rows.get(u["id"], {})
        if row.get("searchable_local_at") and row.get("received_at"):
            index_s.append(_epoch(row["searchable_local_at"]) - _epoch(row["received_at"]))
    polls = [s for p in pages for s in p.poll_s]
    return {
        "pairs": len(pages) * len(uploads),
        "arrived": len(delays),
        "shutter_to_page_s": _stats(delays, 2),
        "index_shutter_to_searchable_s": _stats(index_s, 2),
        "poll_s": _stats(polls),
        "polls": len(polls),
        "poll_errors": dict(sum((p.errors for p in pages), Counter[str]())),
        "pages_still_watching": sum(p.watching for p in pages),
    }


def grown_page(box: Box, page: Page, first_bytes: int, first_tiles: int) -> dict[str, Any]:
    """A watched results page again once the live photos joined it: bytes a photo adds to it."""
    transport = httpx.HTTPTransport(local_address=page.address)
    with httpx.Client(base_url=box.web, timeout=30, transport=transport) as client:
        html = client.get(page.url.removesuffix(".json"))
    html.raise_for_status()
    tiles = len(DATA_PHOTO.findall(html.text))
    per_tile = (len(html.content) - first_bytes) / (tiles - first_tiles) if tiles > first_tiles else None
    return {
        "bytes": len(html.content),
        "tiles": tiles,
        "bytes_per_tile": None if per_tile is None else round(per_tile),
        "tiles_at_target": None
        if not per_tile
        else first_tiles + int((TARGET_PAGE_BYTES - first_bytes) / per_tile),
    }


def held_bytes(hits: int, count: int = 2000) -> float:
    """Bytes a watched result holds in the box (Held, its token, hits, the float32 embedding and
    its slot in the book), by tracemalloc over ``count`` of them."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    book: OrderedDict[str, Held] = OrderedDict()
    now = time.monotonic()
    for i in range(count):
        held = Held(
            secrets.token_urlsafe(16),
            "abcdefgh",
            now,
            [
                Hit(100_000 + i * 64 + j, 0.5 + j / 1000 + i / 1e7, "local", 200_000 + i * 64 + j)
                for j in range(hits)
            ],
            "local",
            False,
            1,
            watch_until=now + 7200,
            embedding=np.random.default_rng(i).random(128, dtype=np.float32),
        )
        book[held.token] = held
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


# --------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    selfie = (FACES / SELFIE).read_bytes()
    result: dict[str, Any] = {}
    with running_box(work, args.watchers) as box:
        tree = ProcTree(box.proc.pid)
        event = str(box.cli("event", "create", "Bench live")["code"])
        key = box.cli("key", "create", "--event", event, "--camera", "cam1")
        user, password = str(key["username"]), str(key["password"])
        log(f"box up (pid {box.proc.pid}); event {event}; uploading {len(BASE_PHOTOS)} base photos ...")
        for name in BASE_PHOTOS:
            upload(box, user, password, name.upper(), (FACES / name).read_bytes())
        base = wait_indexed(box)
        result["base"] = {"photos": base.get("photos_indexed"), "workers": base.get("workers")}
        log(f"indexed; {args.searches} page searches and {args.searches} API searches ...")
        result["first_result"] = first_result(box, event, selfie, args.searches)
        rss_before = steady_rss(tree)
        log(f"opening {args.watchers} watched results (+1 over the cap) ...")
        pages, opened = open_watchers(box, event, selfie, args.watchers, args.same_address)
        rss_after = steady_rss(tree)
        hits = result["first_result"]["matches"]
        result["memory"] = {
            "rss_before_mb": round(rss_before, 1),
            "rss_after_mb": round(rss_after, 1),
            "per_watcher_kb": round((rss_after - rss_before) * 1024 / args.watchers, 1),
            "held_bytes_per_watcher": round(held_bytes(hits)),
            "held_bytes_per_hit": round((held_bytes(hits + 10) - held_bytes(hits)) / 10),
            "held_hits": hits,
            "embedding_bytes": EMBEDDING_BYTES,
        }
        result["pages"] = opened
        watched = asyncio.run(live(box, tree, event, (user, password), pages, args))
        end = box.faces()
        photos = box.api("/api/photos", event=event)
        result["live"] = analyse_live(pages, watched["uploads"], photos) | {
            "quiet_polling": watched["quiet_polling"],
            "box_status_searchable_s": [end.get("searchable_p50_s"), end.get("searchable_p95_s")],
            "box_status_photos": end.get("photos_indexed"),
            "rss_end_mb": round(tree.rss_mb(), 1),
        }
        result["pages"]["grown"] = grown_page(box, pages[0], opened["watched_results_page_bytes"], hits)
        result["problems"] = log_problems(box.data / "box.log")
    return result


def _spread(stats: dict[str, Any], spec: str) -> str:
    return "  ".join(f"{k} {fmt(stats[k], spec)} s" for k in ("p50", "p95", "max"))


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    m = result["machine"]
    fr, mem, pg, lv = result["first_result"], result["memory"], result["pages"], result["live"]
    print(
        f"machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['ram_gb']} GB, Linux {m['kernel']},"
        f" Python {m['python']}; load {result['load_before']} before, {result['load_after']} after;"
        f" shutterbox {result['version']}; {result['seconds']:.0f} s"
    )
    print(f"box: {result['base']['photos']} base photos indexed, faces.workers {result['base']['workers']}")
    print()
    print(f"time to first result ({args.searches} sequential searches, {SELFIE}, {fr['matches']} matches):")
    page, api = fr["page_s"], fr["api_s"]
    print(f"  page: POST + 303 + results HTML  {_spread(page, '.3f')}")
    print(f"  anchor: JSON API search         {_spread(api, '.3f')}")
    print(f"  (first, cold API search: {fr['cold_api_s']:.3f} s)")
    print()
    print(f"page weight (HTML with inline CSS and script, before images; target < {TARGET_PAGE_BYTES:,} B):")
    for label, size in (
        ("event page", fr["event_page_bytes"]),
        (f"results page, {fr['shown_on_page']} photos", fr["results_page_bytes"]),
        ("results page, watching (+ results.js)", pg["watched_results_page_bytes"]),
        (f"the same page later, {pg['grown']['tiles']} photos", pg["grown"]["bytes"]),
    ):
        verdict = "under" if size < TARGET_PAGE_BYTES else "OVER"
        print(f"  {label:<40} {size:>7,} B  {size / TARGET_PAGE_BYTES:5.0%} of target ({verdict})")
    print(
        f"  each photo adds {fmt(pg['grown']['bytes_per_tile'], ',.0f')} B: a results page reaches the"
        f" target at ~{fmt(pg['grown']['tiles_at_target'], ',.0f')} photos"
    )
    print()
    print(f"memory of {args.watchers} watchers (box process tree RSS, median of 5 samples once idle):")
    print(
        f"  before {mem['rss_before_mb']:.1f} MB, after {mem['rss_after_mb']:.1f} MB:"
        f" {mem['per_watcher_kb']:+.1f} KB a watcher (noise: RSS moves by MBs on its own)"
    )
    print(
        f"  theoretical: {mem['held_bytes_per_watcher']:,} B a watcher (tracemalloc of Held with"
        f" {mem['held_hits']} hits; the embedding is {mem['embedding_bytes']} B of it;"
        f" each further hit, a live one too, {mem['held_bytes_per_hit']} B)"
    )
    cap = pg["over_the_cap"]
    print(
        f"watcher cap (guest.live_watchers_per_event={args.watchers}): watched search #{args.watchers + 1}"
        f" -> 303 {cap['redirect']} ({'full' if cap['full'] else 'NOT full'}); page polls: {cap['polls']};"
        f" page says: {cap['page_says']!r}"
    )
    print()
    quiet = lv["quiet_polling"]
    print(
        f"live updates: {args.watchers} open pages polling every {POLL_S:g} s"
        f" ({'all from ' + HOST if args.same_address else 'each from its own address'});"
        f" {args.uploads} new photos by FTP {args.every:g} s apart:"
    )
    d, ix = lv["shutter_to_page_s"], lv["index_shutter_to_searchable_s"]
    print(
        f"  shutter (226) to page  p50 {fmt(d['p50'], '.2f')} s  p95 {fmt(d['p95'], '.2f')} s"
        f"  max {fmt(d['max'], '.2f')} s; arrived {lv['arrived']} of {lv['pairs']} (page, photo) pairs"
    )
    print(
        f"  anchor: local index shutter to searchable, same photos  p50 {fmt(ix['p50'], '.2f')} s"
        f"  p95 {fmt(ix['p95'], '.2f')} s  max {fmt(ix['max'], '.2f')} s"
    )
    st = lv["box_status_searchable_s"]
    print(f"  box status: searchable p50 {st[0]} s, p95 {st[1]} s over its {lv['box_status_photos']} photos")
    pl = lv["poll_s"]
    print(
        f"  polls: {lv['polls']} answered, p50 {fmt(pl['p50'], '.3f')} s, p95 {fmt(pl['p95'], '.3f')} s,"
        f" errors {lv['poll_errors'] or 0}; box CPU while only polling {fmt(quiet['box_cpu_cores'], '.3f')}"
        f" cores ({quiet['polls']} polls in {quiet['seconds']} s);"
        f" pages still watching {lv['pages_still_watching']}"
    )
    print(f"  box RSS at the end {lv['rss_end_mb']:.1f} MB")
    for problem in result["problems"]:
        print(problem)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--searches", type=int, default=30, help="sequential page (and API) searches")
    parser.add_argument("--watchers", type=int, default=50, help="open watched results pages (and the cap)")
    parser.add_argument("--uploads", type=int, default=6, help="new photos of the guest during the live part")
    parser.add_argument("--every", type=float, default=8.0, help="seconds between those uploads")
    parser.add_argument("--quiet-polling", type=float, default=9.0, help="seconds of polling alone first")
    parser.add_argument("--tail", type=float, default=20.0, help="seconds to wait for the last photo")
    parser.add_argument(
        "--same-address",
        action="store_true",
        help=f"every page from {HOST} (as behind one NAT) instead of its own {PHONES}x address",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, terminate)
    work = Path(tempfile.mkdtemp(prefix="bench-live-", dir=work_base()))
    started = time.monotonic()
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        result = run(args, work)
    except FAILURES as exc:
        log(f"live benchmark failed: {exc}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result |= {
        "machine": machine_info(),
        "version": shutterbox_version(),
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "seconds": time.monotonic() - started,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result, args)
    return 0


if __name__ == "__main__":
    run_script(main)
