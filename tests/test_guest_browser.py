"""The guest pages in a real phone-sized browser against a real box: photos sent by FTP, indexed by
the local face index, found with a real selfie. A guest sees exactly their own photos of the
event whose page they are on, thumbnails and downloads work, bad input gets a friendly message,
a PIN keeps strangers out, the host link shows the whole event, another event's links are 404,
and the page is small and talks to nobody but the box."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from appliance import credentials
from tests.boxproc import BoxProcess, make_box, store
from tests.test_guest_api import wait_indexed

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PIN = "4321"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not FACES.is_dir(), reason=f"face test images not found at {FACES}"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} to drive the guest pages"),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")


@dataclass
class Venue:
    box: BoxProcess
    base: str  # http://127.0.0.1:<web port>
    a: str  # event codes
    b: str
    pinned: str
    files: dict[str, dict[str, bytes]]  # event -> original name -> uploaded bytes
    ids: dict[str, dict[str, int]]  # event -> original name -> photo id


def reencoded(data: bytes) -> bytes:
    """The same picture as a different file (another JPEG encoding)."""
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(out, "JPEG", quality=72)
    assert out.getvalue() != data
    return out.getvalue()


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    box = make_box(tmp_path_factory.mktemp("guest") / "data").start(timeout=60)
    try:
        a, b = box.new_event("Garden party"), box.new_event("Conference dinner")
        pinned = box.new_event("Private wedding")
        box.cli("event", "pin", pinned, PIN)
        obama2 = (FACES / "obama-2.jpg").read_bytes()
        files = {
            a: {
                n: (FACES / n).read_bytes()
                for n in ("obama-1.jpg", "obama-2.jpg", "biden-1.jpg", "hopper-1.jpg")
            },
            # same file name as in A, but a different file: isolation must not hinge on names
            b: {
                "obama-2.jpg": reencoded(obama2),
                "curie-couple.jpg": (FACES / "curie-couple.jpg").read_bytes(),
            },
            pinned: {"obama-1.jpg": (FACES / "obama-1.jpg").read_bytes()},
        }
        for event, named in files.items():
            user, password = box.new_key(event)
            with box.ftp(user, password) as ftp:
                for name, data in named.items():
                    assert store(ftp, name, data).startswith("226")
        wait_indexed(box)
        ids = {e: {p["original_name"]: int(p["id"]) for p in box.photos(e)} for e in files}
        assert {e: set(n) for e, n in ids.items()} == {e: set(n) for e, n in files.items()}
        assert all(p["faces_state"] == "done" for e in files for p in box.photos(e))
        yield Venue(box, f"http://127.0.0.1:{box.info['web_port']}", a, b, pinned, files, ids)
    finally:
        code = box.stop()
    assert code == 0, f"box exited with {code}:\n{box.log[-4000:]}"


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def phone(browser: sync_api.Browser, venue: Venue) -> Iterator[sync_api.BrowserContext]:
    """A fresh phone (no cookies, no cache) per test."""
    context = browser.new_context(
        base_url=venue.base,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        accept_downloads=True,
    )
    context.set_default_timeout(20_000)
    yield context
    context.close()


@pytest.fixture
def page(phone: sync_api.BrowserContext) -> sync_api.Page:
    return phone.new_page()


def take_selfie(page: sync_api.Page, picture: Path, *, watch: bool = False) -> sync_api.Response:
    """Tick the consent box (and "keep looking" if asked), choose a picture in the selfie input
    (which submits itself); the page the search led to: the results' own address (after the
    POST's 303), or the event page again with an error."""
    page.check("#consent")
    if watch:
        page.check("#watch")
    with page.expect_navigation() as navigation:
        page.set_input_files("#selfie", str(picture))
    response = navigation.value
    assert response is not None
    path = urlsplit(response.url).path
    if response.status == 200:
        assert response.request.method == "GET" and "/r/" in path, path
        assert response.request.redirected_from is not None
        assert response.request.redirected_from.method == "POST"
    else:
        assert response.request.method == "POST" and path.endswith("/search"), path
    return response


def shown_ids(page: sync_api.Page) -> list[int]:
    return [
        int(x) for x in page.locator(".grid a.thumb").evaluate_all("els => els.map(e => e.dataset.photo)")
    ]


