"""The cloud proxy sized to the link, in process: the link meter (busy time, round trips left
out), the chooser (budget, bounds), the cloud proxy's bytes (deterministic, declaration kept),
the claim order (fresh newest first, backlog oldest first, originals last) and the choice
recorded per photo before its upload (a retry sends the same bytes whatever the link does).

A real Store on a real SQLite file for the queue; no cloud (nothing here reaches the network)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from appliance.config import CloudSettings
from appliance.layout import Layout
from appliance.proxy import make_proxy
from appliance.store.records import LandedFrame
from appliance.store.store import Store
from appliance.store.syncqueue import SyncQueue
from appliance.sync.cloudproxy import (
    LINK_SHARE,
    Choice,
    SizeModel,
    budget,
    choose,
    floor_edge,
    ladder,
    make_cloud_proxy,
)
from appliance.sync.linkrate import LinkMeter
from appliance.sync.service import SyncService
from tests.fakes.rekognition import DeclaredFaces, make_face_jpeg

KB = 1000

# --- the link meter ------------------------------------------------------------------------------


def test_idle_time_between_transfers_is_not_counted() -> None:
    """A photo every 2 s on a 1.25 MB/s link: each 250 kB PUT takes 0.2 s on the link plus the
    answer's round trip; the link is idle most of the time, and the meter still says 1.25 MB/s."""
    meter = LinkMeter()
    meter.rtt(0.3, at=0.0)
    for i in range(10):
        start = 1.0 + 2.0 * i
        meter.transfer(250 * KB, start, start + 0.2 + 0.3)
    assert meter.rate(now=21.0) == pytest.approx(1_250_000, rel=0.01)


def test_overlapping_transfers_share_the_link_once() -> None:
    """Eight PUTs in flight at once over 1.6 s carry 2 MB: 1.25 MB/s, not eight times that."""
    meter = LinkMeter()
    meter.rtt(0.3, at=0.0)
    for i in range(8):
        meter.transfer(250 * KB, 1.0 + 0.2 * i, 1.0 + 0.2 * (i + 1) + 0.3)
    assert meter.rate(now=3.0) == pytest.approx(1_250_000, rel=0.01)


def test_round_trips_are_taken_from_the_probe_and_a_100_continue_counts_two() -> None:
    meter = LinkMeter()
    meter.rtt(0.5, at=0.0)
    meter.rtt(0.3, at=1.0)  # the fastest seen: the path's own round trip (queueing only adds)
    assert meter.base_rtt(now=2.0) == pytest.approx(0.3)
    meter.transfer(1_000 * KB, 2.0, 2.0 + 2 * 0.3 + 1.0, waits=2)
    assert meter.rate(now=4.0) == pytest.approx(1_000_000, rel=0.01)


def test_a_transfer_that_waited_out_a_blackout_says_nothing_about_the_link() -> None:
    """A PUT in flight when the link went away finishes 30 s later; the probe that got no answer
    meanwhile marks the outage, and that PUT is left out (it would make 1.25 MB/s look like 50 kB/s)."""
    meter = LinkMeter()
    meter.rtt(0.3, at=0.0)
    for i in range(8):
        meter.transfer(250 * KB, 1.0 + 0.2 * i, 1.0 + 0.2 * (i + 1) + 0.3)
    meter.transfer(250 * KB, 3.0, 33.5)  # stalled through a 30 s blackout
    meter.outage(6.0, 11.0)  # the probe's HEAD timed out
    assert meter.rate(now=40.0) == pytest.approx(1_250_000, rel=0.01)


def test_nothing_known_until_enough_was_seen_and_old_transfers_age_out() -> None:
    meter = LinkMeter(window=60.0)
    meter.transfer(100 * KB, 0.0, 0.5)
    assert meter.rate(now=1.0) is None, "100 kB say little about a link"
    meter.transfer(8 * KB, 1.0, 1.1)  # headers-sized: round trips, not bandwidth
    for i in range(5):
        meter.transfer(200 * KB, 2.0 + i, 2.5 + i)
    assert meter.rate(now=8.0) == pytest.approx(1_100_000 / 3.0, rel=0.01)
    assert meter.rate(now=200.0) is None, "the last minutes only"


