"""Guest search online and offline: with the uplink up, the event's Rekognition collection
answers (authoritative) and the local index adds the photos not synced yet; with it down, the
box answers alone and says so in one line. A guest never sees an error because of the uplink.

Real box, moto's S3 server, the fake Rekognition (matching real faces with the box's engine,
reading IndexFaces images from S3) behind a fault proxy that can black out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.boxproc import BoxProcess
from tests.conftest import S3_BUCKET as BUCKET
from tests.conftest import s3_client
from tests.fakes.faultproxy import FaultProxy
from tests.fakes.rekognition import EngineFaces, FakeRekognition
from tests.test_guest_api import FACES, face, search, upload, wait_indexed
from tests.test_sync import cloud_box, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not FACES.is_dir(), reason=f"public-domain face photos not found at {FACES}"),
]


@pytest.fixture
def rekognition(s3_endpoint: str) -> Iterator[FakeRekognition]:
    with FakeRekognition(EngineFaces(), s3=s3_client(s3_endpoint)) as fake:
        yield fake
    assert fake.invalid_requests == [], fake.invalid_requests[:3]


def test_online_search_merges_cloud_and_local_and_survives_the_uplink_dropping(
    tmp_path: Path, s3_endpoint: str, rekognition: FakeRekognition
) -> None:
    port = int(rekognition.url.rsplit(":", 1)[1])
    with FaultProxy(("127.0.0.1", port)) as link:
        box: BoxProcess = cloud_box(
            tmp_path,
            s3_endpoint,
            link.url(),
            faces__workers="1",
            cloud__workers="1",
            guest__cloud_timeout="3",
        ).start(timeout=90)
        try:
            event = box.new_event("Gala")
            # quota 1: one Obama photo gets into the collection, the other stays local-only
            box.cli("event", "quota", event, "1")
            ids = upload(box, event, {"obama-1.jpg": face("obama-1.jpg")})
            wait_for(
                "first photo in the collection", lambda: bool(box.photos(event)[0]["searchable_in_cloud_at"])
            )
            ids = upload(
                box,
                event,
                {
                    "obama-2.jpg": face("obama-2.jpg"),
                    "biden-1.jpg": face("biden-1.jpg"),
                },
            )
            wait_indexed(box)
            web = f"http://127.0.0.1:{box.info['web_port']}"
            selfie = face("obama-3.jpg")

            online = search(web, event, selfie).json()
            assert online["mode"] == "cloud" and online["offline"] is False
            sources = {m["photo_id"]: m["source"] for m in online["matches"]}
            assert sources == {ids["obama-1.jpg"]: "cloud", ids["obama-2.jpg"]: "local"}
            assert rekognition.count("SearchFacesByImage") == 1

            link.blackout(600, reset=True, refuse_new=True)
            started = time.monotonic()
            offline = search(web, event, selfie, timeout=30).json()
            assert time.monotonic() - started < 10
            assert offline["mode"] == "local" and offline["offline"] is True
            assert {m["photo_id"] for m in offline["matches"]} == {ids["obama-1.jpg"], ids["obama-2.jpg"]}
            page = httpx.post(
                f"{web}/e/{event}/search",
                files={"selfie": ("s.jpg", selfie, "image/jpeg")},
                data={"consent": "yes"},
                follow_redirects=True,  # to the results' own address
                timeout=30,
            )
            assert (
                page.status_code == 200
                and 'id="offline"' in page.text
                and page.text.count('class="thumb"') == 2
            )

            link.heal()
            wait_for("uplink back", lambda: box.status()["cloud"]["uplink"] != "offline", timeout=90)
            again = search(web, event, selfie, timeout=30).json()
            assert again["mode"] == "cloud" and len(again["matches"]) == 2
        finally:
            box.stop()


def test_cloud_error_on_search_falls_back_to_local(
    tmp_path: Path, s3_endpoint: str, rekognition: FakeRekognition
) -> None:
    box: BoxProcess = cloud_box(tmp_path, s3_endpoint, rekognition.url, faces__workers="1").start(timeout=90)
    try:
        event = box.new_event("Gala")
        ids = upload(box, event, {"obama-1.jpg": face("obama-1.jpg")})
        wait_for("photo in the collection", lambda: bool(box.photos(event)[0]["searchable_in_cloud_at"]))
        wait_indexed(box)
        web = f"http://127.0.0.1:{box.info['web_port']}"
        rekognition.fail_next("SearchFacesByImage", "InternalServerError", times=1)
        body: dict[str, Any] = search(web, event, face("obama-3.jpg")).json()
        assert body["mode"] == "local"
        assert [m["photo_id"] for m in body["matches"]] == [ids["obama-1.jpg"]]
        # the collection answers again once the errors stop
        again = search(web, event, face("obama-3.jpg")).json()
        assert again["mode"] == "cloud" and [m["photo_id"] for m in again["matches"]] == [ids["obama-1.jpg"]]
        photo = box.photos(event)[0]
        proxy_key = f"events/{event}/main/{photo['camera']}/proxy/{photo['sha256']}.jpg"
        sent = [c.params["Image"] for c in rekognition.calls if c.operation == "IndexFaces"]
        assert sent == [{"S3Object": {"Bucket": BUCKET, "Name": proxy_key}}], "read from S3, not sent twice"
    finally:
        box.stop()