def assert_thumbnails_load(page: sync_api.Page, expected: int) -> None:
    images = page.locator(".grid a.thumb img")
    assert images.count() == expected
    page.wait_for_function(
        "() => [...document.querySelectorAll('.grid a.thumb img')].every(i => i.complete)", timeout=20_000
    )
    widths = images.evaluate_all("els => els.map(i => i.naturalWidth)")
    assert all(w > 0 for w in widths), f"thumbnails did not load: naturalWidth {widths}"


def zip_names(context: sync_api.BrowserContext, url: str) -> list[str]:
    response = context.request.get(url)
    assert response.status == 200 and response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.body())) as archive:
        return sorted(archive.namelist())


def test_selfie_finds_exactly_my_photos_of_this_event(
    venue: Venue, page: sync_api.Page, phone: sync_api.BrowserContext
) -> None:
    page.goto(f"/e/{venue.a}")
    assert page.locator("h1").inner_text() == "Garden party"
    response = take_selfie(page, FACES / "obama-3.jpg")
    assert response.status == 200
    mine = {venue.ids[venue.a]["obama-1.jpg"], venue.ids[venue.a]["obama-2.jpg"]}
    shown = shown_ids(page)
    assert sorted(shown) == sorted(mine), f"expected A's two Obama photos {mine}, page shows {shown}"
    assert venue.ids[venue.b]["obama-2.jpg"] not in shown, "another event's photo leaked into the results"
    assert page.locator("#count").inner_text().startswith("2 photos of you")
    assert page.locator("#none").count() == 0 and page.locator("#offline").count() == 0
    assert_thumbnails_load(page, 2)

    # open the first photo full size, then download the original
    first = shown[0]
    overlay = page.locator("#viewer")
    assert not overlay.is_visible()
    page.locator(f'a.thumb[data-photo="{first}"]').click()
    overlay.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#v-img').naturalWidth > 0")
    with page.expect_download() as info:
        overlay.get_by_role("link", name="Download").click()
    download = info.value
    name = next(n for n, i in venue.ids[venue.a].items() if i == first)
    assert download.suggested_filename == name
    assert Path(download.path()).read_bytes() == venue.files[venue.a][name], "download is not the original"

    # "Download all" holds exactly the photos shown
    assert zip_names(phone, page.locator("#zip").get_attribute("href") or "") == [
        "obama-1.jpg",
        "obama-2.jpg",
    ]


def test_same_selfie_on_another_event_finds_only_that_events_photo(venue: Venue, page: sync_api.Page) -> None:
    page.goto(f"/e/{venue.b}")
    assert take_selfie(page, FACES / "obama-3.jpg").status == 200
    assert shown_ids(page) == [venue.ids[venue.b]["obama-2.jpg"]]
    assert page.locator("#count").inner_text().startswith("1 photo of you")
    assert_thumbnails_load(page, 1)


def test_stranger_sees_none_and_bad_file_gets_a_friendly_error(
    venue: Venue, page: sync_api.Page, tmp_path: Path
) -> None:
    page.goto(f"/e/{venue.a}")
    assert take_selfie(page, FACES / "collins-astronaut.png").status == 200
    assert page.locator("#none").is_visible()
    assert page.locator(".grid a.thumb").count() == 0 and page.locator("#zip").count() == 0

    page.get_by_role("link", name="New search").click()
    page.wait_for_url(f"**/e/{venue.a}")
    not_a_photo = tmp_path / "selfie.jpg"
    not_a_photo.write_text("this is a shopping list, not a JPEG\n" * 20)
    response = take_selfie(page, not_a_photo)
    assert response.status == 422
    error = page.locator(".error")
    assert error.is_visible()
    assert "isn't a photo" in error.inner_text()
    assert "Traceback" not in page.content()

    # the error page still has a working selfie form
    assert take_selfie(page, FACES / "obama-3.jpg").status == 200
    assert sorted(shown_ids(page)) == sorted(
        [venue.ids[venue.a]["obama-1.jpg"], venue.ids[venue.a]["obama-2.jpg"]]
    )
    assert page.locator(".error").count() == 0


