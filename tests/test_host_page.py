"""The host link and the photo wall, in process: the guest listener's real app
(``make_web_app``) over a real Store and real photo files, driven through httpx's ASGI transport.
Covers the host's view (every photo with its state, filters, pages), moderation by form (and its
refusal from another site), the host's own photo and ZIP links, and the wall's feed of what
guests are shown.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from appliance.config import Settings
from appliance.control.web import make_web_app
from appliance.guest.access import GuestAccess, new_host_key
from appliance.guest.host import frame_ratio, ratio_class
from appliance.layout import Layout
from appliance.services import Services
from appliance.store.records import LandedFrame, Photo
from appliance.store.store import Store

SHUTTER = "2026-12-06T15:04:05.250"


@dataclass
class Venue:
    client: httpx.AsyncClient
    store: Store
    code: str
    other: str
    host: str  # /host/<key>
    ids: dict[str, int]  # original name -> photo id


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (120, 80, 40)).save(out, "JPEG", quality=70)
    return out.getvalue()


async def land(
    store: Store, layout: Layout, event: str, name: str, *, function: str = "main", camera: str = "Z6 #1"
) -> int:
    data = jpeg(60, 40)
    sha = hashlib.sha256(data + name.encode()).hexdigest()
    path = layout.photos / event / f"{sha}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    frame = LandedFrame(
        event=event,
        function=function,
        camera=camera,
        username=None,
        original_name=name,
        ftp_path=None,
        sha256=sha,
        size=len(data),
        kind="jpeg",
        searchable=True,
        stored_path=str(path),
        received_at="2026-12-06T14:00:00.000+00:00",
        capture_time=None,
        body_serial=None,
        make=None,
        model=None,
        orientation=1,
        width=60,
        height=40,
    )
    photo, _ = await store.add_photo(frame)
    return photo.id


def services_for(layout: Layout, store: Store) -> Services:
    """The services the web and admin apps' routes here use: the store, the settings, the guest
    links; no FTP, sync or face index (the routes under test never reach them)."""
    settings = Settings()
    return Services(
        settings=settings,
        layout=layout,
        store=store,
        reader=store,
        ftp=None,  # type: ignore[arg-type]
        sync=SimpleNamespace(enabled=False),  # type: ignore[arg-type]
        faces=SimpleNamespace(listeners=[]),  # type: ignore[arg-type]
        guest=GuestAccess(settings.guest, layout),
        health=None,  # type: ignore[arg-type]
        logs=None,  # type: ignore[arg-type]
        token=None,  # type: ignore[arg-type]
        started=0.0,
    )


@pytest_asyncio.fixture
async def venue(tmp_path: Path) -> AsyncIterator[Venue]:
    layout = Layout(tmp_path / "data")
    layout.create()
    async with Store(layout.database) as store:
        services = services_for(layout, store)
        code = (await store.create_event("Gala", functions=["ceremony", "party"])).code
        other = (await store.create_event("Other")).code
        ids = {
            "a.jpg": await land(store, layout, code, "a.jpg", function="ceremony"),
            "b.jpg": await land(store, layout, code, "b.jpg", function="ceremony", camera="R5"),
            "c.jpg": await land(store, layout, code, "c.jpg", function="party"),
            "x.jpg": await land(store, layout, other, "x.jpg"),
        }
        key, digest = new_host_key()
        await store.set_guest_secret(code, "host_key_hash", digest)
        transport = httpx.ASGITransport(app=make_web_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Venue(client, store, code, other, f"/host/{key}", ids)


def tiles(page: str) -> dict[int, str]:
    """Photo id -> the state its badge says, in the page's order."""
    found = re.findall(r'data-photo="(\d+)".*?<span class="badge" data-state="\w+">(\w+)</span>', page, re.S)
    return {int(i): words for i, words in found}


def inline_allowed(page: httpx.Response) -> None:
    """Every inline <script> and <style> of the page is allowed by the CSP's hashes."""
    policy = page.headers["content-security-policy"]
    for tag in ("script", "style"):
        for body in re.findall(rf"<{tag}>(.*?)</{tag}>", page.text, re.S):
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in policy, f"an inline {tag} is not allowed by the CSP"


