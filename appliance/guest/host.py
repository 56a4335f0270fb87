"""The host's side of the guest listener, one router: the private host link and the live photo
wall. Runs on the asyncio thread.

- ``/host/<key>``: the whole event, newest first, paged (``?page=``) and filtered by function and
  camera, each photo with its state in words (pending, approved, rejected, hidden; "shown" in an
  open event). The host ticks photos and posts ``/host/<key>/moderate`` (approve, reject, hide,
  unhide; a tile's own Hide/Unhide button for one photo), and lands back on the same page.
  The host's photos and ZIPs are served under the link itself (``/host/<key>/p/<id>/...``,
  ``/host/<key>/zip``): a photo guests may not see yet still shows to the host.
- ``/e/<code>/wall``: a full-screen slideshow of the newest photos guests are shown, for a
  screen at the venue; ``wall.js`` polls ``/e/<code>/wall.json`` for new ones and drops a photo
  the host hid. Same code and PIN checks as the event's page.

The grid keeps each frame's own shape: a tile's flex-grow and aspect ratio are the photo's
width/height (upright: EXIF orientations 5-8 turn it), as a class from ``host.css`` in 0.05
steps (the CSP allows no style attributes), made exact by ``host.js`` when scripts run.

Cross-site requests: the key in the path is the credential, which a page elsewhere cannot know;
on top, a moderation post is refused when the browser says it came from another site
(``Sec-Fetch-Site``) or names an ``Origin`` that is not the box's. No cookie is involved (so
there is none to mark SameSite). The pages send no referrer, so the key never leaves in one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from appliance.guest import openapi as doc
from appliance.guest.access import host_key_hash, link_base
from appliance.guest.files import cached_file, zip_entries, zip_stream
from appliance.guest.pages import Match, client_address, not_found, page_count, page_number
from appliance.guest.tiles import extension, tile_label
from appliance.store.pairs import raw_halves

if TYPE_CHECKING:
    from appliance.guest.pages import GuestPages
    from appliance.store.records import Event, Photo

HOST_PAGE = 60
WALL_PHOTOS = 30
ACTIONS = ("approve", "reject", "hide", "unhide")
DONE_WORDS = {"approve": "approved", "reject": "rejected", "hide": "hidden", "unhide": "shown again"}
RATIO_STEP = 0.05  # host.css has a class per step from 0.5 to 2.5
RATIO_RANGE = (0.5, 2.5)

Render = Callable[..., HTMLResponse]


@dataclass(frozen=True, slots=True)
class Filters:
    """The host's choice of function and camera (None: all), and those the event has photos of."""

    function: str | None
    camera: str | None
    functions: list[str]
    cameras: list[str]


HOST_PAGE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The whole event for its host, one page, with each photo's state",
        "content": doc.HTML,
    },
    404: doc.NOT_FOUND,
}
MODERATE_DOC: dict[int | str, dict[str, Any]] = {
    303: {"description": "Done: back to the same page of the host link, saying how many changed"},
    400: doc.BAD_REQUEST,
    403: {"description": "Posted from another site (Sec-Fetch-Site or Origin)", "content": doc.TEXT},
    404: doc.NOT_FOUND,
}
MODERATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "action": {"type": "string", "enum": list(ACTIONS)},
                        "id": {"type": "array", "items": {"type": "string"}, "maxItems": HOST_PAGE},
                        "quick": {"type": "string", "description": "`hide:<id>` or `unhide:<id>`: one photo"},
                        "page": {"type": "string"},
                        "function": {"type": "string"},
                        "camera": {"type": "string"},
                    },
                }
            }
        },
    }
}
WALL_JSON_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The newest photos the event's guests are shown, newest first",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["event", "photos"],
                    "properties": {
                        "event": {"type": "string"},
                        "photos": {"type": "array", "items": doc.MATCH_JSON},
                    },
                }
            }
        },
    },
    404: doc.NOT_FOUND,
}


def frame_ratio(photo: Photo) -> float:
    """Width over height of the picture as shown (upright), 3/2 when the camera did not say."""
    if not photo.width or not photo.height:
        return 1.5
    if photo.orientation in (5, 6, 7, 8):  # turned a quarter: the sides swap
        return photo.height / photo.width
    return photo.width / photo.height


def ratio_class(ratio: float) -> str:
    """The host.css class nearest ``ratio``: ``r150`` for 3/2 (a panorama is clamped to 2.5)."""
    low, high = RATIO_RANGE
    stepped = round(min(max(ratio, low), high) / RATIO_STEP) * RATIO_STEP
    return f"r{round(stepped * 100):03d}"


def photo_state(photo: Photo, moderation: str) -> tuple[str, str]:
    """(css class, words) of a photo's state for the host: hidden wins, then the decision."""
    if photo.hidden_at is not None:
        return "hidden", "Hidden"
    if photo.approval == "rejected":
        return "rejected", "Rejected"
    if photo.approval == "approved":
        return "approved", "Approved"
    return ("pending", "Pending") if moderation == "approve" else ("shown", "Shown")


