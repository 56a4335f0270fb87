"""The guest listener against a hostile neighbour on the venue LAN, over loopback to a real box.

Each test is a probe finding: a selfie upload with an absurd multipart boundary, camera file names
that are Windows paths, pages without browser protections, links built from a forged ``Host``
header, a QR code cached as public, and a health check that told strangers how many photos the box
holds. Every answer must be a clean 4xx or a page that protects itself, and never name a host the
box is not.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import socket
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from appliance.guest.app import MESSAGES
from appliance.guest.files import qr_code, safe_stem
from tests.boxproc import BoxProcess, make_box, store
from tests.test_guest_api import face, wait_indexed

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not FACES.is_dir(), reason=f"public-domain face photos not found at {FACES}"),
]

EVIL = "evil.example"
# camera file names as a hostile uploader (or a Windows tool writing to the card) sends them
HOSTILE_NAMES = {
    "obama-1.jpg": 95,
    "..\\..\\Users\\Public\\obama-1.jpg": 90,  # the same base name as the one above
    "C:\\Windows\\System32\\..autorun.jpg": 85,
    "...hidden.jpg": 80,
    "tab\there.jpg": 75,
}


@dataclass
class Venue:
    box: BoxProcess
    web: str  # http://127.0.0.1:<port>
    port: int
    event: str
    host_path: str  # /host/<key>
    ids: dict[str, int]  # original name -> photo id


def _jpeg(quality: int) -> bytes:
    """obama-1 as another file each time (the box keeps one copy of identical bytes per event)."""
    out = io.BytesIO()
    with Image.open(FACES / "obama-1.jpg") as image:
        image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="module")
def venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    box = make_box(
        tmp_path_factory.mktemp("hardening") / "data",
        faces__workers="1",
        guest__searches_per_minute="1000",
        guest__code_attempts_per_hour="1000",
    ).start(timeout=90)
    try:
        event = box.new_event("Hardening")
        user, password = box.new_key(event, camera="hostile-cam")
        with box.ftp(user, password) as ftp:
            for name, quality in HOSTILE_NAMES.items():
                assert store(ftp, name, _jpeg(quality)).startswith("226"), name
        wait_indexed(box)
        ids = {p["original_name"]: int(p["id"]) for p in box.photos(event)}
        assert set(ids) == set(HOSTILE_NAMES), f"premise: the box keeps the names as sent: {sorted(ids)}"
        host_path = urlsplit(box.cli("event", "host-link", event)["url"]).path
        port = int(box.info["web_port"])
        yield Venue(box, f"http://127.0.0.1:{port}", port, event, host_path, ids)
    finally:
        code = box.stop()
    assert code == 0, f"box exited with {code}:\n{box.log[-4000:]}"


def search(
    venue: Venue, selfie: bytes, *, page: bool = False, headers: dict[str, str] | None = None
) -> httpx.Response:
    target = f"/e/{venue.event}/search" if page else f"/api/events/{venue.event}/search"
    files = {"selfie": ("me.jpg", selfie, "image/jpeg")}
    data = {"consent": "yes"} if page else None  # the page's form has the guest tick the consent box
    return httpx.post(f"{venue.web}{target}", files=files, data=data, headers=headers, timeout=60)


# --- 1. a multipart boundary over python-multipart's limit -----------------------------------------


@pytest.mark.parametrize("page", [False, True], ids=["api", "page"])
@pytest.mark.parametrize("length", [257, 300, 5000])
def test_overlong_multipart_boundary_is_a_clean_4xx(venue: Venue, page: bool, length: int) -> None:
    boundary = "b" * length
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="selfie"; filename="me.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + face("obama-3.jpg")
        + f"\r\n--{boundary}--\r\n".encode()
    )
    target = f"/e/{venue.event}/search" if page else f"/api/events/{venue.event}/search"
    reply = httpx.post(
        f"{venue.web}{target}",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert 400 <= reply.status_code < 500, f"{reply.status_code}: {reply.text[:300]}"
    assert "Traceback" not in reply.text and "exceeds maximum" not in reply.text
    if page:
        assert reply.headers["content-type"].startswith("text/html")
        assert 'class="error"' in reply.text and 'name="selfie"' in reply.text
    else:
        answer = reply.json()
        assert answer["error"] in MESSAGES and answer["message"] == MESSAGES[answer["error"]]
    assert search(venue, face("obama-3.jpg")).status_code == 200, "the box is fine afterwards"


# --- 2. ZIP entry names from camera file names -----------------------------------------------------


def _assert_safe_names(names: list[str]) -> None:
    assert len(names) == len(set(names)), f"clashing entry names: {names}"
    for name in names:
        assert "/" not in name and "\\" not in name, name
        assert not name.startswith("."), name
        assert all(ch.isprintable() for ch in name), repr(name)
        assert "Users" not in name and "Windows" not in name, name
        assert name.endswith(".jpg"), name


def test_zip_entry_names_are_safe_base_names(venue: Venue) -> None:
    page = httpx.get(venue.web + venue.host_path)
    assert page.status_code == 200
    zip_all = re.search(r'href="([^"]+)" id="zip-all"', page.text)
    assert zip_all is not None, page.text[:500]
    reply = httpx.get(venue.web + zip_all.group(1))
    assert reply.status_code == 200
    with zipfile.ZipFile(io.BytesIO(reply.content)) as archive:
        names = archive.namelist()
        assert len(names) == len(HOSTILE_NAMES)
        _assert_safe_names(names)
        assert "obama-1.jpg" in names
        assert "autorun.jpg" in names and "hidden.jpg" in names, names
        assert archive.testzip() is None


def test_single_download_is_named_by_a_safe_base_name(venue: Venue) -> None:
    page = httpx.get(venue.web + venue.host_path).text
    photo_id = venue.ids["..\\..\\Users\\Public\\obama-1.jpg"]
    link = re.search(rf'id="p{photo_id}".*?href="([^"]+/download)"', page, re.S)
    assert link is not None
    reply = httpx.get(venue.web + link.group(1))
    assert reply.status_code == 200
    disposition = reply.headers["content-disposition"]
    filename = re.search(r'filename="([^"]*)"', disposition)
    assert filename is not None, disposition
    assert filename.group(1) == "obama-1.jpg", disposition


@pytest.mark.parametrize(
    ("original", "stem"),
    [
        ("IMG_0001.JPG", "IMG_0001"),
        ("..\\..\\Users\\Public\\Desktop\\IMG_0002.CR3", "IMG_0002"),
        ("../../etc/cron.d/x.jpg", "x"),
        ("C:IMG_3.jpg", "C_IMG_3"),
        ("\x1b[31mred\x07.jpg", "[31mred"),
        ("...", "photo"),
        ("..\\", "photo"),
        (".bashrc", "bashrc"),
        ("CON.jpg", "_CON"),
        ("a" * 300 + ".jpg", "a" * 120),
    ],
)
def test_safe_stem_of_hostile_camera_names(original: str, stem: str) -> None:
    assert safe_stem(original) == stem


# --- 3. browser protections on every guest answer --------------------------------------------------


def _csp(reply: httpx.Response) -> dict[str, list[str]]:
    policy = reply.headers.get("content-security-policy", "")
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def _assert_protected(label: str, reply: httpx.Response) -> None:
    csp = _csp(reply)
    assert csp.get("default-src") == ["'self'"], (
        f"{label}: CSP {reply.headers.get('content-security-policy')}"
    )
    assert csp.get("frame-ancestors") == ["'none'"], label
    assert not any("'unsafe-inline'" in v or "'unsafe-eval'" in v or "*" in v for v in csp.values()), label
    assert reply.headers.get("x-content-type-options") == "nosniff", label
    assert reply.headers.get("referrer-policy") == "no-referrer", label
    assert reply.headers.get("x-frame-options") == "DENY", label


def _inline_allowed(html: str, csp: dict[str, list[str]]) -> None:
    """Every inline <script> and <style> the page holds is allowed by its hash."""
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        for body in re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S):
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            allowed = csp.get(directive, csp.get("default-src", []))
            assert f"'sha256-{digest}'" in allowed, f"inline {tag} not allowed by {directive}: {allowed}"


def test_every_guest_answer_carries_browser_protections(venue: Venue) -> None:
    web, event = venue.web, venue.event
    found = search(venue, face("obama-3.jpg"))
    assert found.status_code == 200 and found.json()["matches"]
    match = found.json()["matches"][0]
    pinned = venue.box.new_event("Pinned")
    venue.box.cli("event", "pin", pinned, "4321")
    answers = {
        "home": httpx.get(f"{web}/"),
        "home, unknown code": httpx.get(f"{web}/?code=zzzzzzzz"),
        "code redirect": httpx.get(f"{web}/?code={event}"),
        "event page": httpx.get(f"{web}/e/{event}"),
        "pin page": httpx.get(f"{web}/e/{pinned}"),
        "wrong pin": httpx.post(f"{web}/e/{pinned}/pin", data={"pin": "1111"}),
        "results page": search(venue, face("obama-3.jpg"), page=True),
        "error page": search(venue, b"not a picture", page=True),
        "search JSON": found,
        "search error JSON": search(venue, b"not a picture"),
        "host page": httpx.get(web + venue.host_path),
        "thumbnail": httpx.get(match["thumbnail_url"]),
        "download": httpx.get(match["download_url"]),
        "zip": httpx.get(found.json()["zip_url"]),
        "qr": httpx.get(f"{web}/e/{event}/qr.png"),
        "unknown path": httpx.get(f"{web}/nothing/here"),
        "forged link": httpx.get(f"{web}/e/{event}/p/AAAA/thumb.jpg"),
        "healthz": httpx.get(f"{web}/healthz"),
    }
    for label, reply in answers.items():
        assert reply.status_code < 500, f"{label}: {reply.status_code}"
        _assert_protected(label, reply)
        if reply.headers.get("content-type", "").startswith("text/html"):
            _inline_allowed(reply.text, _csp(reply))
    for label in ("results page", "search JSON", "host page", "zip", "error page"):
        cache = answers[label].headers.get("cache-control", "")
        assert "no-store" in cache, f"{label}: Cache-Control {cache!r}"
    # photos stay cacheable by the phone (their links are the same all day), never by a proxy
    assert "private" in answers["thumbnail"].headers["cache-control"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")
def test_pages_work_in_a_browser_under_their_policy(venue: Venue) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.test_guest_browser import CHROMIUM_ARGS

    violations: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=venue.web, viewport={"width": 390, "height": 844})
            context.set_default_timeout(20_000)
            page = context.new_page()
            page.on(
                "console",
                lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
            )
            page.goto(f"/e/{venue.event}")
            blue = page.locator("#pick").evaluate("e => getComputedStyle(e).backgroundColor")
            assert blue == "rgb(29, 111, 216)", "the page's stylesheet did not apply"
            page.check("#consent")
            with page.expect_navigation() as navigation:  # the inline script submits the form
                page.set_input_files("#selfie", str(FACES / "obama-3.jpg"))
            assert navigation.value is not None and navigation.value.status == 200
            page.locator(".grid a.thumb img").first.wait_for()
            page.wait_for_function("() => [...document.querySelectorAll('.grid img')].every(i => i.complete)")
            widths = page.locator(".grid a.thumb img").evaluate_all("els => els.map(i => i.naturalWidth)")
            assert widths and all(w > 0 for w in widths)
            page.goto(venue.host_path)
            assert page.locator(".grid a.thumb").count() == len(HOSTILE_NAMES)
            context.close()
        finally:
            browser.close()
    assert not violations, violations


# --- 4. links and redirects never built from an untrusted Host ------------------------------------


def test_search_links_ignore_a_forged_host(venue: Venue) -> None:
    for host in (EVIL, f"{EVIL}:8080", "127.0.0.1:9"):
        reply = search(venue, face("obama-3.jpg"), headers={"Host": host})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        urls = [body["zip_url"], *(m[k] for m in body["matches"] for k in m if k.endswith("_url"))]
        assert urls and all(url for url in urls)
        for url in urls:
            assert EVIL not in url, f"Host {host!r} gave {url}"
            assert urlsplit(url).port == venue.port, f"Host {host!r} gave {url}"
        # the box's own address: the links reach this box
        assert httpx.get(body["matches"][0]["thumbnail_url"]).status_code == 200


def test_trailing_slash_redirect_does_not_reflect_the_host(venue: Venue) -> None:
    for target in (f"/e/{venue.event}/", f"/?code={venue.event}", f"{venue.host_path}/"):
        reply = httpx.get(f"{venue.web}{target}", headers={"Host": EVIL})
        location = reply.headers.get("location", "")
        assert EVIL not in location and EVIL not in reply.text, f"{target}: {reply.status_code} {location}"
        if reply.is_redirect:
            assert location.startswith("/") and not location.startswith("//"), location


def test_qr_code_ignores_a_forged_host(venue: Venue) -> None:
    url = f"{venue.web}/e/{venue.event}/qr.svg"
    evil = httpx.get(url, headers={"Host": EVIL})
    assert evil.status_code == 200
    assert evil.content != qr_code(f"http://{EVIL}/e/{venue.event}", "svg")[0]
    assert evil.content == httpx.get(url, headers={"Host": "other.example"}).content
    own = httpx.get(url)
    assert own.content == qr_code(f"http://127.0.0.1:{venue.port}/e/{venue.event}", "svg")[0]


# --- 5. the QR code is not for shared caches -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_qr_code_is_not_publicly_cached(venue: Venue, fmt: str) -> None:
    reply = httpx.get(f"{venue.web}/e/{venue.event}/qr.{fmt}")
    assert reply.status_code == 200
    cache = reply.headers.get("cache-control", "")
    assert "public" not in cache and ("no-store" in cache or "private" in cache), cache


# --- 6. the guest health check says nothing about the box ------------------------------------------


def test_guest_healthz_says_only_ok(venue: Venue) -> None:
    reply = httpx.get(f"{venue.web}/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"ok": True}, reply.text
    admin = venue.box.status()  # the admin API's own status, over its socket
    assert admin["version"] and admin["queue"], "the admin API's status stays rich"


def test_guest_host_names_include_this_machine(venue: Venue) -> None:
    """Links for a guest who typed the box's own name keep that name (it is the box's)."""
    name = socket.gethostname().split(".")[0].lower()
    reply = httpx.get(f"{venue.web}/e/{venue.event}/qr.svg", headers={"Host": f"{name}.local:{venue.port}"})
    assert reply.content == qr_code(f"http://{name}.local:{venue.port}/e/{venue.event}", "svg")[0]
