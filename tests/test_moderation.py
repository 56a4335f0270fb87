"""The host in control, the store's side: an event's settings (moderation, face search, date,
accent, cover), the host's decision and hide switch per photo, and which photos guests are shown
(``Photo.shown_to_guests`` and its SQL twin must agree).

A real Store on a real SQLite file; frames are queued the way the Lander queues them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from appliance.control.api import make_admin_app
from appliance.errors import NotFoundError, StoreError
from appliance.layout import Layout
from appliance.store.store import Store
from tests.test_host_page import services_for
from tests.test_store_formats import frame


async def queued(store: Store, event: str, count: int, **extra: object) -> list[int]:
    ids = []
    for n in range(count):
        photo, _ = await store.add_photo(
            frame(event, f"DSC_{n:04d}.JPG", "jpeg", n, capture_time=None, **extra)
        )
        ids.append(photo.id)
    return ids


@pytest.mark.asyncio
async def test_event_settings_change_only_what_is_given(tmp_path: Path) -> None:
    async with Store(tmp_path / "shutterbox.db") as store:
        code = (await store.create_event("Wedding")).code
        other = (await store.create_event("Other")).code
        [photo] = await queued(store, code, 1)
        [foreign] = await queued(store, other, 1)
        event = await store.get_event(code)
        assert (event.moderation, event.face_search, event.date, event.accent, event.cover_photo_id) == (
            "open",
            True,
            None,
            None,
            None,
        )
        event = await store.set_event_settings(
            code, moderation="approve", date="2026-12-24", accent="#AA3355", cover_photo_id=photo
        )
        assert (event.moderation, event.date, event.accent, event.cover_photo_id) == (
            "approve",
            "2026-12-24",
            "#aa3355",
            photo,
        )
        event = await store.set_event_settings(code, face_search=False)
        assert not event.face_search and event.moderation == "approve" and event.accent == "#aa3355"
        event = await store.set_event_settings(code, date=None, accent=None, cover_photo_id=None)
        assert (event.date, event.accent, event.cover_photo_id, event.moderation) == (
            None,
            None,
            None,
            "approve",
        )

        bad = {
            "moderation": ("everyone", "moderation 'everyone' is not one of open, approve"),
            "date": ("24/12/2026", "is not a day written yyyy-mm-dd"),
            "accent": ("red", "is not a colour written #rrggbb"),
            "cover_photo_id": (foreign, f"photo {foreign} is not a photo of event {code}"),
        }
        for name, (value, words) in bad.items():
            with pytest.raises(StoreError, match=words):
                await store.set_event_settings(code, **{name: value})
        with pytest.raises(StoreError, match="is not a day"):
            await store.set_event_settings(code, date="2026-02-30")
        assert await store.get_event(code) == event, "a refused change changes nothing"
        with pytest.raises(NotFoundError):
            await store.set_event_settings("nosuchev", moderation="open")


@pytest.mark.asyncio
async def test_guests_see_what_the_host_allows(tmp_path: Path) -> None:
    async with Store(tmp_path / "shutterbox.db") as store:
        code = (await store.create_event("Party")).code
        other = (await store.create_event("Other")).code
        a, b, c, d = await queued(store, code, 4)
        [foreign] = await queued(store, other, 1)

        event = await store.get_event(code)
        assert [p.id for p in await store.guest_photos(event, [a, b, c, d, foreign])] == [d, c, b, a]

        assert await store.moderate(code, [b, foreign], "hide") == 1, "another event's id is not found"
        assert await store.moderate(code, [b], "hide") == 0, "hiding twice changes nothing"
        assert await store.moderate(code, [c], "reject") == 1
        assert [p.id for p in await store.guest_photos(event, [a, b, c, d])] == [d, a]
        assert (await store.get_photo(foreign)).hidden_at is None

        event = await store.set_event_settings(code, moderation="approve")
        assert await store.guest_photos(event, [a, b, c, d]) == [], "nothing approved yet"
        assert await store.awaiting_approval(code) == 2  # a and d: b is hidden, c rejected
        assert await store.moderate(code, [a, b, c], "approve") == 3, "approving clears a rejection"
        assert [p.id for p in await store.guest_photos(event, [a, b, c, d])] == [c, a], "b stays hidden"
        assert await store.moderate(code, [b], "unhide") == 1
        page, total = await store.guest_page(event, offset=0, limit=2)
        assert ([p.id for p in page], total) == ([c, b], 3)

        # every photo of the host's page carries its state, and agrees with the SQL
        photos, total = await store.event_page(code, offset=0, limit=10)
        assert total == 4
        shown = {p.id for p in photos if p.shown_to_guests(event.moderation)}
        assert shown == {p.id for p in await store.guest_photos(event, [a, b, c, d])}
        states = {p.id: (p.approval, p.hidden_at is not None) for p in photos}
        assert states == {
            a: ("approved", False),
            b: ("approved", False),
            c: ("approved", False),
            d: (None, False),
        }

        with pytest.raises(StoreError, match="'delete' is not one of approve, reject, hide, unhide"):
            await store.moderate(code, [a], "delete")


@pytest.mark.asyncio
async def test_the_hosts_page_filters_by_function_and_camera(tmp_path: Path) -> None:
    async with Store(tmp_path / "shutterbox.db") as store:
        code = (await store.create_event("Gala", functions=["ceremony", "party"])).code
        ceremony = await queued(store, code, 2, function="ceremony", camera="Z6 #1")
        party = [
            (
                await store.add_photo(
                    frame(code, f"P{n}.JPG", "jpeg", 10 + n, capture_time=None, function="party", camera=cam)
                )
            )[0].id
            for n, cam in enumerate(["Z6 #1", "R5"])
        ]
        assert await store.event_functions_cameras(code) == (["ceremony", "party"], ["R5", "Z6 #1"])
        page, total = await store.event_page(code, offset=0, limit=10, function="party")
        assert ([p.id for p in page], total) == (party[::-1], 2)
        page, total = await store.event_page(code, offset=0, limit=10, camera="Z6 #1")
        assert ([p.id for p in page], total) == ([party[0], *ceremony[::-1]], 3)
        page, total = await store.event_page(code, offset=0, limit=10, function="party", camera="R5")
        assert ([p.id for p in page], total) == ([party[1]], 1)
        assert await store.event_page(code, offset=0, limit=10, camera="nobody") == ([], 0)


# --- the admin API's side (in process, over httpx's ASGI transport)


@pytest_asyncio.fixture
async def admin(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    layout = Layout(tmp_path / "data")
    layout.create()
    async with Store(layout.database) as store:
        app = make_admin_app(services_for(layout, store), None, None, None)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shutterbox") as client:
            yield client, store


@pytest.mark.asyncio
async def test_the_operator_edits_an_event_and_words_a_bad_value(
    admin: tuple[httpx.AsyncClient, Store],
) -> None:
    client, store = admin
    code = (await store.create_event("Wedding")).code
    [photo] = await queued(store, code, 1)
    answer = await client.patch(
        f"/api/events/{code}",
        json={"moderation": "approve", "face_search": False, "date": "2026-12-24", "accent": "#AA3355"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["moderation"], body["face_search"], body["date"], body["accent"]) == (
        "approve",
        False,
        "2026-12-24",
        "#aa3355",
    )
    answer = await client.patch(
        f"/api/events/{code}", json={"name": "Wedding party", "cover_photo_id": photo}
    )
    assert (answer.json()["name"], answer.json()["cover_photo_id"], answer.json()["moderation"]) == (
        "Wedding party",
        photo,
        "approve",
    )
    assert (await client.patch(f"/api/events/{code}", json={"date": None})).json()["date"] is None
    listed = (await client.get("/api/events")).json()
    assert [e["awaiting_approval"] for e in listed] == [1]

    refusals = {
        "moderation": ("everyone", "one of open, approve"),
        "date": ("24/12/2026", "'24/12/2026' is not a day written yyyy-mm-dd (like 2026-12-24)"),
        "accent": ("red", "'red' is not a colour written #rrggbb (like #aa3355)"),
        "face_search": (None, "face_search cannot be null"),
        "colour": ("#aa3355", "is not a field of this request"),
    }
    for name, (value, words) in refusals.items():
        answer = await client.patch(f"/api/events/{code}", json={name: value})
        assert answer.status_code == 422, (name, answer.text)
        [error] = answer.json()["detail"]
        assert words in error["msg"], (name, error)
        assert "should" not in error["msg"] and "^" not in error["msg"], error
    # was taken as photo 1 (schemathesis found it): a boolean is not a photo id
    answer = await client.patch(f"/api/events/{code}", json={"cover_photo_id": True})
    assert answer.status_code == 422, answer.text
    for error in answer.json()["detail"]:
        assert "should" not in error["msg"] and "^" not in error["msg"], error
    other = (await store.create_event("Other")).code
    [foreign] = await queued(store, other, 1)
    answer = await client.patch(f"/api/events/{code}", json={"cover_photo_id": foreign, "name": "X"})
    assert (
        answer.status_code == 409
        and answer.json()["detail"] == f"photo {foreign} is not a photo of event {code}"
    )
    assert (await store.get_event(code)).name == "Wedding party", "a refused edit changes nothing"
    assert (await client.patch("/api/events/nosuchev", json={"moderation": "open"})).status_code == 404


@pytest.mark.asyncio
async def test_the_operator_moderates_photos(admin: tuple[httpx.AsyncClient, Store]) -> None:
    client, store = admin
    code = (await store.create_event("Party")).code
    other = (await store.create_event("Other")).code
    a, b = await queued(store, code, 2)
    [foreign] = await queued(store, other, 1)
    url = f"/api/events/{code}/photos/moderate"
    answer = await client.post(url, json={"action": "hide", "ids": [a, b, foreign, a]})
    assert answer.json() == {
        "event": code,
        "action": "hide",
        "changed": 2,
        "unchanged": 0,
        "not_found": [foreign],
    }
    answer = await client.post(url, json={"action": "hide", "ids": [a]})
    assert (answer.json()["changed"], answer.json()["unchanged"]) == (0, 1)
    event = await store.get_event(code)
    assert await store.guest_photos(event, [a, b]) == []
    for bad in (
        {"action": "delete", "ids": [a]},
        {"action": "hide", "ids": []},
        {"action": "hide", "ids": [0]},
        {"action": "hide", "ids": [True]},  # was taken as photo 1 (schemathesis found it)
        {"action": "hide", "ids": [float(a)]},
        {"action": "hide", "ids": [str(a)]},
    ):
        answer = await client.post(url, json=bad)
        assert answer.status_code == 422, bad
        assert "should" not in answer.json()["detail"][0]["msg"], answer.text
    assert (
        await client.post("/api/events/nosuchev/photos/moderate", json={"action": "hide", "ids": [a]})
    ).status_code == 404


def test_the_console_shows_photos_awaiting_approval() -> None:
    from tui.screens.events import _row

    base = {"code": "abcdefgh", "name": "Gala", "functions": ["main"], "originals_policy": "all"}
    _, cells = _row({**base, "awaiting_approval": 3})
    assert str(cells[1]) == "Gala (3 awaiting approval)"
    _, cells = _row({**base, "awaiting_approval": None})
    assert str(cells[1]) == "Gala", "an open event has nothing to approve"
