"""Every photo format a camera sends is searchable, end to end, against a real box.

One ``shutterbox up`` for the module. Each format (NEF, CR3, ARW, DNG, HEIF, PNG) gets an event
of its own holding one frame of the person in that format and one JPEG of someone else; the
real face engine indexes them; the person's selfie finds exactly that frame, whose thumbnail
and full view are served as upright JPEGs. The RAWs are built by ``tests.camerafiles`` with
the structure and embedded preview the bodies write (no PyPI package ships sample RAWs);
two of them are stored sideways with an orientation tag, as a portrait frame is.

Also: a RAW+JPEG pair from one shutter is one guest result (whichever half lands first), the
RAW stays stored and is offered to the host beside its JPEG; video, sidecars and a RAW without
a preview are typed tiles on the host page, never indexed, the latter with its reason.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from tests import camerafiles as cf
from tests.boxproc import BoxProcess, make_box, store
from tests.test_guest_api import wait_indexed

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not FACES.is_dir(), reason=f"public-domain face photos not found at {FACES}"),
]

PERSON, SELFIE, OTHER = FACES / "obama-1.jpg", FACES / "obama-3.jpg", FACES / "hopper-1.jpg"


def frames() -> dict[str, tuple[str, bytes]]:
    """Per format: the camera's file name and bytes of the person's frame."""
    upright = cf.jpeg_of(PERSON)
    sideways_cw = cf.jpeg_of(PERSON, turned=90)  # stored turned left: orientation 6 rights it
    sideways_ccw = cf.jpeg_of(PERSON, turned=270)  # stored turned right: orientation 8
    small = cf.jpeg_of(PERSON, 160)
    return {
        "nef": ("DSC_0001.NEF", cf.nef(sideways_cw, orientation=6)),
        "cr3": ("IMG_0001.CR3", cf.cr3(sideways_ccw, cf.jpeg_of(PERSON, 160, turned=270), orientation=8)),
        "arw": ("DSC00001.ARW", cf.arw(upright, small)),
        "dng": ("L1000001.DNG", cf.dng(upright)),
        "heif": ("IMG_0001.HIF", cf.heif(PERSON)),
        "png": ("portrait.png", cf.png(PERSON)),
    }


def upload(
    box: BoxProcess, event: str, files: dict[str, bytes], camera: str = "cam"
) -> dict[str, dict[str, Any]]:
    user, password = box.new_key(event, camera=camera)
    with box.ftp(user, password) as ftp:
        for name, data in files.items():
            assert store(ftp, name, data).startswith("226"), name
    return {p["original_name"]: p for p in box.photos(event)}


def search(web: str, event: str, selfie: Path = SELFIE) -> dict[str, Any]:
    reply = httpx.post(
        f"{web}/api/events/{event}/search", files={"selfie": ("me.jpg", selfie.read_bytes(), "image/jpeg")}
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def jpeg_size(web: str, url: str) -> tuple[int, int]:
    reply = httpx.get(web + urlsplit(url).path)
    assert reply.status_code == 200, (url, reply.text)
    assert reply.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(reply.content)) as image:
        assert image.format == "JPEG"
        return image.size


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("formats")
    box = make_box(
        tmp / "data",
        faces__workers="1",
        guest__searches_per_minute="1000",
        guest__code_attempts_per_hour="1000",
    )
    box.start(timeout=90)
    try:
        events: dict[str, str] = {}
        photos: dict[str, dict[str, Any]] = {}
        for fmt, (name, data) in frames().items():
            events[fmt] = box.new_event(f"{fmt} wedding")
            photos[fmt] = upload(box, events[fmt], {name: data, "other.jpg": cf.jpeg_of(OTHER)})[name]
        pair = box.new_event("RAW+JPEG")
        body = {"make": "NIKON CORPORATION", "model": "NIKON Z 6_2", "serial": "6012345"}
        first = "2026:12:06 15:04:05"
        second = "2026:12:06 15:04:09"
        obama = cf.jpeg_of(PERSON)
        biden = cf.jpeg_of(FACES / "biden-1.jpg")
        paired = upload(
            box,
            pair,
            {  # JPEG first, then RAW first: cameras send the halves in either order
                "DSC_0100.JPG": cf.exif_jpeg(PERSON, **body, capture=first),
                "DSC_0100.NEF": cf.nef(obama, serial=body["serial"], capture=first),
                "DSC_0101.NEF": cf.nef(biden, serial=body["serial"], capture=second),
                "DSC_0101.JPG": cf.exif_jpeg(FACES / "biden-1.jpg", **body, capture=second),
            },
        )
        tiles = box.new_event("Typed tiles")
        typed = upload(
            box,
            tiles,
            {
                "C0001.MP4": cf.mp4(),
                "DSC_0200.XMP": b'<?xpacket begin=""?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>',
                "memo.WAV": b"RIFF\x24\0\0\0WAVEfmt " + bytes(28),
                "DSC_0300.NEF": cf.nef(None),
                "export.png": cf.png(PERSON),
            },
        )
        wait_indexed(box, timeout=180)
        yield {
            "box": box,
            "web": f"http://127.0.0.1:{box.info['web_port']}",
            "events": events,
            "photos": photos,
            "pair": pair,
            "paired": paired,
            "tiles": tiles,
            "typed": typed,
        }
    finally:
        box.stop()


@pytest.mark.parametrize("fmt", ["nef", "cr3", "arw", "dng", "heif", "png"])
def test_each_format_is_proxied_thumbnailed_indexed_and_found(venue: dict[str, Any], fmt: str) -> None:
    box, web, event = venue["box"], venue["web"], venue["events"][fmt]
    photo = next(p for p in box.photos(event) if p["id"] == venue["photos"][fmt]["id"])
    assert photo["searchable"] is True
    assert photo["faces_state"] == "done", photo
    assert photo["proxy_path"], "the local index made the proxy"
    with Image.open(photo["proxy_path"]) as proxy:
        assert proxy.format == "JPEG"
        assert proxy.size == (910, 1137), "the person's frame, upright (portrait)"

    body = search(web, event)
    assert [m["photo_id"] for m in body["matches"]] == [photo["id"]], body
    match = body["matches"][0]
    assert jpeg_size(web, match["thumbnail_url"]) == (384, 480)
    assert jpeg_size(web, match["view_url"]) == (910, 1137)
    original = httpx.get(web + urlsplit(match["download_url"]).path)
    assert original.status_code == 200
    assert original.content == Path(photo["stored_path"]).read_bytes(), "the download is the camera's file"


def test_png_selfie_page_finds_the_person(venue: dict[str, Any]) -> None:
    """As a new user tried it: a PNG on the box, its person's selfie got "No photos of you yet"."""
    web, event = venue["web"], venue["events"]["png"]
    page = httpx.post(
        f"{web}/e/{event}/search",
        files={"selfie": ("me.jpg", SELFIE.read_bytes(), "image/jpeg")},
        data={"consent": "yes"},
        follow_redirects=True,  # to the results' own address
    )
    assert page.status_code == 200
    assert 'id="none"' not in page.text, "the page said: no photos of you yet"
    assert re.search(r'<p id="count"[^>]*>1 photo of you', page.text), page.text


