"""The guest gallery on a phone, every page and state of it, in Debian's chromium at 390x844
against a real box: face-centred thumbnails, results at their own address (reload and back never
search again), live "new photos of you", the lightbox, the designed pages for every state, the
consent box, an event without face search, the event's look.

Every state is photographed into ``artifacts/guest-screens/`` (CI keeps the folder) and checked
the same way: no horizontal scroll, tap targets of at least 44 px, no image that failed to load,
and axe-core (bundled by axe-playwright-python, run inside the page) finds no serious or
critical violation.
"""

from __future__ import annotations

import io
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from tests.boxproc import BoxProcess, free_port, make_box, store
from tests.test_guest_api import reencoded, wait_indexed
from tests.test_guest_browser import CHROMIUM, FACES, browser, take_selfie
from tests.test_sync import cloud_box

__all__ = ["browser"]  # the module-scoped browser fixture, shared with test_guest_browser

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not FACES.is_dir(), reason=f"face test images not found at {FACES}"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} to drive the guest pages"),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
axe_sync = pytest.importorskip(
    "axe_playwright_python.sync_playwright", reason="axe-playwright-python missing"
)

SCREENS = Path(
    os.environ.get("SHUTTERBOX_SCREENS", Path(__file__).resolve().parents[1] / "artifacts" / "guest-screens")
)
PHONE = {"width": 390, "height": 844}
MIN_TAP = 44


@dataclass
class Venue:
    box: BoxProcess
    base: str
    event: str  # face search on: obama-1, biden-1, hopper-1
    browse: str  # face search off: the host-published gallery
    ids: dict[str, int]


def upload(box: BoxProcess, event: str, files: dict[str, bytes]) -> None:
    user, password = box.new_key(event, camera=f"cam-{time.monotonic_ns() % 100000}")
    with box.ftp(user, password) as ftp:
        for name, data in files.items():
            assert store(ftp, name, data).startswith("226")


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    box = make_box(
        tmp_path_factory.mktemp("gallery") / "data",
        guest__searches_per_minute="40",
        guest__code_attempts_per_hour="1000",
    ).start(timeout=60)
    try:
        event = box.new_event("Garden party")
        browse = box.new_event("Sports day")
        upload(
            box, event, {n: (FACES / n).read_bytes() for n in ("obama-1.jpg", "biden-1.jpg", "hopper-1.jpg")}
        )
        upload(box, browse, {"curie-couple.jpg": (FACES / "curie-couple.jpg").read_bytes()})
        wait_indexed(box)
        ids = {p["original_name"]: int(p["id"]) for p in box.photos(event)}
        yield Venue(box, f"http://127.0.0.1:{box.info['web_port']}", event, browse, ids)
    finally:
        code = box.stop()
    assert code == 0, f"box exited with {code}:\n{box.log[-4000:]}"