async def moderate(venue: Venue, data: dict[str, Any], **headers: str) -> httpx.Response:
    return await venue.client.post(f"{venue.host}/moderate", data=data, headers=headers)


@pytest.mark.asyncio
async def test_the_host_sees_every_photo_with_its_state_and_filters(venue: Venue) -> None:
    a, b, c = venue.ids["a.jpg"], venue.ids["b.jpg"], venue.ids["c.jpg"]
    page = await venue.client.get(venue.host)
    assert page.status_code == 200
    inline_allowed(page)
    assert tiles(page.text) == {c: "Shown", b: "Shown", a: "Shown"}, "newest first, open event"
    assert 'id="awaiting"' not in page.text
    assert page.text.count('class="thumb"') == 3 and f'data-photo="{venue.ids["x.jpg"]}"' not in page.text
    assert '<option value="ceremony">' in page.text and '<option value="R5">' in page.text
    assert "r150" in page.text, "a 60x40 frame is a 3:2 tile"

    await venue.store.set_event_settings(venue.code, moderation="approve")
    await venue.store.moderate(venue.code, [a], "approve")
    await venue.store.moderate(venue.code, [b], "hide")
    page = await venue.client.get(venue.host)
    assert tiles(page.text) == {c: "Pending", b: "Hidden", a: "Approved"}
    assert re.search(r'id="awaiting">1 photo awaiting approval', page.text)

    party = await venue.client.get(venue.host, params={"function": "party"})
    assert list(tiles(party.text)) == [c] and "1 photo here." in party.text
    both = await venue.client.get(venue.host, params={"function": "ceremony", "camera": "R5"})
    assert list(tiles(both.text)) == [b]
    assert '<option value="R5" selected>' in both.text
    unknown = await venue.client.get(venue.host, params={"camera": "nobody", "page": "x"})
    assert unknown.status_code == 200 and len(tiles(unknown.text)) == 3, "an unknown filter shows all"
    assert (await venue.client.get(venue.host + "x")).status_code == 404


@pytest.mark.asyncio
async def test_the_host_moderates_by_form_and_lands_on_the_same_page(venue: Venue) -> None:
    a, b, c, x = (venue.ids[n] for n in ("a.jpg", "b.jpg", "c.jpg", "x.jpg"))
    await venue.store.set_event_settings(venue.code, moderation="approve")
    answer = await moderate(
        venue,
        {"action": "approve", "id": [str(a), str(c), str(x)], "page": "1", "function": "party"},
        **{"Sec-Fetch-Site": "same-origin", "Origin": "null"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{venue.host}?function=party&done=approve&n=2"
    landed = await venue.client.get(answer.headers["location"])
    assert "2 photos approved." in landed.text and list(tiles(landed.text)) == [c]
    assert (await venue.store.get_photo(x)).approval is None, "another event's photo is untouched"

    event = await venue.store.get_event(venue.code)
    shown = await venue.store.guest_photos(event, [a, b, c])
    assert [p.id for p in shown] == [c, a]

    hidden = await moderate(venue, {"quick": f"hide:{c}", "action": "approve"}, Origin="http://testserver")
    assert hidden.status_code == 303 and hidden.headers["location"].endswith("done=hide&n=1")
    assert [p.id for p in await venue.store.guest_photos(event, [a, b, c])] == [a]
    page = await venue.client.get(venue.host)
    assert f'name="quick" value="unhide:{c}"' in page.text

    nothing = await moderate(venue, {"action": "reject"})
    assert nothing.headers["location"].endswith("done=none")
    assert "Tick the photos first" in (await venue.client.get(nothing.headers["location"])).text

    for bad in ({"action": "delete", "id": str(a)}, {"action": "hide", "id": "1; DROP"}, {"quick": "burn:1"}):
        assert (await moderate(venue, bad)).status_code == 400, bad
    assert (
        await venue.client.post(f"{venue.host}x/moderate", data={"action": "hide", "id": str(a)})
    ).status_code == 404


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}, {"Origin": "http://evil.example"}],
)
async def test_a_post_from_another_site_changes_nothing(venue: Venue, headers: dict[str, str]) -> None:
    a = venue.ids["a.jpg"]
    answer = await moderate(venue, {"action": "hide", "id": str(a)}, **headers)
    assert answer.status_code == 403
    assert (await venue.store.get_photo(a)).hidden_at is None


