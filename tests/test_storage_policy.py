"""The storage policy on a disk that is "always low" (evict_below_mb far above any free space):
originals safely in S3 are deleted from the box with the camera's view of them; frames not in S3
and every proxy stay; guests still search and download (the proxy); a restart does not call the
deleted originals missing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.rekognition import FakeRekognition
from tests.test_guest_api import FACES, face, search, upload, wait_indexed
from tests.test_sync import cloud_box, jobs, objects, wait_for


def test_synced_originals_are_evicted_and_nothing_else(
    tmp_path: Path, s3_endpoint: str, s3: Any, rekognition: FakeRekognition
) -> None:
    assert FACES.is_dir()
    box = cloud_box(
        tmp_path, s3_endpoint, rekognition.url, storage__evict_below_mb=str(10**8), faces__workers="1"
    ).start(timeout=90)
    try:
        synced = box.new_event("Synced")
        local_only = box.cli("event", "create", "Local only", "--originals", "none")["code"]
        ids = upload(box, synced, {n: face(n) for n in ("obama-1.jpg", "obama-2.jpg", "biden-1.jpg")})
        kept = upload(box, local_only, {"hopper-1.jpg": face("hopper-1.jpg")})
        wait_for("originals in S3", lambda: jobs(box).get("done") == 3 * 2 + 1, timeout=90)
        assert len([k for k in objects(s3, f"events/{synced}/") if "/proxy/" not in k]) == 3
        wait_for("evicted", lambda: box.status()["disk"]["evicted_photos"] == 3, timeout=40)
        wait_indexed(box)

        photos = {p["original_name"]: p for p in box.photos(synced)}
        for name, photo in photos.items():
            assert photo["evicted_at"], name
            assert not Path(photo["stored_path"]).exists(), "the original left the box"
            assert Path(photo["proxy_path"]).exists(), "the proxy stays for search and viewing"
            assert not (box.data / "ftp" / photo["username"] / name).exists(), "the camera's view too"
        (hopper,) = box.photos(local_only)
        assert hopper["evicted_at"] is None and Path(hopper["stored_path"]).exists(), "not in S3: kept"
        disk = box.status()["disk"]
        assert disk["evicted_bytes"] == sum(p["size"] for p in photos.values())

        web = f"http://127.0.0.1:{box.info['web_port']}"
        found = search(web, synced, face("obama-3.jpg")).json()["matches"]
        assert {m["photo_id"] for m in found} == {ids["obama-1.jpg"], ids["obama-2.jpg"]}
        download = httpx.get(found[0]["download_url"])
        proxy = Path(
            photos["obama-1.jpg" if found[0]["photo_id"] == ids["obama-1.jpg"] else "obama-2.jpg"][
                "proxy_path"
            ]
        )
        assert download.status_code == 200 and download.content == proxy.read_bytes()
    finally:
        box.stop()
    time.sleep(0.2)
    box.start(timeout=90)
    try:
        assert {p["state"] for p in box.photos(synced)} == {"queued"}, "not marked missing at restart"
        assert "no file on disk" not in box.log
        assert kept["hopper-1.jpg"] in {p["id"] for p in box.photos(local_only)}
    finally:
        box.stop()