def host_url(key: str, **params: str | int | None) -> str:
    """``/host/<key>`` with the non-empty ``params`` (page 1 is left out)."""
    query = {k: v for k, v in params.items() if v not in (None, "") and not (k == "page" and v == 1)}
    return f"/host/{quote(key, safe='')}" + (f"?{urlencode(query)}" if query else "")


def same_origin(pages: GuestPages, request: Request) -> bool:
    """Whether a post came from the box's own page. A browser's ``Sec-Fetch-Site`` says so
    outright; an older browser's ``Origin`` must be the box's (``null``, which a page with no
    referrer sends for its own form, and no Origin at all pass: the key is the credential)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    own = link_base(request.headers.get("host"), request.scope.get("server"), pages.names)
    return origin.rstrip("/").lower() in {pages.base_url(request).lower(), (own or "").lower()}


def host_tile(root: str, photo: Photo, moderation: str, raws: list[Photo]) -> dict[str, Any]:
    """One tile of the host's grid (``_hostgrid.html``): its links under the host link ``root``,
    its state, and its shape."""
    state, words = photo_state(photo, moderation)
    tile = tile_label(photo)
    ratio = frame_ratio(photo) if tile is None else 1.0  # a typed tile is square
    return {
        "photo_id": photo.id,
        "thumbnail_url": f"{root}/p/{photo.id}/thumb.jpg",
        "view_url": f"{root}/p/{photo.id}/view.jpg",
        "download_url": f"{root}/p/{photo.id}/download",
        "tile": tile,
        "note": photo.faces_error,
        "more": [(extension(raw), f"{root}/p/{raw.id}/download") for raw in raws],
        "state": state,
        "state_words": words,
        "hidden": photo.hidden_at is not None,
        "ratio": round(ratio, 4),
        "ratio_class": ratio_class(ratio),
    }


def _zip(photos: Sequence[Photo], name: str) -> Response:
    files = zip_entries(list(photos), originals=True)  # a file gone meanwhile is skipped while zipping
    return StreamingResponse(
        zip_stream(files),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def host_router(pages: GuestPages, render: Render) -> APIRouter:
    """The host link's and the photo wall's routes over ``pages``; ``render`` draws a template
    as the guest pages do."""
    router = APIRouter()
    store = pages.services.store

    async def host_event(request: Request, key: str) -> Event | None:
        """The event behind a host key, or None (and a failure counted)."""
        client = client_address(request)
        if pages.access.failures.exhausted(client) or len(key) > 100:
            return None
        event = await store.event_by_host_key(host_key_hash(key))
        if event is None:
            pages.access.failures.hit(client)
        return event

    async def filters(event: Event, function: str, camera: str) -> Filters:
        """The function and camera asked for, each None unless the event has photos of it."""
        functions, cameras = await store.event_functions_cameras(event.code)
        return Filters(
            function if function in functions else None,
            camera if camera in cameras else None,
            functions,
            cameras,
        )

    async def page_photos(event: Event, number: int, chosen: Filters) -> tuple[list[Photo], int]:
        return await store.event_page(
            event.code,
            offset=(number - 1) * HOST_PAGE,
            limit=HOST_PAGE,
            function=chosen.function,
            camera=chosen.camera,
        )

    @router.get("/host/{key}", response_class=HTMLResponse, responses=HOST_PAGE_DOC)
    async def host_page(
        request: Request,
        key: str,
        page: str = "1",
        function: str = "",
        camera: str = "",
        done: str = "",
        n: str = "",
    ) -> Response:
        event = await host_event(request, key)
        if event is None:
            return not_found()
        number = page_number(page)
        chosen = await filters(event, function, camera)
        photos, total = await page_photos(event, number, chosen)
        raws = await raw_halves(store, event.code, [p.id for p in photos])
        root = host_url(key)
        items = [host_tile(root, photo, event.moderation, raws.get(photo.id, [])) for photo in photos]
        if done == "none":
            message = "Tick the photos first, then press a button."
        elif done in DONE_WORDS and n.isascii() and n.isdecimal() and len(n) <= 7:
            message = f"{int(n)} photo{'' if int(n) == 1 else 's'} {DONE_WORDS[done]}."
        else:
            message = None
        here = {"function": chosen.function, "camera": chosen.camera}
        return render(
            request,
            "host.html",
            event=event,
            items=items,
            page=number,
            pages=page_count(total, HOST_PAGE),
            total=total,
            root=root,
            functions=chosen.functions,
            cameras=chosen.cameras,
            function=chosen.function,
            camera=chosen.camera,
            message=message,
            awaiting=await store.awaiting_approval(event.code) if event.moderation == "approve" else None,
            newer=host_url(key, page=number - 1, **here) if number > 1 else None,
            older=host_url(key, page=number + 1, **here),
            zip_page=f"{root}/zip?{urlencode({'page': number, **{k: v for k, v in here.items() if v}})}"
            if photos
            else None,
            zip_all=f"{root}/zip" if chosen.functions else None,  # the event has photos
        )

    @router.post(
        "/host/{key}/moderate", response_class=Response, responses=MODERATE_DOC, openapi_extra=MODERATE_BODY
    )
    async def moderate(request: Request, key: str) -> Response:
        event = await host_event(request, key)
        if event is None:
            return not_found()
        if not same_origin(pages, request):
            return Response("Forbidden", status_code=403, media_type="text/plain")
        form = await request.form(max_files=0, max_fields=HOST_PAGE + 8, max_part_size=1024)
        action, _, one = str(form.get("quick") or "").partition(":")
        if action:
            raw_ids = [one]
        else:
            action = str(form.get("action") or "")
            raw_ids = [str(v) for v in form.getlist("id")]
        if action not in ACTIONS or not all(v.isascii() and v.isdecimal() and len(v) <= 18 for v in raw_ids):
            return Response("Bad request", status_code=400, media_type="text/plain")
        ids = [int(v) for v in raw_ids]
        changed = await store.moderate(event.code, ids, action) if ids else 0
        back = host_url(
            key,
            page=page_number(str(form.get("page") or "1")),
            function=str(form.get("function") or "")[:100],
            camera=str(form.get("camera") or "")[:100],
            done=action if ids else "none",
            n=changed if ids else None,
        )
        return RedirectResponse(back, status_code=303)

    async def host_photo(request: Request, key: str, photo_id: str) -> Photo | None:
        event = await host_event(request, key)
        if event is None or not (photo_id.isascii() and photo_id.isdecimal() and len(photo_id) <= 18):
            return None
        found = await store.event_photos(event.code, [int(photo_id)])
        return found[0] if found else None

    @router.get(
        "/host/{key}/p/{photo_id}/{variant}.jpg", response_class=Response, responses=doc.files(doc.JPEG)
    )
    async def host_image(request: Request, key: str, photo_id: str, variant: str) -> Response:
        """``thumb.jpg`` (480 px) or ``view.jpg`` of any photo of the event, whatever its state."""
        photo = await host_photo(request, key, photo_id) if variant in ("thumb", "view") else None
        if photo is None:
            return not_found()
        path = await (pages.thumbnail(photo) if variant == "thumb" else pages.view(photo))
        if path is None:
            return not_found()
        return cached_file(request, path, f"{variant[0]}-{photo.sha256[:32]}", "image/jpeg")

    @router.get(
        "/host/{key}/p/{photo_id}/download", response_class=Response, responses=doc.files(doc.ANY_FILE)
    )
    async def host_download(request: Request, key: str, photo_id: str) -> Response:
        photo = await host_photo(request, key, photo_id)
        return not_found() if photo is None else await pages.download(request, photo)

    @router.get("/host/{key}/zip", response_class=Response, responses=doc.ZIP)
    async def host_zip(
        request: Request, key: str, page: str = "", function: str = "", camera: str = ""
    ) -> Response:
        """Every file of the event (each RAW beside its JPEG), or with ``page`` one page of the
        host's view (its filters too)."""
        event = await host_event(request, key)
        if event is None:
            return not_found()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
        if not page:
            photos = await store.list_photos(event.code, limit=10_000_000)
            return _zip(photos, f"photos-{event.code}-{stamp}.zip")
        number = page_number(page)
        photos, _total = await page_photos(event, number, await filters(event, function, camera))
        raws = await raw_halves(store, event.code, [p.id for p in photos])
        files = [q for p in photos for q in (p, *raws.get(p.id, []))]
        return _zip(files, f"photos-{event.code}-{stamp}-page{number}.zip")

    # --- the photo wall

    @router.get("/e/{code}/wall", response_class=HTMLResponse, responses=doc.WALL)
    async def wall(request: Request, code: str) -> Response:
        event = await pages.event_for(request, code)
        if event is None:
            return not_found()
        if not pages.pin_ok(request, event):
            return render(request, "pin.html", event=event)
        address = f"{pages.base_url(request)}/e/{event.code}".split("://", 1)[-1]
        return render(request, "wall.html", event=event, address=address)

    @router.get("/e/{code}/wall.json", responses=WALL_JSON_DOC)
    async def wall_json(request: Request, code: str) -> Response:
        event = await pages.event_for(request, code)
        if event is None or not pages.pin_ok(request, event):
            return not_found()
        photos, _total = await store.guest_page(event, offset=0, limit=WALL_PHOTOS)
        shown = [p for p in photos if tile_label(p) is None]  # a video or sidecar has no picture
        return JSONResponse(
            {
                "event": event.code,
                "photos": [pages.match_json("", event, Match(p, 1.0, "gallery")) for p in shown],
            }
        )

    return router