# --- the choice ----------------------------------------------------------------------------------


def test_the_floor_keeps_the_smallest_searchable_face_at_40_px() -> None:
    assert floor_edge(2048, 60) == 1366  # 60 px in 2048 -> 40.02 px in 1366
    assert floor_edge(2048, 80) == 1024
    assert floor_edge(2048, 200) == 410  # a photo whose smallest face is large
    assert floor_edge(2048, 20) == 2048  # never above the local proxy
    assert floor_edge(2048, 1000) == 256  # nor under the smallest proxy the box makes
    for face in (60, 61, 77, 80, 133):
        edge = floor_edge(2048, face)
        assert face * edge / 2048 >= 40


def test_the_budget_fits_the_photos_shot_into_70_percent_of_the_link() -> None:
    link = 1_250_000  # 10 Mbit/s
    assert budget(link, 4.0) == pytest.approx(LINK_SHARE * link / 4 - 3000)
    assert budget(None, 4.0) is None, "nothing measured: no limit"
    assert budget(link, 0.0) is None, "nothing shot: no limit"


def test_choose_takes_the_best_that_fits_within_the_bounds() -> None:
    model = SizeModel()
    kwargs = {"local_bytes": 550 * KB, "local_edge": 2048, "max_edge": 2048, "floor": 1366, "model": model}
    assert choose(None, **kwargs) == Choice(2048, 85), "no budget: the local proxy as it is"
    assert choose(600 * KB, **kwargs) == Choice(2048, 85)
    assert choose(450 * KB, **kwargs) == Choice(2048, 75), "quality before size"
    small = choose(215 * KB, **kwargs)
    assert small.quality == 75 and 1366 <= small.long_edge < 2048
    assert model.estimate(550 * KB, 2048, small) <= 215 * KB
    assert choose(10 * KB, **kwargs) == Choice(1366, 60), "the floor holds when nothing fits"
    assert choose(None, **{**kwargs, "max_edge": 1600}) == Choice(1600, 85), "cloud.proxy_long_edge caps it"
    steps = ladder(2048, 1366)
    assert steps[0] == Choice(2048, 85) and steps[-1] == Choice(1366, 60)
    assert all(1366 <= c.long_edge <= 2048 for c in steps)


def test_the_size_model_learns_from_the_proxies_made() -> None:
    model = SizeModel()
    choice = Choice(1400, 75)
    estimate = model.estimate(500 * KB, 2048, choice)
    for _ in range(20):
        model.learn(model.estimate(500 * KB, 2048, choice), round(estimate * 1.3))
    assert model.estimate(500 * KB, 2048, choice) == pytest.approx(estimate * 1.3, rel=0.02)


# --- the cloud proxy's bytes -----------------------------------------------------------------------


@pytest.fixture
def local_proxy(tmp_path: Path) -> Path:
    faces = [{"person": "ann", "box": [300, 400, 90, 110]}, {"person": "bo", "box": [1500, 600, 200, 240]}]
    original = tmp_path / "IMG_0001.JPG"
    original.write_bytes(make_face_jpeg(3000, 2000, faces, seed=3))
    return make_proxy(original, tmp_path / "proxy.jpg").path