@pytest.mark.asyncio
async def test_the_hosts_photo_links_and_zips_show_what_guests_may_not_see(venue: Venue) -> None:
    a, b, c = venue.ids["a.jpg"], venue.ids["b.jpg"], venue.ids["c.jpg"]
    await venue.store.moderate(venue.code, [a], "hide")
    page = (await venue.client.get(venue.host)).text
    thumb = re.search(rf'data-photo="{a}"><img src="([^"]+)"', page)
    assert thumb is not None and thumb.group(1) == f"{venue.host}/p/{a}/thumb.jpg"
    for url in (thumb.group(1), f"{venue.host}/p/{a}/view.jpg", f"{venue.host}/p/{a}/download"):
        answer = await venue.client.get(url)
        assert answer.status_code == 200, url
    assert (await venue.client.get(f"{venue.host}/p/{venue.ids['x.jpg']}/download")).status_code == 404
    assert (await venue.client.get(f"{venue.host}/p/{a}/face.jpg")).status_code == 404

    zip_all = re.search(r'href="([^"]+)" id="zip-all"', page)
    assert zip_all is not None
    archive = await venue.client.get(zip_all.group(1))
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert sorted(opened.namelist()) == ["a.jpg", "b.jpg", "c.jpg"], (
            "the host's ZIP has hidden photos too"
        )
    one = await venue.client.get(f"{venue.host}/zip", params={"page": "1", "camera": "R5"})
    with zipfile.ZipFile(io.BytesIO(one.content)) as opened:
        assert opened.namelist() == ["b.jpg"]
    assert b and c


@pytest.mark.asyncio
async def test_the_wall_shows_what_guests_are_shown(venue: Venue) -> None:
    a, b, c = venue.ids["a.jpg"], venue.ids["b.jpg"], venue.ids["c.jpg"]
    wall = await venue.client.get(f"/e/{venue.code}/wall")
    assert wall.status_code == 200
    inline_allowed(wall)
    assert f'data-feed="/e/{venue.code}/wall.json"' in wall.text
    assert f"testserver/e/{venue.code}" in wall.text and f"/e/{venue.code}/qr.svg" in wall.text

    async def feed() -> list[int]:
        answer = await venue.client.get(f"/e/{venue.code}/wall.json")
        assert answer.status_code == 200
        photos = answer.json()["photos"]
        for photo in photos:
            assert (await venue.client.get(photo["view_url"])).status_code == 200
        return [p["photo_id"] for p in photos]

    assert await feed() == [c, b, a]
    await venue.store.moderate(venue.code, [b], "hide")
    assert await feed() == [c, a], "a hidden photo leaves the wall at the next poll"
    await venue.store.set_event_settings(venue.code, moderation="approve")
    await venue.store.moderate(venue.code, [a, b], "approve")
    assert await feed() == [a]

    assert (await venue.client.get("/e/abcdefgh/wall.json")).status_code == 404
    await venue.store.set_guest_secret(venue.code, "pin_hash", "scrypt$x")
    assert (await venue.client.get(f"/e/{venue.code}/wall.json")).status_code == 404
    locked = await venue.client.get(f"/e/{venue.code}/wall")
    assert locked.status_code == 200 and 'name="pin"' in locked.text


def photo(width: int | None, height: int | None, orientation: int | None) -> Photo:
    return Photo(
        1, "e", "main", "cam", None, "x.jpg", None, "0" * 64, 1, "jpeg", True, "queued", "/x", "t", None,
        None, None, None, orientation, width, height,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("width", "height", "orientation", "expected"),
    [
        (6048, 4032, 1, "r150"),
        (6048, 4032, 6, "r065"),  # turned upright: portrait
        (6048, 4032, 8, "r065"),
        (4032, 6048, 1, "r065"),
        (4000, 4000, 1, "r100"),
        (12000, 2000, 1, "r250"),  # a panorama, clamped
        (None, None, None, "r150"),  # the camera did not say
    ],
)
def test_a_tile_has_its_frames_shape(
    width: int | None, height: int | None, orientation: int | None, expected: str
) -> None:
    assert ratio_class(frame_ratio(photo(width, height, orientation))) == expected
