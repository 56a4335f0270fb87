"""Guest search online and offline: with the uplink up, the event's Rekognition collection
answers (authoritative) and the local index adds the photos not synced yet; with it down, the
box answers alone and says so in one line. A guest never sees an error because of the uplink.

Real box, moto's S3 server, the fake Rekognition behind a fault proxy that can black out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.boxproc import Box
from tests.fakes.faultproxy import FaultProxy
from tests.fakes.rekognition import FakeRekognition, with_faces
from tests.test_guest_api import FACES, face, search, upload, wait_indexed
from tests.test_sync import cloud_box, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not FACES.is_dir(), reason=f"public-domain face photos not found at {FACES}"),
]


def declared(name: str, person: str) -> bytes:
    """A real face photo that also declares its person to the fake Rekognition."""
    return with_faces(face(name), [{"person": person, "box": [10, 10, 300, 300]}])


@pytest.fixture
def rekognition() -> Iterator[FakeRekognition]:
    with FakeRekognition() as fake:
        yield fake
    assert fake.invalid_requests == [], fake.invalid_requests[:3]


def test_online_search_merges_cloud_and_local_and_survives_the_uplink_dropping(
    tmp_path: Path, s3_endpoint: str, rekognition: FakeRekognition
) -> None:
    port = int(rekognition.url.rsplit(":", 1)[1])
    with FaultProxy(("127.0.0.1", port)) as link:
        box: Box = cloud_box(
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
            ids = upload(box, event, {"obama-1.jpg": declared("obama-1.jpg", "obama")})
            wait_for(
                "first photo in the collection", lambda: bool(box.photos(event)[0]["searchable_in_cloud_at"])
            )
            ids = upload(
                box,
                event,
                {
                    "obama-2.jpg": declared("obama-2.jpg", "obama"),
                    "biden-1.jpg": declared("biden-1.jpg", "biden"),
                },
            )
            wait_indexed(box)
            web = f"http://127.0.0.1:{box.info['web_port']}"
            selfie = declared("obama-3.jpg", "obama")

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
                f"{web}/e/{event}/search", files={"selfie": ("s.jpg", selfie, "image/jpeg")}, timeout=30
            )
            assert (
                page.status_code == 200
                and 'id="offline"' in page.text
                and page.text.count('class="thumb"') == 2
            )

            link.heal()
            wait_for("uplink back", lambda: box.cli("status")["cloud"]["uplink"] != "offline", timeout=90)
            again = search(web, event, selfie, timeout=30).json()
            assert again["mode"] == "cloud" and len(again["matches"]) == 2
        finally:
            box.stop()


def test_cloud_error_on_search_falls_back_to_local(
    tmp_path: Path, s3_endpoint: str, rekognition: FakeRekognition
) -> None:
    box: Box = cloud_box(tmp_path, s3_endpoint, rekognition.url, faces__workers="1").start(timeout=90)
    try:
        event = box.new_event("Gala")
        ids = upload(box, event, {"obama-1.jpg": declared("obama-1.jpg", "obama")})
        wait_for("photo in the collection", lambda: bool(box.photos(event)[0]["searchable_in_cloud_at"]))
        wait_indexed(box)
        web = f"http://127.0.0.1:{box.info['web_port']}"
        rekognition.fail_next("SearchFacesByImage", "InternalServerError", times=5)
        body: dict[str, Any] = search(web, event, declared("obama-3.jpg", "obama")).json()
        assert body["mode"] == "local"
        assert [m["photo_id"] for m in body["matches"]] == [ids["obama-1.jpg"]]
        # a selfie Rekognition finds no face in (nothing declared) is answered locally too
        plain = search(web, event, face("obama-3.jpg")).json()
        assert plain["mode"] == "local" and [m["photo_id"] for m in plain["matches"]] == [ids["obama-1.jpg"]]
    finally:
        box.stop()