def test_the_cloud_proxy_is_deterministic_and_keeps_the_declaration(
    tmp_path: Path, local_proxy: Path
) -> None:
    choice = Choice(1366, 75)
    sha1, size1 = make_cloud_proxy(local_proxy, tmp_path / "a.jpg", choice)
    sha2, size2 = make_cloud_proxy(local_proxy, tmp_path / "b.jpg", choice)
    assert (sha1, size1) == (sha2, size2)
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()
    assert hashlib.sha256((tmp_path / "a.jpg").read_bytes()).hexdigest() == sha1
    assert make_cloud_proxy(local_proxy, tmp_path / "c.jpg", Choice(1366, 70))[0] != sha1
    with Image.open(tmp_path / "a.jpg") as image:
        assert image.size == (1366, 910)
    # the fake reads the declaration (sized 3000x2000) against the 1366 px picture: ann's 90 px
    # face is 41 px there, as it is in the picture itself
    faces = DeclaredFaces().faces((tmp_path / "a.jpg").read_bytes())
    assert [round(f.width) for f in faces] == [41, 91]
    assert size1 < local_proxy.stat().st_size / 2


# --- the claim order ---------------------------------------------------------------------------------


def _frame(event: str, n: int, received: dt.datetime) -> LandedFrame:
    return LandedFrame(
        event=event,
        function="main",
        camera="cam",
        username=None,
        original_name=f"IMG_{n:04d}.JPG",
        ftp_path=None,
        sha256=f"{n:064x}",
        size=1000,
        kind="jpeg",
        searchable=True,
        stored_path=f"/nowhere/{n}.jpg",
        received_at=received.isoformat(timespec="milliseconds"),
        capture_time=None,
        body_serial=None,
        make=None,
        model=None,
        orientation=None,
        width=None,
        height=None,
    )


@pytest.mark.asyncio
async def test_fresh_proxies_go_newest_first_then_the_backlog_oldest_first_then_originals(
    tmp_path: Path,
) -> None:
    now = time.time()
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    async with Store(tmp_path / "shutterbox.db") as store:
        event = (await store.create_event("Order")).code
        # photos 1-5: a blackout's backlog (60-40 s ago); 6-8: just shot
        ages = [60, 55, 50, 45, 40, 6, 3, 1]
        ids = []
        for n, age in enumerate(ages, 1):
            photo, _ = await store.add_photo(_frame(event, n, at - dt.timedelta(seconds=age)))
            ids.append(photo.id)
        queue = SyncQueue(store)
        claimed = []
        while (job := await queue.claim(now=now)) is not None:
            claimed.append((job.kind, ids.index(job.photo_id) + 1))
        assert claimed == [
            *[("proxy", n) for n in (8, 7, 6)],  # fresh: newest first
            *[("proxy", n) for n in (1, 2, 3, 4, 5)],  # backlog: oldest first
        ], "no original while proxies are in flight"
        for job_id in [r[0] for r in await store.fetch_all("SELECT id FROM sync_jobs WHERE kind = 'proxy'")]:
            await queue.done(job_id)
        originals = []
        while (job := await queue.claim(now=now)) is not None:
            originals.append(ids.index(job.photo_id) + 1)
        assert originals == [1, 2, 3, 4, 5, 6, 7, 8], "originals oldest first, once no proxy waits"


@pytest.mark.asyncio
async def test_originals_wait_for_proxies_in_backoff_and_can_be_held_by_the_caller(tmp_path: Path) -> None:
    now = time.time()
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    async with Store(tmp_path / "shutterbox.db") as store:
        event = (await store.create_event("Held")).code
        await store.add_photo(_frame(event, 1, at))
        queue = SyncQueue(store)
        proxy = await queue.claim(now=now)
        assert proxy is not None and proxy.kind == "proxy"
        await queue.retry_later(proxy.id, 20.0, "network: blackout")  # a blackout's backoff
        assert await queue.claim(now=now) is None, "the original waits for the proxy"
        await queue.retry_later(proxy.id, 3600.0, "internal error")  # failing for an hour
        held = await queue.claim(now=now, originals=False)
        assert held is None, "the caller may hold originals (one already in flight)"
        original = await queue.claim(now=now)
        assert original is not None and original.kind == "original"