@pytest.fixture
def page(browser: sync_api.Browser, venue: Venue) -> Iterator[sync_api.Page]:
    context = browser.new_context(
        base_url=venue.base, viewport=PHONE, is_mobile=True, has_touch=True, accept_downloads=True
    )
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def check_state(page: sync_api.Page, name: str) -> None:
    """Photograph the page and hold it to the phone's rules."""
    page.wait_for_load_state("load")
    # lazy images load once near the viewport: bring each into view, then wait for all
    page.evaluate("() => [...document.images].forEach(i => { i.loading = 'eager'; })")
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    SCREENS.mkdir(parents=True, exist_ok=True)
    # bytes, written here: with path= Playwright writes from an executor thread it keeps
    (SCREENS / f"{name}.png").write_bytes(page.screenshot(full_page=True))
    broken = page.evaluate(
        "() => [...document.images]"
        ".filter(i => i.getAttribute('src') && i.naturalWidth === 0).map(i => i.src)"
    )
    assert not broken, f"{name}: images that did not load: {broken}"
    scroll, width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= width, f"{name}: the page scrolls sideways ({scroll} px wide in {width})"
    small = page.evaluate(
        """(min) => [...document.querySelectorAll(
             'a.btn, button, label.btn, .check, .pick, select, input[type=text], input[type=password],'
             + ' .grid a, dialog[open] a')]
          .filter(e => e.offsetParent !== null || e.closest('dialog[open]'))
          .map(e => [e.id || e.textContent.trim().slice(0, 20) || e.tagName, e.getBoundingClientRect()])
          .filter(([, r]) => r.width > 0 && (r.width < min || r.height < min))
          .map(([n, r]) => `${n}: ${Math.round(r.width)}x${Math.round(r.height)}`)""",
        MIN_TAP,
    )
    assert not small, f"{name}: tap targets under {MIN_TAP} px: {small}"
    found = axe_sync.Axe().run(page).response["violations"]
    bad = [f"{v['id']} ({v['impact']}): {v['help']}" for v in found if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: accessibility violations: {bad}"


def shown_ids(page: sync_api.Page) -> list[int]:
    return [
        int(x)
        for x in page.locator("#grid a.thumb:not([hidden])").evaluate_all(
            "els => els.map(e => e.dataset.photo)"
        )
    ]


def faces_in(jpeg: bytes) -> list[tuple[float, float]]:
    """Centres of the faces dlib's own detector sees in a picture, as fractions of its size."""
    import dlib
    import numpy as np

    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    found = dlib.get_frontal_face_detector()(np.asarray(image), 1)
    return [
        ((r.left() + r.right()) / 2 / image.width, (r.top() + r.bottom()) / 2 / image.height) for r in found
    ]


# --- states -----------------------------------------------------------------------------------


def test_home_and_an_unknown_code_are_pages_to_act_on(venue: Venue, page: sync_api.Page) -> None:
    assert page.goto("/").status == 200
    check_state(page, "01-home")
    page.fill("#code", "zzzz-zzzz")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Open").click()
    assert nav.value.status == 404
    assert "No event has that code" in page.locator("#error").inner_text()
    assert page.locator("#code").input_value() == "zzzzzzzz", "the code typed is kept to correct"
    check_state(page, "02-unknown-code")
    # a code typed in capitals (as printed on some cards) is the same event, at one address
    response = page.goto(f"/e/{venue.event.upper()}")
    assert response is not None and response.status == 200
    assert urlsplit(page.url).path == f"/e/{venue.event}"


def test_consent_comes_first(venue: Venue, page: sync_api.Page) -> None:
    page.goto(f"/e/{venue.event}")
    check_state(page, "03-event")
    assert "compared with the faces" in page.locator("label[for=consent]").inner_text()
    # choosing a picture without the tick does not send it; the page says why
    page.set_input_files("#selfie", str(FACES / "obama-3.jpg"))
    page.locator("#need").wait_for(state="visible")
    assert urlsplit(page.url).path == f"/e/{venue.event}"
    check_state(page, "04-consent-needed")
    # and the box refuses a page search without it, whatever the client
    reply = httpx.post(
        f"{venue.base}/e/{venue.event}/search",
        files={"selfie": ("me.jpg", (FACES / "obama-3.jpg").read_bytes(), "image/jpeg")},
    )
    assert reply.status_code == 422 and "tick the box" in reply.text


def test_consent_can_be_switched_off_where_no_law_asks(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", guest__consent_required="false").start(timeout=60)
    try:
        event = box.new_event("No consent box")
        web = f"http://127.0.0.1:{box.info['web_port']}"
        page = httpx.get(f"{web}/e/{event}")
        assert 'id="consent"' not in page.text and "compared with the faces" in page.text
        reply = httpx.post(
            f"{web}/e/{event}/search",
            files={"selfie": ("me.jpg", (FACES / "obama-3.jpg").read_bytes(), "image/jpeg")},
        )
        assert reply.status_code == 303, reply.text[:300]
    finally:
        assert box.stop() == 0


def test_no_face_and_not_a_photo_are_said_plainly(venue: Venue, page: sync_api.Page, tmp_path: Path) -> None:
    page.goto(f"/e/{venue.event}")
    blank = tmp_path / "wall.jpg"
    Image.new("RGB", (640, 480), (200, 190, 180)).save(blank)
    assert take_selfie(page, blank).status == 422
    assert "couldn't find a face" in page.locator("#error").inner_text()
    assert page.locator("#consent").is_visible()
    check_state(page, "05-no-face")


def test_results_have_their_own_address_and_thumbnails_show_the_face(
    venue: Venue, page: sync_api.Page
) -> None:
    page.goto(f"/e/{venue.event}")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    take_selfie(page, FACES / "biden-1.jpg")
    results_url = page.url
    assert shown_ids(page) == [venue.ids["biden-1.jpg"]]
    check_state(page, "06-results")
    assert len(posts) == 1

    # the thumbnail is centred on the face (Biden's portrait frame: a centre crop showed his hands)
    src = page.locator("#grid a.thumb img").first.get_attribute("src") or ""
    thumb = httpx.get(venue.base + src)
    assert thumb.status_code == 200
    centres = faces_in(thumb.content)
    assert centres, f"no face in the thumbnail {src}"
    assert all(0.2 < x < 0.8 and 0.15 < y < 0.85 for x, y in centres), centres

    # reload, back and forward show the same results and never send the selfie again
    page.reload()
    assert shown_ids(page) == [venue.ids["biden-1.jpg"]]
    page.go_back()
    page.go_forward()
    assert page.url == results_url and shown_ids(page) == [venue.ids["biden-1.jpg"]]
    assert len(posts) == 1, f"the search ran again: {posts}"
    # the address holds nothing but an opaque random token (128 bits), no photo id, no query
    address = urlsplit(results_url)
    token = address.path.rsplit("/", 1)[1]
    assert address.path == f"/e/{venue.event}/r/{token}" and not address.query
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", token), token

    # another event's code with the same token: not these results
    other = page.goto(f"/e/{venue.browse}/r/{token}")
    assert other is not None and other.status == 410


def test_search_off_offers_the_gallery_only(venue: Venue, page: sync_api.Page) -> None:
    venue.box.cli("event", "edit", venue.browse, "--face-search", "off")
    page.goto(f"/e/{venue.browse}")
    assert page.locator("#selfie").count() == 0
    assert page.locator("#grid a.thumb").count() >= 1
    check_state(page, "08-gallery-no-search")
    reply = httpx.post(
        f"{venue.base}/api/events/{venue.browse}/search",
        files={"selfie": ("me.jpg", (FACES / "obama-3.jpg").read_bytes(), "image/jpeg")},
    )
    assert reply.status_code == 403 and reply.json()["error"] == "search_off"


def test_lightbox_steps_through_photos_by_keys_and_closes_back_to_the_tile(
    venue: Venue, page: sync_api.Page
) -> None:
    page.goto(f"/e/{venue.browse}")  # the gallery: two or more tiles to step through
    upload(venue.box, venue.browse, {"obama-2.jpg": (FACES / "obama-2.jpg").read_bytes()})
    deadline = time.monotonic() + 30
    while page.locator("#grid a.thumb").count() < 2:
        assert time.monotonic() < deadline, "the gallery never showed the new photo"
        time.sleep(0.5)
        page.reload()
    tiles = page.locator("#grid a.thumb")
    first = tiles.nth(0)
    first.click()
    viewer = page.locator("#viewer")
    viewer.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#v-img').naturalWidth > 0")
    check_state(page, "07-lightbox")
    src0 = page.locator("#v-img").get_attribute("src")
    page.keyboard.press("ArrowRight")
    assert page.locator("#v-img").get_attribute("src") != src0
    assert "2 of" in (page.locator("#v-img").get_attribute("alt") or "")
    page.keyboard.press("ArrowLeft")
    assert page.locator("#v-img").get_attribute("src") == src0
    # a swipe to the left is "next"
    page.evaluate(
        """() => { const d = document.getElementById('viewer');
          const t = (x) => new Touch({identifier: 1, target: d, clientX: x, clientY: 400});
          d.dispatchEvent(new TouchEvent('touchstart', {touches: [t(300)], changedTouches: [t(300)]}));
          d.dispatchEvent(new TouchEvent('touchend', {touches: [], changedTouches: [t(120)]})); }"""
    )
    assert page.locator("#v-img").get_attribute("src") != src0
    assert viewer.get_by_role("link", name="Download").get_attribute("href", timeout=1000)
    # Share: this chromium has no share sheet, so the photo's link is copied (or shown to copy)
    viewer.get_by_role("button", name="Share").click()
    page.wait_for_function("() => document.getElementById('v-said').textContent.length > 0")
    said = page.locator("#v-said").inner_text()
    assert said == "Link copied." or "/view.jpg" in said, said
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    assert page.evaluate("() => document.activeElement.classList.contains('thumb')"), "focus is lost"


def test_the_events_look_is_on_every_page(venue: Venue, page: sync_api.Page) -> None:
    cover = venue.ids["hopper-1.jpg"]
    venue.box.cli(
        "event", "edit", venue.event, "--accent", "#aa3355", "--date", "2026-12-24", "--cover", str(cover)
    )
    try:
        page.goto(f"/e/{venue.event}")
        assert page.locator(".brand .date").inner_text() == "Thursday 24 December 2026"
        colour = page.locator("#pick").evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == "rgb(170, 51, 85)"
        page.wait_for_function("() => document.querySelector('.cover').naturalWidth > 0")
        check_state(page, "09-branded")
    finally:
        venue.box.cli("event", "edit", venue.event, "--accent", "none", "--date", "none", "--cover", "none")


def test_new_photos_of_me_appear_on_the_open_page(venue: Venue, page: sync_api.Page) -> None:
    page.goto(f"/e/{venue.event}")
    take_selfie(page, FACES / "obama-3.jpg", watch=True)
    assert shown_ids(page) == [venue.ids["obama-1.jpg"]]
    assert page.locator("#live").is_visible()
    shutter = time.monotonic()
    upload(venue.box, venue.event, {"obama-2.jpg": (FACES / "obama-2.jpg").read_bytes()})
    page.locator("#fresh").wait_for(state="visible", timeout=60_000)
    delay = time.monotonic() - shutter
    assert page.locator("#fresh").inner_text() == "1 new photo of you"
    assert len(shown_ids(page)) == 2
    print(f"shutter to the photo on the open page: {delay:.1f} s")
    check_state(page, "10-live-new-photo")

    # the host hides it: it leaves the open page by itself, and the ZIP
    new_id = next(p["id"] for p in venue.box.photos(venue.event) if p["original_name"] == "obama-2.jpg")
    venue.box.cli("photos", "hide", venue.event, str(new_id))
    page.wait_for_function(
        f"() => document.querySelector('#grid a.thumb[data-photo=\"{new_id}\"]').hidden", timeout=15_000
    )
    assert shown_ids(page) == [venue.ids["obama-1.jpg"]]
    zip_url = page.locator("#zip").get_attribute("href") or ""
    with httpx.stream("GET", venue.base + zip_url) as reply:
        body = reply.read()
    import zipfile

    assert zipfile.ZipFile(io.BytesIO(body)).namelist() == ["obama-1.jpg"]
    venue.box.cli("photos", "unhide", venue.event, str(new_id))


def test_many_open_pages_behind_one_address_keep_polling(venue: Venue) -> None:
    """Phones behind a venue's NAT share one address: open results pages must not each hold a
    connection between polls, or the per-address cap (web.max_connections_per_ip, 24) turns the
    rest away (bench/live.py --same-address found 26 of 50 pages never updated)."""
    reply = httpx.post(
        f"{venue.base}/e/{venue.event}/search",
        files={"selfie": ("me.jpg", (FACES / "obama-3.jpg").read_bytes(), "image/jpeg")},
        data={"consent": "yes", "watch": "yes"},
    )
    assert reply.status_code == 303
    poll = reply.headers["location"] + ".json"
    phones = [httpx.Client(base_url=venue.base, timeout=10) for _ in range(40)]
    try:
        for _ in range(2):  # each phone polls, keeps its client open, then polls again
            statuses = [phone.get(poll).status_code for phone in phones]
            assert statuses == [200] * len(phones), statuses
    finally:
        for phone in phones:
            phone.close()


def test_no_photos_yet_and_an_expired_link(venue: Venue, page: sync_api.Page) -> None:
    page.goto(f"/e/{venue.event}")
    take_selfie(page, FACES / "curie-couple.jpg")
    assert page.locator("#none").is_visible()
    check_state(page, "11-no-photos-yet")
    response = page.goto(f"/e/{venue.event}/r/{'x' * 22}")
    assert response is not None and response.status == 410
    assert "expired" in page.locator("#error").inner_text()
    assert page.locator("#selfie").count() == 1, "the page offers a new search"
    check_state(page, "12-expired")


def test_host_page_and_wall_on_a_phone(venue: Venue, page: sync_api.Page) -> None:
    """The host's page (moderation by checkboxes) and the photo wall hold to the same rules."""
    link = venue.box.cli("event", "host-link", venue.event)["url"]
    venue.box.cli("event", "edit", venue.event, "--moderation", "approve")
    try:
        page.goto(urlsplit(link).path)
        assert page.locator(".grid a.thumb, .grid .thumb").count() >= 3
        check_state(page, "14-host-page")
        # approve one by its tick box: it is the only one the wall shows
        hopper = venue.ids["hopper-1.jpg"]
        page.check(f'input[type=checkbox][value="{hopper}"]')
        with page.expect_navigation():
            page.get_by_role("button", name="Approve", exact=True).click()
        assert "Approved" in page.locator(f'[data-photo="{hopper}"]').first.evaluate(
            "e => e.closest('figure, li, div, article').innerText"
        )
        wall = httpx.get(f"{venue.base}/e/{venue.event}/wall.json").json()
        shown = (
            [p["photo_id"] for p in wall["photos"]]
            if isinstance(wall, dict)
            else [p["photo_id"] for p in wall]
        )
        assert shown == [hopper], shown
        page.goto(f"/e/{venue.event}/wall")
        page.wait_for_function("() => document.getElementById('slide').naturalWidth > 0")
        check_state(page, "15-wall")
    finally:
        venue.box.cli("event", "edit", venue.event, "--moderation", "open")


def test_uplink_down_indexing_behind_and_busy_on_a_real_box(
    browser: sync_api.Browser, tmp_path: Path
) -> None:
    """Three states of a real box, photographed: the venue's uplink is down (the cloud is
    configured but unreachable: the guest gets the same answer from the box, with one quiet line);
    indexing behind (its face process held with SIGSTOP while photos arrive: the results page says
    how many it still has to sort, and they appear by themselves once it catches up); and busy
    with other guests' searches (the phone is asked to try again in a few seconds)."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    box = cloud_box(
        tmp_path, nowhere, nowhere, faces__workers="1", web__max_searches="1", web__search_wait="2"
    ).start(timeout=90)
    held: int | None = None
    try:
        event = box.new_event("Uplink down")
        upload(box, event, {"obama-1.jpg": (FACES / "obama-1.jpg").read_bytes()})
        wait_indexed(box)
        first = {p["original_name"]: int(p["id"]) for p in box.photos(event)}["obama-1.jpg"]
        context = browser.new_context(
            base_url=f"http://127.0.0.1:{box.info['web_port']}",
            viewport=PHONE,
            is_mobile=True,
            has_touch=True,
        )
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.goto(f"/e/{event}")
        assert take_selfie(page, FACES / "obama-3.jpg", watch=True).status == 200
        assert shown_ids(page) == [first]
        assert "offline" in page.locator("#offline").inner_text()
        assert page.locator("#error").count() == 0
        check_state(page, "16-uplink-down")

        held = int(box.status()["faces"]["index_pid"])
        os.kill(held, signal.SIGSTOP)
        upload(
            box,
            event,
            {
                "obama-2.jpg": (FACES / "obama-2.jpg").read_bytes(),
                "biden-1.jpg": (FACES / "biden-1.jpg").read_bytes(),
                "hopper-1.jpg": (FACES / "hopper-1.jpg").read_bytes(),
            },
        )
        page.reload()  # the results' own address: no new search, the state as it is now
        note = page.locator("#backlog").inner_text()
        assert "still sorting 3 new photos" in note and "appear here by themselves" in note, note
        check_state(page, "17-indexing-behind")

        os.kill(held, signal.SIGCONT)
        held = None
        second = {p["original_name"]: int(p["id"]) for p in box.photos(event)}["obama-2.jpg"]
        page.wait_for_function(
            "(id) => document.querySelector(`#grid a.thumb[data-photo='${id}']:not([hidden])`)",
            arg=second,
            timeout=60_000,
        )
        assert sorted(shown_ids(page)) == sorted([first, second])

        # busy: one search at a time here (web.max_searches 1) and the selfie process held, so
        # the place stays taken; once another guest has been turned away, the phone is too
        held = int(box.status()["faces"]["selfie_pid"])
        os.kill(held, signal.SIGSTOP)
        api = f"http://127.0.0.1:{box.info['web_port']}/api/events/{event}/search"
        selfie = (FACES / "obama-3.jpg").read_bytes()
        answers: list[int] = []
        others = [
            threading.Thread(
                target=lambda: answers.append(
                    httpx.post(
                        api, files={"selfie": ("me.jpg", selfie, "image/jpeg")}, timeout=120
                    ).status_code
                )
            )
            for _ in range(2)
        ]
        for other in others:
            other.start()
        deadline = time.monotonic() + 30
        while 503 not in answers:
            assert time.monotonic() < deadline, f"no guest was turned away: {answers}"
            time.sleep(0.2)
        page.goto(f"/e/{event}")
        assert take_selfie(page, FACES / "obama-3.jpg").status == 503
        assert "busy" in page.locator("#error").inner_text()
        check_state(page, "18-busy")
        os.kill(held, signal.SIGCONT)
        held = None
        for other in others:
            other.join(60)
        assert sorted(answers) == [200, 503], answers
        context.close()
    finally:
        if held is not None:
            os.kill(held, signal.SIGCONT)
        assert box.stop() == 0


def test_a_phone_that_shares_files_gets_the_photo_itself(venue: Venue, page: sync_api.Page) -> None:
    """Share in the lightbox hands the phone's share sheet the photo as a JPEG file when the
    phone says it can share files (the Web Share API; headless chromium has no share sheet, so
    the page is given one that records what it is handed)."""
    page.add_init_script(
        """navigator.canShare = (data) => Boolean(data && data.files && data.files.length);
           navigator.share = async (data) => {
             const f = data.files[0], head = new Uint8Array(await f.slice(0, 3).arrayBuffer());
             window.shared = {count: data.files.length, type: f.type, size: f.size, name: f.name,
                              head: Array.from(head)};
           };"""
    )
    venue.box.cli("event", "edit", venue.browse, "--face-search", "off")  # its gallery of every photo
    page.goto(f"/e/{venue.browse}")
    page.locator("#grid a.thumb").first.click()
    page.wait_for_function("() => document.querySelector('#v-img').naturalWidth > 0")
    shown = httpx.get(page.evaluate("() => document.querySelector('#v-img').src"))
    assert shown.status_code == 200
    page.get_by_role("button", name="Share").click()
    page.wait_for_function("() => window.shared !== undefined")
    shared = page.evaluate("() => window.shared")
    assert shared["count"] == 1 and shared["type"] == "image/jpeg" and shared["name"].endswith(".jpg")
    assert shared["head"] == [0xFF, 0xD8, 0xFF] and shared["size"] == len(shown.content), shared


def test_pages_are_light(venue: Venue) -> None:
    """Every guest page's HTML, CSS and script (all inline) under 30 KB before images."""
    event = httpx.get(f"{venue.base}/e/{venue.event}")
    post = httpx.post(
        f"{venue.base}/e/{venue.event}/search",
        files={"selfie": ("me.jpg", (FACES / "obama-3.jpg").read_bytes(), "image/jpeg")},
        data={"consent": "yes", "watch": "yes"},
        follow_redirects=True,
    )
    assert post.status_code == 200 and post.history and post.history[0].status_code == 303
    for name, reply in (("event page", event), ("results page", post)):
        assert len(reply.content) < 30 * 1024, f"{name}: {len(reply.content)} bytes"
        print(f"{name}: {len(reply.content)} bytes")


def test_many_results_keep_the_page_light(venue: Venue, page: sync_api.Page) -> None:
    """A guest in 52 photos: the page itself holds the first 48 (under 30 KB), its script brings
    the rest, and without script "Show all" does."""
    event = venue.box.new_event("Big day")
    source = Image.open(FACES / "obama-1.jpg").convert("RGB")
    copies = {}
    for i in range(52):  # distinct files of one person: the box keeps identical bytes once
        out = io.BytesIO()
        source.crop((i, i, source.width - i, source.height - i)).save(out, "JPEG", quality=70 + i % 25)
        copies[f"OB_{i:03d}.JPG"] = out.getvalue()
    upload(venue.box, event, copies)
    wait_indexed(venue.box)
    page.goto(f"/e/{event}")
    response = take_selfie(page, FACES / "obama-3.jpg")
    html = response.body()
    assert len(html) < 30 * 1024, f"results page of 52 photos: {len(html)} bytes"
    assert html.count(b'class="thumb"') == 48
    assert page.locator("#count").inner_text().startswith("52 photos of you")
    page.wait_for_function("() => document.querySelectorAll('#grid a.thumb').length === 52")
    assert page.locator("#more").is_hidden()
    everything = httpx.get(page.url.split("?")[0] + "?show=all")
    assert everything.text.count('class="thumb"') == 52


def test_rate_limited_is_said_plainly(venue: Venue, page: sync_api.Page) -> None:
    """Last: it spends this address's searches for the minute."""
    files = {"selfie": ("me.jpg", reencoded("hopper-1.jpg"), "image/jpeg")}
    with httpx.Client(base_url=venue.base, timeout=30) as phone:  # one client: every socket closed here
        while phone.post(f"/api/events/{venue.event}/search", files=files).status_code != 429:
            pass
    page.goto(f"/e/{venue.event}")
    assert take_selfie(page, FACES / "obama-3.jpg").status == 429
    assert "Too many searches" in page.locator("#error").inner_text()
    check_state(page, "13-rate-limited")