def test_pin_keeps_the_event_closed_until_typed(
    venue: Venue, page: sync_api.Page, phone: sync_api.BrowserContext
) -> None:
    page.goto(f"/e/{venue.pinned}")
    assert page.locator("input[name=pin]").is_visible()
    assert page.locator("#selfie").count() == 0
    api = phone.request.post(
        f"/api/events/{venue.pinned}/search",
        multipart={
            "selfie": {
                "name": "me.jpg",
                "mimeType": "image/jpeg",
                "buffer": (FACES / "obama-3.jpg").read_bytes(),
            }
        },
    )
    assert api.status == 404, "a search without the PIN must not reach the event"

    page.fill("input[name=pin]", "1111")
    with page.expect_navigation() as wrong:
        page.get_by_role("button", name="Continue").click()
    assert wrong.value is not None and wrong.value.status == 403
    assert page.locator(".error").inner_text() == "That PIN is not right."
    assert page.locator("#selfie").count() == 0

    page.fill("input[name=pin]", PIN)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"**/e/{venue.pinned}")
    page.locator("#selfie").wait_for(state="attached")
    assert page.locator("input[name=pin]").count() == 0
    assert take_selfie(page, FACES / "obama-3.jpg").status == 200
    assert shown_ids(page) == [venue.ids[venue.pinned]["obama-1.jpg"]]
    assert_thumbnails_load(page, 1)


def test_host_link_lists_the_whole_event_and_nothing_else(
    venue: Venue, page: sync_api.Page, phone: sync_api.BrowserContext
) -> None:
    link = venue.box.cli("event", "host-link", venue.a)["url"]
    response = page.goto(urlsplit(link).path)
    assert response is not None and response.status == 200
    shown = shown_ids(page)
    assert sorted(shown) == sorted(venue.ids[venue.a].values())
    assert not set(shown) & set(venue.ids[venue.b].values())
    assert_thumbnails_load(page, 4)
    zip_all = page.locator("#zip-all").get_attribute("href") or ""
    assert zip_names(phone, zip_all) == sorted(venue.files[venue.a])


def test_other_events_code_in_a_photo_url_is_not_found(
    venue: Venue, page: sync_api.Page, phone: sync_api.BrowserContext
) -> None:
    page.goto(f"/e/{venue.a}")
    take_selfie(page, FACES / "obama-3.jpg")
    tile = page.locator(".grid a.thumb").first
    thumb = tile.locator("img").get_attribute("src") or ""
    view = tile.get_attribute("href") or ""
    download = tile.get_attribute("data-download") or ""
    for url in (thumb, view, download):
        assert url.startswith(f"/e/{venue.a}/p/"), url
        own = phone.request.get(url)
        assert own.status == 200, f"{url} should work under its own event"
        swapped = phone.request.get(url.replace(f"/e/{venue.a}/", f"/e/{venue.b}/", 1))
        assert swapped.status == 404, f"{url} under event B gave {swapped.status}"
        assert swapped.body() == b"Not found"

    taken = {venue.a, venue.b, venue.pinned}
    while (stranger := credentials.new_event_code()) in taken:
        pass
    response = page.goto(f"/e/{stranger}")
    assert response is not None and response.status == 404
    assert page.locator("#selfie").count() == 0


def test_event_page_is_small_and_talks_only_to_the_box(venue: Venue, page: sync_api.Page) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = page.goto(f"/e/{venue.a}")
    assert response is not None and response.status == 200
    html = response.body()
    assert len(html) < 8 * 1024, f"event page is {len(html)} bytes"
    assert b'id="selfie"' in html
    take_selfie(page, FACES / "obama-3.jpg")
    assert_thumbnails_load(page, 2)
    box = urlsplit(venue.base).netloc
    assert requested, "no requests were recorded"
    # thumbnails of matches are centred on the guest's face (f<face id>.jpg)
    assert any(re.search(r"/f\d+\.jpg$", urlsplit(u).path) for u in requested), requested
    elsewhere = [u for u in requested if urlsplit(u).netloc != box]
    assert not elsewhere, f"the guest pages asked other hosts: {elsewhere}"