@pytest.mark.asyncio
async def test_the_shooting_rate_follows_the_shoot(tmp_path: Path) -> None:
    now = time.time()
    async with Store(tmp_path / "shutterbox.db") as store:
        event = (await store.create_event("Rate")).code
        queue = SyncQueue(store)
        assert await queue.shooting_rate(120.0, now=now) == 0.0
        for n in range(1, 9):  # 4 cameras at 1 frame/s, for the last 2 s: 4 a second already
            await store.add_photo(_frame(event, n, dt.datetime.fromtimestamp(now - 2.0 + n / 4, dt.UTC)))
        assert await queue.shooting_rate(120.0, now=now) == pytest.approx(4.0, rel=0.01)
        assert await queue.shooting_rate(120.0, now=now + 28.0) == pytest.approx(7 / 29.75, rel=0.01), "fades"
        assert await queue.shooting_rate(120.0, now=now + 200.0) == 0.0, "the last minutes only"


# --- the choice recorded before the upload ---------------------------------------------------------


@pytest.mark.asyncio
async def test_the_choice_is_recorded_and_a_retry_sends_the_same_bytes(
    tmp_path: Path, local_proxy: Path
) -> None:
    """A slow link makes the cloud proxy small; the link then looks fast, the box restarts, the
    cloud proxy file is lost: the retry still makes, uploads and indexes the recorded bytes."""
    now = time.time()
    layout = Layout(tmp_path / "data")
    async with Store(tmp_path / "shutterbox.db") as store:
        event = (await store.create_event("Retry")).code
        for n in range(1, 41):  # 40 photos in the last 10 s: 3.9 a second
            await store.add_photo(_frame(event, n, dt.datetime.fromtimestamp(now - n / 4, dt.UTC)))
        settings = CloudSettings(upload_mbit=None)
        sync = SyncService(settings, store, layout, bridge=None, min_face_px=60)  # type: ignore[arg-type]
        t0 = time.monotonic() - 101.0
        sync.meter.rtt(0.3, at=t0)
        for _ in range(6):  # six 100 kB PUTs that took 100 s together: a 6 kB/s link
            sync.meter.transfer(100 * KB, t0, t0 + 100.3)
        queue = SyncQueue(store)
        job = await queue.claim(now=now)
        assert job is not None
        path, sha, first = await sync._cloud_proxy(job, local_proxy, "local-sha")
        assert first and path != local_proxy
        with Image.open(path) as image:
            assert max(image.size) == 1366, "the floor: 60 px faces stay 40 px"
        kept = path.read_bytes()
        row = await store.fetch_one(
            "SELECT cloud_proxy_edge, cloud_proxy_quality, cloud_proxy_sha256 FROM photos WHERE id = ?",
            (job.photo_id,),
        )
        assert row is not None and row[2] == sha and row[0] == 1366 and row[1] <= 70

        fast = SyncService(settings, store, layout, bridge=None, min_face_px=60)  # type: ignore[arg-type]
        for i in range(10):  # the link now looks fast
            fast.meter.transfer(1000 * KB, t0 + 90 + i, t0 + 90.1 + i)
        path.unlink()
        await queue.retry_later(job.id, 0.0, "network: reset")
        again = await queue.claim(now=now + 1)
        assert again is not None and again.photo_id == job.photo_id
        path2, sha2, first2 = await fast._cloud_proxy(again, local_proxy, "local-sha")
        assert not first2 and (path2, sha2) == (path, sha)
        assert path2.read_bytes() == kept

        other = await queue.claim(now=now + 1)
        assert other is not None
        local_path, local_sha, _ = await fast._cloud_proxy(other, local_proxy, "local-sha")
        assert (local_path, local_sha) == (local_proxy, "local-sha"), "a fast link gets the local proxy"


def test_the_fake_scales_a_declaration_to_the_cloud_proxy(local_proxy: Path, tmp_path: Path) -> None:
    data = local_proxy.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (2048, 1365)
    assert [round(f.width) for f in DeclaredFaces().faces(data)] == [61, 137]
    assert replace(Choice(2048, 85)).is_local(2048)
