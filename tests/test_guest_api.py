"""Guest search over HTTP against a real box: the JSON API and the links it hands out.

A real ``shutterbox up`` per module, photos sent by FTP and indexed by the real face engine,
searches made with real public-domain selfies. Covers per-event isolation, signed links, bad
input, the selfie never touching disk, rate limits, PINs, ZIP downloads, host links and QR codes.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from tests.boxproc import BoxProcess, make_box, store

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not FACES.is_dir(), reason=f"public-domain face photos not found at {FACES}"),
]

EVENT_A = ["obama-1.jpg", "obama-2.jpg", "biden-1.jpg", "hopper-1.jpg"]


def face(name: str) -> bytes:
    return (FACES / name).read_bytes()


def reencoded(name: str, quality: int = 80) -> bytes:
    """The same picture as another file (the box deduplicates identical bytes per event)."""
    out = io.BytesIO()
    with Image.open(FACES / name) as image:
        image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def upload(box: BoxProcess, event: str, files: dict[str, bytes]) -> dict[str, int]:
    user, password = box.new_key(event, camera=f"cam-{len(files)}-{time.monotonic_ns() % 10000}")
    with box.ftp(user, password) as ftp:
        for name, data in files.items():
            assert store(ftp, name, data).startswith("226")
    return {p["original_name"]: p["id"] for p in box.photos(event)}


def wait_indexed(box: BoxProcess, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        faces = box.status()["faces"]
        if faces["photos_pending"] == 0 and faces["in_flight"] == 0:
            return
        assert time.monotonic() < deadline, f"face index did not catch up: {faces}"
        time.sleep(0.3)


def search(web: str, event: str, data: bytes, name: str = "selfie.jpg", **kw: Any) -> httpx.Response:
    return httpx.post(f"{web}/api/events/{event}/search", files={"selfie": (name, data, "image/jpeg")}, **kw)


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("guest")
    box_tmp = tmp / "box-tmp"
    box_tmp.mkdir()
    box = make_box(
        tmp / "data",
        faces__workers="1",
        guest__searches_per_minute="1000",
        guest__code_attempts_per_hour="1000",
    )
    box.env["TMPDIR"] = str(box_tmp)
    box.start(timeout=90)
    try:
        a, b = box.new_event("Wedding A"), box.new_event("Conference B")
        ids_a = upload(box, a, {n: face(n) for n in EVENT_A})
        ids_b = upload(
            box,
            b,
            {"obama-2-copy.jpg": reencoded("obama-2.jpg"), "curie-couple.jpg": face("curie-couple.jpg")},
        )
        wait_indexed(box)
        yield {
            "box": box,
            "web": f"http://127.0.0.1:{box.info['web_port']}",
            "a": a,
            "b": b,
            "ids_a": ids_a,
            "ids_b": ids_b,
            "box_tmp": box_tmp,
        }
    finally:
        box.stop()


def test_selfie_finds_exactly_the_persons_photos_in_that_event_only(venue: dict[str, Any]) -> None:
    web, a, b = venue["web"], venue["a"], venue["b"]
    reply = search(web, a, face("obama-3.jpg"))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    found = {m["photo_id"] for m in body["matches"]}
    assert found == {venue["ids_a"]["obama-1.jpg"], venue["ids_a"]["obama-2.jpg"]}
    assert body["mode"] == "local" and body["offline"] is False and body["faces_in_selfie"] == 1
    assert all(0 < m["score"] <= 1 and m["source"] == "local" for m in body["matches"])
    assert all(f"/e/{a}/p/" in m["thumbnail_url"] for m in body["matches"])

    other = search(web, b, face("obama-3.jpg")).json()
    assert {m["photo_id"] for m in other["matches"]} == {venue["ids_b"]["obama-2-copy.jpg"]}
    nobody = search(web, a, face("collins-astronaut.png"), name="c.png").json()
    assert nobody["matches"] == [] and nobody["zip_url"] is None


def test_links_serve_the_photo_and_are_bound_to_their_event(venue: dict[str, Any]) -> None:
    web, a, b = venue["web"], venue["a"], venue["b"]
    match = next(
        m
        for m in search(web, a, face("obama-3.jpg")).json()["matches"]
        if m["photo_id"] == venue["ids_a"]["obama-2.jpg"]
    )

    thumb = httpx.get(match["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert max(image.size) <= 480
    cached = httpx.get(match["thumbnail_url"], headers={"If-None-Match": thumb.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""
    view = httpx.get(match["view_url"])
    assert view.status_code == 200 and view.content[:2] == b"\xff\xd8"
    download = httpx.get(match["download_url"])
    assert download.status_code == 200 and download.content == face("obama-2.jpg")
    assert 'filename="obama-2.jpg"' in download.headers["content-disposition"]

    # the same token under another event's code, a forged token, a path trick: the same bare 404
    token = match["thumbnail_url"].split("/p/")[1].split("/")[0]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for url in (
        match["thumbnail_url"].replace(f"/e/{a}/", f"/e/{b}/"),
        match["thumbnail_url"].replace(token, forged),
        f"{web}/e/{a}/p/..%2F..%2Fshutterbox.db/download",
        f"{web}/e/{a}/p/{token}/../../../link.key",
    ):
        reply = httpx.get(url)
        assert reply.status_code == 404, url
        # the client folds "/../" away: the last one asks for an event named "link.key"
        assert reply.text == "Not found" or "No event has that code" in reply.text, url
    # an unknown event code is a page a guest can act on: what happened, and the code form again
    lost = httpx.get(f"{web}/e/zzzzzzzz")
    assert lost.status_code == 404 and lost.headers["content-type"].startswith("text/html")
    assert "No event has that code" in lost.text and 'name="code"' in lost.text


def test_zip_of_matches_holds_the_originals(venue: dict[str, Any]) -> None:
    web, a = venue["web"], venue["a"]
    body = search(web, a, face("obama-3.jpg")).json()
    with httpx.stream("GET", body["zip_url"]) as reply:
        assert reply.status_code == 200
        assert "content-length" not in reply.headers, "streamed, not built in memory"
        data = reply.read()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["obama-1.jpg", "obama-2.jpg"]
        assert archive.read("obama-1.jpg") == face("obama-1.jpg")
        assert archive.testzip() is None
    other = body["zip_url"].replace(f"/e/{a}/", f"/e/{venue['b']}/")
    assert httpx.get(other).status_code == 404


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares a huge size: its few bytes would decode to gigabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (b"this is not a picture at all", 422, "not_an_image"),
        (b"", 400, "no_file"),
        (_png_header(40_000, 40_000), 422, "too_large"),
        ("truncated", 422, "not_an_image"),
        ("landscape", 422, "no_face"),
    ],
    ids=["text", "empty", "decompression-bomb", "truncated-jpeg", "no-face"],
)
def test_bad_selfies_get_a_friendly_error(venue: dict[str, Any], data: Any, status: int, error: str) -> None:
    if data == "truncated":
        data = face("obama-3.jpg")[:20_000]
    elif data == "landscape":
        out = io.BytesIO()
        Image.linear_gradient("L").resize((800, 600)).convert("RGB").save(out, "JPEG")
        data = out.getvalue()
    reply = search(venue["web"], venue["a"], data)
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error"] == error and len(body["message"]) > 20 and "Traceback" not in body["message"]
    # the box is fine afterwards
    assert search(venue["web"], venue["a"], face("obama-3.jpg")).status_code == 200


def test_selfie_with_several_faces_uses_the_largest(venue: dict[str, Any]) -> None:
    # Obama's face ~114 px and Biden's ~94 px: both found, Obama's the larger
    canvas = Image.new("RGB", (900, 900), (200, 200, 200))
    with Image.open(FACES / "obama-3.jpg") as big, Image.open(FACES / "biden-1.jpg") as small:
        big.thumbnail((900, 900))
        small.thumbnail((620, 620))
        canvas.paste(big.convert("RGB"), (0, 0))
        canvas.paste(small.convert("RGB"), (600, 200))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    body = search(venue["web"], venue["a"], out.getvalue()).json()
    assert body["faces_in_selfie"] == 2
    assert {m["photo_id"] for m in body["matches"]} == {
        venue["ids_a"]["obama-1.jpg"],
        venue["ids_a"]["obama-2.jpg"],
    }


def test_selfie_never_touches_the_disk(venue: dict[str, Any]) -> None:
    """A 6 MB selfie (Starlette would spool anything over 1 MB to a temp file) leaves no file
    in the box's temp folder or its data folder."""
    created: list[str] = []

    class Record(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type in ("created", "modified", "moved"):
                created.append(str(event.src_path))

    big = io.BytesIO()
    with Image.open(FACES / "obama-3.jpg") as image:
        image.convert("RGB").resize((3000, 4880)).save(big, "JPEG", quality=97)
    assert big.tell() > 1_500_000
    data = venue["box"].data
    observer = Observer()
    observer.schedule(Record(), str(venue["box_tmp"]), recursive=True)
    observer.schedule(Record(), str(data), recursive=True)
    observer.start()
    try:
        reply = search(venue["web"], venue["a"], big.getvalue(), name="guest-private-selfie.jpg", timeout=60)
        time.sleep(1.0)
    finally:
        observer.stop()
        observer.join()
    assert reply.status_code == 200 and len(reply.json()["matches"]) == 2
    written = [
        p for p in created if not p.endswith(("-wal", "-shm", "-journal", "box.log")) and "/thumbs/" not in p
    ]
    assert written == []
    assert b"guest-private-selfie" not in (data / "box.log").read_bytes()


def test_oversized_upload_is_refused_before_it_is_read(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", guest__max_selfie_mb="1", faces__enabled="false").start(timeout=90)
    try:
        event = box.new_event()
        web = f"http://127.0.0.1:{box.info['web_port']}"
        reply = search(web, event, b"\xff\xd8" + os.urandom(3 << 20))
        assert reply.status_code == 413
        assert reply.json()["error"] == "upload_too_large"
    finally:
        box.stop()


def test_search_and_code_guessing_are_rate_limited_per_client(tmp_path: Path) -> None:
    box = make_box(
        tmp_path / "data", guest__searches_per_minute="3", guest__code_attempts_per_hour="4"
    ).start(timeout=90)
    try:
        event = box.new_event()
        web = f"http://127.0.0.1:{box.info['web_port']}"
        statuses = [search(web, event, face("hopper-1.jpg")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = search(web, event, face("hopper-1.jpg"))
        assert limited.json()["error"] == "rate_limited" and int(limited.headers["retry-after"]) > 0

        assert httpx.get(f"{web}/e/{event}").status_code == 200
        for guess in ("aaaaaaaa", "bbbbbbbb", "cccccccc", "dddddddd"):
            assert httpx.get(f"{web}/e/{guess}").status_code == 404
        # the allowance is spent: even the right code is refused now, without saying why
        assert httpx.get(f"{web}/e/{event}").status_code == 404
    finally:
        box.stop()


def test_event_pin_guards_page_and_api(venue: dict[str, Any]) -> None:
    box, web = venue["box"], venue["web"]
    event = box.new_event("Private party")
    assert box.cli("event", "pin", event, "4321")["pin"] is True
    try:
        page = httpx.get(f"{web}/e/{event}")
        assert page.status_code == 200 and 'name="pin"' in page.text and 'name="selfie"' not in page.text
        assert search(web, event, face("obama-3.jpg")).status_code == 404
        with httpx.Client(base_url=web) as guest:
            wrong = guest.post(f"/e/{event}/pin", data={"pin": "1111"})
            assert wrong.status_code == 403 and "not right" in wrong.text
            right = guest.post(f"/e/{event}/pin", data={"pin": "4321"})
            assert right.status_code == 303
            assert 'name="selfie"' in guest.get(f"/e/{event}").text
            found = guest.post(
                f"/api/events/{event}/search", files={"selfie": ("s.jpg", face("obama-3.jpg"))}
            )
            assert found.status_code == 200 and found.json()["matches"] == []
    finally:
        box.cli("event", "pin", event, "none")
    assert 'name="selfie"' in httpx.get(f"{web}/e/{event}").text


def test_host_link_shows_the_whole_event_until_revoked(venue: dict[str, Any]) -> None:
    box, web, a = venue["box"], venue["web"], venue["a"]
    # the link names the box by its mDNS name; here it is reached on loopback
    first = web + urlsplit(box.cli("event", "host-link", a)["url"]).path
    page = httpx.get(first)
    assert page.status_code == 200
    assert page.text.count('class="thumb"') == len(EVENT_A)
    assert f"/e/{venue['b']}/" not in page.text
    second = web + urlsplit(box.cli("event", "host-link", a)["url"]).path
    assert httpx.get(first).status_code == 404, "a new host link replaces the old one"
    assert httpx.get(second).status_code == 200
    box.cli("event", "host-link", a, "--revoke")
    assert httpx.get(second).status_code == 404
    assert httpx.get(f"{web}/e/{a}").status_code == 200, "the guest page is untouched"


def test_qr_code_for_printing_and_screen(venue: dict[str, Any], tmp_path: Path) -> None:
    box, web, a = venue["box"], venue["web"], venue["a"]
    png = httpx.get(f"{web}/e/{a}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(png.content)) as image:
        assert image.size[0] == image.size[1] >= 250
    svg = httpx.get(f"{web}/e/{a}/qr.svg")
    assert svg.status_code == 200 and "<svg" in svg.text
    out = tmp_path / "table-card.svg"
    info = box.cli("event", "guest", a, "--out", str(out))
    assert info["url"].endswith(f"/e/{a}") and "<svg" in out.read_text()
    assert httpx.get(f"{web}/e/{a}/qr.gif").status_code == 404
