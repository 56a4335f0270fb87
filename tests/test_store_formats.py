"""The store's side of "every format is searchable": one definition of searchable (the
``searchable`` column ingest sets from ``formats.SEARCHABLE_KINDS``), RAW+JPEG pairs of one
shutter, the reason a photo has no picture, and migration 7 on a box that ran version 6.

A real Store on a real SQLite file; frames are queued the way the Lander queues them.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.ingest.formats import RAW_KINDS, SEARCHABLE_KINDS
from appliance.store.faces import FaceStore
from appliance.store.pairs import raw_halves, shown_for
from appliance.store.records import LandedFrame
from appliance.store.schema import MIGRATIONS, RAW_KINDS_SQL
from appliance.store.store import Store, _statements

SHUTTER = "2026-12-06T15:04:05.250"


def frame(event: str, name: str, kind: str, n: int, **extra: object) -> LandedFrame:
    base = LandedFrame(
        event=event,
        function="main",
        camera="Z6 #1",
        username=f"{event}-z6",
        original_name=name,
        ftp_path=f"/{name}",
        sha256=f"{n:064x}",
        size=1000 + n,
        kind=kind,
        searchable=kind in SEARCHABLE_KINDS,
        stored_path=f"/data/photos/{event}/{n:064x}.{name.rsplit('.', 1)[-1].lower()}",
        received_at=f"2026-12-06T14:00:{n:02d}.000+00:00",
        capture_time=SHUTTER,
        body_serial="6012345",
        make="NIKON CORPORATION",
        model="NIKON Z 6_2",
        orientation=1,
        width=6048,
        height=4032,
    )
    return replace(base, **extra)


async def proxy_jobs(store: Store) -> dict[int, str]:
    rows = await store.fetch_all("SELECT photo_id, state FROM sync_jobs WHERE kind = 'proxy'")
    return {int(r[0]): str(r[1]) for r in rows}


@pytest.mark.asyncio
async def test_every_searchable_kind_is_indexed_and_nothing_else(tmp_path: Path) -> None:
    async with Store(tmp_path / "shutterbox.db") as store:
        event = (await store.create_event("Formats")).code
        kinds = ["jpeg", "raw", "cr3", "heif", "png", "webp", "video", "other"]
        ids = {}
        for n, kind in enumerate(kinds):
            photo, _ = await store.add_photo(frame(event, f"F{n}.{kind}", kind, n, capture_time=None))
            ids[kind] = photo.id
        todo = {t.photo_id for t in await FaceStore(store).todo(100)}
        assert todo == {ids[k] for k in kinds if k in SEARCHABLE_KINDS}
        assert set(await proxy_jobs(store)) == todo, "the cloud indexes the same photos"
        assert (await FaceStore(store).counts())["photos_pending"] == len(todo)


@pytest.mark.asyncio
@pytest.mark.parametrize("raw_first", [False, True])
async def test_raw_and_jpeg_of_one_shutter_are_one_moment(tmp_path: Path, raw_first: bool) -> None:
    async with Store(tmp_path / "shutterbox.db") as store:
        event = (await store.create_event("Pairs")).code
        halves = [frame(event, "DSC_0100.JPG", "jpeg", 1), frame(event, "DSC_0100.NEF", "raw", 2)]
        if raw_first:
            halves.reverse()
        queued = {f.kind: (await store.add_photo(f))[0].id for f in halves}
        jpeg, raw = queued["jpeg"], queued["raw"]
        # not a pair: another base name, another capture time, another body, another key
        others = [
            frame(event, "DSC_0101.NEF", "raw", 3),
            frame(event, "DSC_0100.NEF", "raw", 4, capture_time="2026-12-06T15:04:06.000"),
            frame(event, "dsc_0100.nef", "raw", 5, body_serial="7000001"),
            frame(event, "DSC_0100.NEF", "raw", 6, username=f"{event}-other"),
        ]
        unpaired = [(await store.add_photo(f))[0].id for f in others]

        faces = FaceStore(store)
        assert {t.photo_id for t in await faces.todo(100)} == {jpeg, *unpaired}
        jobs = await proxy_jobs(store)
        if raw_first:  # queued before its JPEG landed: its cloud job is dropped once it does
            assert jobs[raw] == "discarded"
        else:
            assert raw not in jobs
        assert all(jobs[i] == "pending" for i in (jpeg, *unpaired))

        assert await shown_for(store, event, [raw, jpeg, *unpaired]) == {raw: jpeg}
        halves_of = await raw_halves(store, event, [jpeg, *unpaired])
        assert [p.id for p in halves_of[jpeg]] == [raw] and len(halves_of) == 1
        page, total = await store.event_page(event, offset=0, limit=60)
        assert total == 5 and raw not in {p.id for p in page}
        assert len(await store.event_photo_ids(event)) == 6, "the host's ZIP keeps every RAW"


@pytest.mark.asyncio
async def test_a_photo_without_picture_keeps_its_reason(tmp_path: Path) -> None:
    async with Store(tmp_path / "shutterbox.db") as store:
        event = (await store.create_event("Blind")).code
        photo, _ = await store.add_photo(frame(event, "DSC_0300.NEF", "raw", 1))
        faces = FaceStore(store)
        [todo] = await faces.todo(10)
        reason = "no preview: x.nef holds no embedded JPEG preview"
        assert await faces.record(todo, [], proxy=None, failed=reason)
        stored = await store.get_photo(photo.id)
        assert (stored.faces_state, stored.faces_error) == ("failed", reason)
        assert await faces.todo(10) == []


@pytest.mark.asyncio
async def test_migration_7_makes_older_photos_searchable(tmp_path: Path) -> None:
    path = tmp_path / "shutterbox.db"
    db = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:6]:
        for statement in _statements(script):
            db.execute(statement)
    db.execute("PRAGMA user_version = 6")
    db.execute("INSERT INTO events (code, name, created_at) VALUES ('old12345', 'Old', '2026-01-01')")
    rows = [  # as version 6 stored them: PNG was 'other', TIFF-based RAW and HEIF never indexed
        ("a.jpg", "jpeg", 1, "DSC_1.JPG"),
        ("b.png", "other", 0, "export.PNG"),
        ("c.nef", "raw", 1, "DSC_2.NEF"),
        ("d.hif", "heif", 1, "IMG_1.HIF"),
        ("e.mov", "video", 0, "C0001.MOV"),
        ("f.nef", "raw", 1, "DSC_1.NEF"),  # the RAW half of a.jpg's shutter
    ]
    for n, (stored, kind, searchable, name) in enumerate(rows):
        db.execute(
            "INSERT INTO photos (event, function, camera, username, original_name, sha256, size, kind,"
            " searchable, stored_path, received_at, capture_time, faces_state)"
            " VALUES ('old12345', 'main', 'cam', 'u', ?, ?, 1, ?, ?, ?, '2026-01-01', ?, ?)",
            (
                name,
                f"{n:064x}",
                kind,
                searchable,
                f"/p/{stored}",
                SHUTTER,
                "done" if kind == "jpeg" else None,
            ),
        )
    db.close()

    async with Store(path) as store:
        photos = {Path(p.stored_path).name: p for p in await store.list_photos("old12345")}
        assert (photos["b.png"].kind, photos["b.png"].searchable) == ("png", True)
        todo = {t.photo_id for t in await FaceStore(store).todo(100)}
        assert todo == {photos[n].id for n in ("b.png", "c.nef", "d.hif")}
        jobs = await proxy_jobs(store)
        assert set(jobs) == {photos[n].id for n in ("a.jpg", "b.png", "c.nef", "d.hif")}
        assert photos["f.nef"].faces_error is None


def test_the_sql_raw_kinds_are_the_formats_raw_kinds() -> None:
    assert set(re.findall(r"'(\w+)'", RAW_KINDS_SQL)) == RAW_KINDS
