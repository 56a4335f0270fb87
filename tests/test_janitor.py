"""Crash reconciliation at start: the box is started, fed, stopped, its data folder tampered with
the way a crash or power cut would leave it, and started again."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.boxproc import BoxProcess, store
from tests.conftest import jpeg_bytes
from tests.test_guest_api import wait_indexed

pytestmark = pytest.mark.e2e


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _upload(box: BoxProcess, user: str, password: str, name: str, data: bytes) -> str:
    client = box.ftp(user, password)
    try:
        return store(client, name, data)
    finally:
        client.close()


def _prepare(box: BoxProcess) -> tuple[str, str, str]:
    """Start the box and make an event and a key; returns (event, user, password)."""
    box.start()
    event = box.new_event("crash test")
    user, password = box.new_key(event, camera="canon r6")
    return event, user, password


def _quarantined(box: BoxProcess) -> list[Path]:
    return sorted(p for p in (box.data / "quarantine").rglob("*") if p.is_file())


def _wait_for_bytes_in_tmp(box: BoxProcess, timeout: float = 20.0) -> None:
    """Until the box has written some of the upload in flight to ``tmp/``."""
    deadline = time.monotonic() + timeout
    while not any(p.stat().st_size > 0 for p in (box.data / "tmp").glob("*.part")):
        assert time.monotonic() < deadline, "the upload never reached tmp/"
        time.sleep(0.05)


def _photo(box: BoxProcess, event: str, sha256: str) -> dict[str, Any]:
    matches = [p for p in box.photos(event) if p["sha256"] == sha256]
    assert len(matches) == 1, matches
    return matches[0]


def test_part_file_left_in_tmp_is_quarantined_and_recorded(fresh_box: BoxProcess) -> None:
    event, user, password = _prepare(fresh_box)
    assert _upload(fresh_box, user, password, "BEFORE.JPG", jpeg_bytes(seed=500)).startswith("226")
    assert fresh_box.stop() == 0

    data = jpeg_bytes(seed=501)
    tmp = fresh_box.data / "tmp"
    (tmp / "3f2a9c0d11e4b7a6.part").write_bytes(data[: len(data) // 2])  # in flight at the crash
    (tmp / "0000000000000000.part").write_bytes(b"")  # an upload that had not received a byte
    fresh_box.start()

    assert sorted(tmp.iterdir()) == []
    quarantined = _quarantined(fresh_box)
    assert [p.name for p in quarantined] == ["restart-3f2a9c0d11e4b7a6.part"]
    assert quarantined[0].read_bytes() == data[: len(data) // 2]
    rows = [r for r in fresh_box.rejections() if r["original_name"] == "3f2a9c0d11e4b7a6.part"]
    assert len(rows) == 1, rows
    assert rows[0]["size"] == len(data) // 2
    assert "interrupted" in rows[0]["reason"]
    assert Path(rows[0]["quarantine_path"]) == quarantined[0]
    assert [r for r in fresh_box.rejections() if r["original_name"] == "0000000000000000.part"] == []
    assert [p["original_name"] for p in fresh_box.photos(event)] == ["BEFORE.JPG"]


def test_stored_file_without_row_is_adopted_then_attributed_on_resend(fresh_box: BoxProcess) -> None:
    event, user, password = _prepare(fresh_box)
    assert fresh_box.stop() == 0

    data = jpeg_bytes(seed=502, exif=True)
    sha = _sha(data)
    stored = fresh_box.data / "photos" / event / sha[:2] / f"{sha}.jpg"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(data)  # renamed into the store, then the crash before the commit
    fresh_box.start()

    adopted = _photo(fresh_box, event, sha)
    assert adopted["camera"] == "recovered"
    assert adopted["username"] is None
    assert adopted["state"] == "queued"
    assert adopted["size"] == len(data)
    assert adopted["stored_path"] == str(stored.resolve())
    assert (adopted["make"], adopted["model"]) == ("Canon", "Canon EOS R5")
    assert stored.read_bytes() == data
    assert _quarantined(fresh_box) == []

    # The camera never got its 226, so it sends the frame again: same photo, now attributed.
    reply = _upload(fresh_box, user, password, "IMG_0502.JPG", data)
    assert reply.startswith("226"), reply
    assert reply.endswith(f"stored as photo {adopted['id']}.")
    photos = fresh_box.photos(event)
    assert len(photos) == 1
    resent = photos[0]
    assert resent["id"] == adopted["id"]
    assert resent["camera"] == "canon r6"
    assert resent["username"] == user
    assert resent["original_name"] == "IMG_0502.JPG"

    # ...and a restart does not adopt it a second time.
    assert fresh_box.stop() == 0
    fresh_box.start()
    assert [(p["id"], p["camera"]) for p in fresh_box.photos(event)] == [(adopted["id"], "canon r6")]


def test_stored_file_whose_name_is_not_its_hash_is_quarantined(fresh_box: BoxProcess) -> None:
    event, _, _ = _prepare(fresh_box)
    assert fresh_box.stop() == 0

    data = jpeg_bytes(seed=503)
    wrong = _sha(b"something else entirely")
    assert wrong != _sha(data)
    stored = fresh_box.data / "photos" / event / wrong[:2] / f"{wrong}.jpg"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(data)
    fresh_box.start()

    assert not stored.exists()
    assert fresh_box.photos(event) == []
    quarantined = _quarantined(fresh_box)
    assert [p.name for p in quarantined] == [f"orphan-{wrong}.jpg"]
    assert quarantined[0].read_bytes() == data


def test_stored_file_of_an_unknown_event_is_quarantined(fresh_box: BoxProcess) -> None:
    _prepare(fresh_box)
    assert fresh_box.stop() == 0

    data = jpeg_bytes(seed=504)
    sha = _sha(data)
    stored = fresh_box.data / "photos" / "zzzzzzzz" / sha[:2] / f"{sha}.jpg"
    stored.parent.mkdir(parents=True)
    stored.write_bytes(data)
    fresh_box.start()

    assert not stored.exists()
    assert [p for p in fresh_box.photos() if p["sha256"] == sha] == []
    assert [p.name for p in _quarantined(fresh_box)] == [f"orphan-{sha}.jpg"]


def test_row_whose_file_is_gone_is_marked_missing(fresh_box: BoxProcess) -> None:
    event, user, password = _prepare(fresh_box)
    kept, lost = jpeg_bytes(seed=505), jpeg_bytes(seed=506)
    assert _upload(fresh_box, user, password, "KEPT.JPG", kept).startswith("226")
    assert _upload(fresh_box, user, password, "LOST.JPG", lost).startswith("226")
    gone = _photo(fresh_box, event, _sha(lost))
    assert fresh_box.stop() == 0

    Path(gone["stored_path"]).unlink()
    fresh_box.start()

    states = {p["original_name"]: p["state"] for p in fresh_box.photos(event)}
    assert states == {"KEPT.JPG": "queued", "LOST.JPG": "missing"}
    assert _photo(fresh_box, event, _sha(lost))["id"] == gone["id"]
    assert fresh_box.status()["queue"]["photos_by_state"].get("missing") == 1
    assert "no file on disk" in fresh_box.log


def test_reconciliation_after_kill9_mid_upload(fresh_box: BoxProcess) -> None:
    """A real crash rather than a staged one: kill -9 with an upload half sent."""
    event, user, password = _prepare(fresh_box)
    data = jpeg_bytes(1200, 900, seed=507)
    client = fresh_box.ftp(user, password)
    try:
        client.voidcmd("TYPE I")
        conn = client.transfercmd("STOR HALF.JPG")
        try:
            conn.sendall(data[: len(data) // 2])
            _wait_for_bytes_in_tmp(fresh_box)
            fresh_box.kill9()
        finally:
            conn.close()
    finally:
        client.close()
    in_flight = [p for p in (fresh_box.data / "tmp").iterdir() if p.suffix == ".part"]
    assert len(in_flight) == 1, in_flight

    fresh_box.start()
    assert list((fresh_box.data / "tmp").iterdir()) == []
    assert fresh_box.photos(event) == []
    rows = [r for r in fresh_box.rejections() if r["original_name"] == in_flight[0].name]
    assert len(rows) == 1, fresh_box.rejections()
    assert Path(rows[0]["quarantine_path"]).exists()

    # The camera resends the frame in full and it is accepted.
    reply = _upload(fresh_box, user, password, "HALF.JPG", data)
    assert reply.startswith("226"), reply
    assert [p["sha256"] for p in fresh_box.photos(event)] == [_sha(data)]


def test_clean_restart_changes_nothing(fresh_box: BoxProcess) -> None:
    event, user, password = _prepare(fresh_box)
    assert _upload(fresh_box, user, password, "A.JPG", jpeg_bytes(seed=508)).startswith("226")
    wait_indexed(fresh_box)  # background work the box finishes on its own is not what is compared
    before = fresh_box.photos(event)
    assert fresh_box.stop() == 0
    snapshot = fresh_box.data / "snapshot"
    shutil.copytree(fresh_box.data / "photos", snapshot)

    fresh_box.start()
    assert fresh_box.photos(event) == before
    assert _quarantined(fresh_box) == []
    assert fresh_box.rejections() == []
    assert "reconciled data folder" not in fresh_box.log
    assert sorted(p.relative_to(snapshot) for p in snapshot.rglob("*")) == sorted(
        p.relative_to(fresh_box.data / "photos") for p in (fresh_box.data / "photos").rglob("*")
    )


def test_missing_photo_resent_by_its_camera_is_queued_again(fresh_box: BoxProcess) -> None:
    """A 226 promises a durable, queued frame: a frame whose row was marked missing and that the
    camera sends again must be back on disk *and* back in the queue."""
    event, user, password = _prepare(fresh_box)
    data = jpeg_bytes(seed=509)
    assert _upload(fresh_box, user, password, "AGAIN.JPG", data).startswith("226")
    photo = _photo(fresh_box, event, _sha(data))
    assert fresh_box.stop() == 0
    Path(photo["stored_path"]).unlink()
    fresh_box.start()
    assert _photo(fresh_box, event, _sha(data))["state"] == "missing"

    reply = _upload(fresh_box, user, password, "AGAIN.JPG", data)
    assert reply.startswith("226"), reply
    again = _photo(fresh_box, event, _sha(data))
    assert again["id"] == photo["id"]
    assert Path(again["stored_path"]).read_bytes() == data
    assert again["state"] == "queued"