def test_raw_and_jpeg_of_one_shutter_are_one_result(venue: dict[str, Any]) -> None:
    box, web, pair, paired = venue["box"], venue["web"], venue["pair"], venue["paired"]
    assert {p["kind"] for p in paired.values()} == {"jpeg", "raw"}
    assert len(box.photos(pair)) == 4, "both halves of each pair are stored"
    for selfie, jpeg in ((SELFIE, "DSC_0100.JPG"), (FACES / "biden-1.jpg", "DSC_0101.JPG")):
        body = search(web, pair, selfie)
        assert [m["photo_id"] for m in body["matches"]] == [paired[jpeg]["id"]], (jpeg, body)
    for raw in ("DSC_0100.NEF", "DSC_0101.NEF"):
        row = next(p for p in box.photos(pair) if p["original_name"] == raw)
        assert row["state"] == "queued", "the RAW stays stored and synced"

    host = box.cli("event", "host-link", pair)["url"]
    page = httpx.get(web + urlsplit(host).path)
    assert page.status_code == 200
    assert page.text.count('class="thumb"') == 2, "one tile per shutter"
    assert "2 photos." in page.text
    raw_links = re.findall(r'<a href="([^"]+)" class="raw" download>NEF</a>', page.text)
    assert len(raw_links) == 2, "the host downloads each RAW beside its JPEG"
    stored = {Path(paired[n]["stored_path"]).read_bytes() for n in ("DSC_0100.NEF", "DSC_0101.NEF")}
    assert {httpx.get(web + link).content for link in raw_links} == stored


def test_video_sidecars_and_a_raw_without_preview_are_typed_tiles(venue: dict[str, Any]) -> None:
    box, web, tiles, typed = venue["box"], venue["web"], venue["tiles"], venue["typed"]
    kinds = {name: p["kind"] for name, p in typed.items()}
    assert kinds == {
        "C0001.MP4": "video",
        "DSC_0200.XMP": "other",
        "memo.WAV": "other",
        "DSC_0300.NEF": "raw",
        "export.png": "png",
    }
    rows = {p["original_name"]: p for p in box.photos(tiles)}
    for name in ("C0001.MP4", "DSC_0200.XMP", "memo.WAV"):
        assert rows[name]["faces_state"] is None and rows[name]["searchable"] is False, "never indexed"
    blind = rows["DSC_0300.NEF"]
    assert blind["faces_state"] == "failed"
    assert (
        blind["faces_error"]
        == "no preview: " + Path(blind["stored_path"]).name + " holds no embedded JPEG preview"
    )

    host = box.cli("event", "host-link", tiles)["url"]
    page = httpx.get(web + urlsplit(host).path)
    assert page.status_code == 200
    assert sorted(re.findall(r'data-type="([A-Z0-9]+)"', page.text)) == ["MP4", "NEF", "WAV", "XMP"]
    assert "no preview" in page.text
    pictures = re.findall(r'class="thumb" data-photo="\d+"><img src="([^"]+)"', page.text)
    assert len(pictures) == 1, "the PNG is a picture tile"
    assert jpeg_size(web, pictures[0]) == (384, 480), "and its thumbnail is not broken"
