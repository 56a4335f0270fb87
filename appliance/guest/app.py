"""Guest pages and their JSON API, on the venue-LAN web listener. Runs on the asyncio thread.

Server-rendered HTML (Jinja2), small inline stylesheets and scripts and no build step, so a
five-year-old phone on busy WiFi gets a page of a few kilobytes. The stylesheets
(``INLINE_STYLES``) and scripts (``INLINE_SCRIPTS``, in ``templates/``) are included inline and
allowed by their SHA-256 in the Content-Security-Policy (:func:`content_security_policy`), which
allows nothing else inline; an event's accent colour is a stylesheet of the box (``look.css``).

Every route is under an event (``/e/<code>/...``) or a host link (``/host/<key>``, in
``host.py``). A search's results get their own address (``/e/<code>/r/<token>``, held in memory
by ``results.py``): the POST answers 303 to it. A wrong link or another event's photo gets the
same bare 404; an unknown code gets a page with the code form. Both count against the client's
hourly allowance of failures. What guests see is what ``Store.guest_photos`` lets through (the
host's moderation).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from appliance import credentials
from appliance.guest import openapi as doc
from appliance.guest.admission import Busy, SearchLine
from appliance.guest.files import cached_file, qr_code, zip_entries, zip_stream
from appliance.guest.host import host_router
from appliance.guest.pages import Found, GuestPages, Match, client_address, not_found, page_count, page_number
from appliance.guest.results import Held
from appliance.guest.tiles import tile_label
from appliance.guest.upload import UploadRejected, read_form

if TYPE_CHECKING:
    from appliance.services import Services
    from appliance.store.records import Event, Photo

logger = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def _nice_date(iso: str) -> str:
    """'2026-12-24' -> 'Thursday 24 December 2026' (the text as typed if it is no date)."""
    try:
        day = dt.date.fromisoformat(iso)
    except ValueError:
        return iso
    return f"{day:%A} {day.day} {day:%B %Y}"


def _hours(hours: float) -> str:
    return f"{hours:g} hour{'' if hours == 1 else 's'}" if hours >= 1 else f"{round(hours * 60)} minutes"


TEMPLATES.env.filters["nice_date"] = _nice_date
TEMPLATES.env.filters["hours"] = _hours
# The pages' inline scripts (templates/*.js, each included whole in one <script> element and
# allowed by its SHA-256): a page's script is one of these files, rendered with no context.
INLINE_SCRIPTS = ("event.js", "viewer.js", "results.js", "host.js", "wall.js")
# The pages' inline stylesheets, the same way (each whole in one <style> element).
INLINE_STYLES = ("guest.css", "host.css")

MESSAGES = {
    "not_an_image": "That file isn't a photo we can read. Please take a selfie, or pick a JPEG or PNG.",
    "too_large": "That picture is far too large. Please take an ordinary selfie.",
    "upload_too_large": "That file is too big to send. Please take an ordinary selfie.",
    "no_face": "We couldn't find a face in your picture. Try again facing the camera, in good light.",
    "face_too_small": "Your face is too small in that picture. Hold the phone closer and try again.",
    "no_file": "Please choose or take a selfie first.",
    "bad_request": "Something went wrong sending your picture. Please try again.",
    "rate_limited": "Too many searches from this phone. Please wait a minute and try again.",
    "unavailable": "Search is starting up. Please try again in a moment.",
    "busy": "The box is busy with other guests' searches. Please try again in a few seconds.",
    "consent": "Please tick the box to agree before taking your selfie.",
    "search_off": "Face search is switched off for this event: browse the photos instead.",
    "expired": "Those results have expired. Take a selfie again to see your photos.",
    "unknown_code": "No event has that code. Check the card on your table and type it again.",
}
GALLERY_PAGE = 60
RESULTS_FIRST = 48  # results rendered in the page itself: ~15 KB of HTML, under the 30 KB budget
COVER_EDGE = 1080
DEFAULT_ACCENT = "#1d6fd8"
ACCENT = re.compile(r"#[0-9a-fA-F]{6}")


def add_guest_routes(app: FastAPI, services: Services) -> None:
    pages = GuestPages(services)
    settings = services.settings.guest
    web = services.settings.web
    line = SearchLine(web.max_searches, web.search_memory_mb << 20, web.search_wait)
    results = pages.results

    def render(
        request: Request,
        name: str,
        status: int = 200,
        *,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request,
            name,
            {
                "consent": settings.consent_text,
                "consent_required": settings.consent_required,
                "live_hours": settings.live_hours,
                **context,
            },
            status_code=status,
            headers=headers,
        )

    def cloud_on() -> bool:
        return services.sync.enabled

    def unknown_code(request: Request, code: str = "") -> HTMLResponse:
        """The page for a code (or a link) that leads nowhere: what to do, and the code form."""
        return render(request, "home.html", 404, error=MESSAGES["unknown_code"], code=code[:16])

    def event_home(request: Request, event: Event, status: int = 200, **context: Any) -> HTMLResponse:
        return render(request, "event.html", status, event=event, cloud=cloud_on(), **context)

    @app.get("/", response_class=HTMLResponse, responses=doc.HOME)
    async def home(request: Request, code: str | None = None) -> Response:
        if code:
            code = code.strip().lower().replace(" ", "").replace("-", "")
            if await pages.event_for(request, code) is not None:
                return RedirectResponse(f"/e/{code}", status_code=303)
            return unknown_code(request, code)
        return render(request, "home.html")

    @app.get("/e/{code}", response_class=HTMLResponse, responses=doc.PAGE)
    async def event_page(request: Request, code: str, page: str = "1") -> Response:
        event = await pages.event_for(request, code)
        if event is None:
            return unknown_code(request, code)
        if code != event.code:  # typed in capitals: one address per event
            return RedirectResponse(f"/e/{event.code}", status_code=308)
        if not pages.pin_ok(request, event):
            return render(request, "pin.html", event=event)
        if not event.face_search:
            return await gallery_page(request, event, page)
        return event_home(request, event)

    async def gallery_page(request: Request, event: Event, page: str) -> Response:
        """An event without face search: the photos the host publishes, newest first."""
        number = page_number(page)
        photos, total = await services.store.guest_page(
            event, offset=(number - 1) * GALLERY_PAGE, limit=GALLERY_PAGE
        )
        items = [pages.match_json("", event, Match(p, 1.0, "gallery")) for p in photos if not tile_label(p)]
        return render(
            request,
            "gallery.html",
            event=event,
            items=items,
            page=number,
            pages=page_count(total, GALLERY_PAGE),
            total=total,
        )

    @app.get("/e/{code}/look.css", response_class=Response, responses=doc.files(doc.CSS))
    async def look(request: Request, code: str) -> Response:
        """The event's accent colour for its pages (a stylesheet of the box: the CSP allows it)."""
        event = await pages.event_for(request, code)
        if event is None:
            return not_found()
        accent = event.accent if event.accent and ACCENT.fullmatch(event.accent) else DEFAULT_ACCENT
        return Response(
            f":root{{--accent:{accent}}}\n",
            media_type="text/css",
            headers={"Cache-Control": "private, max-age=60"},
        )

    @app.get("/e/{code}/cover.jpg", response_class=Response, responses=doc.files(doc.JPEG))
    async def cover(request: Request, code: str) -> Response:
        event = await pages.event_for(request, code)
        if event is None or event.cover_photo_id is None or not pages.pin_ok(request, event):
            return not_found()
        found = await services.store.guest_photos(event, [event.cover_photo_id])
        path = await pages.thumbnail(found[0], COVER_EDGE) if found else None
        if path is None:
            return not_found()
        return cached_file(request, path, f"c-{found[0].sha256[:32]}", "image/jpeg")

    @app.post("/e/{code}/pin", response_class=HTMLResponse, responses=doc.PIN, openapi_extra=doc.PIN_BODY)
    async def enter_pin(request: Request, code: str) -> Response:
        event = await pages.event_for(request, code)
        if event is None or event.pin_hash is None:
            return unknown_code(request, code)
        form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
        pin = str(form.get("pin", ""))[:64].strip()
        good = bool(pin) and await asyncio.to_thread(credentials.verify_secret, pin, event.pin_hash)
        if good:
            response = RedirectResponse(f"/e/{event.code}", status_code=303)
            response.set_cookie(
                pages.access.pin_cookie_name(event.code),
                pages.access.pin_cookie(event.code, event.pin_hash),
                max_age=7 * 86400,
                httponly=True,
                samesite="lax",
                path="/",  # the page and the JSON API both need it
            )
            return response
        pages.access.failures.hit(client_address(request))
        return render(request, "pin.html", 403, event=event, error="That PIN is not right.")

    async def run_search(
        request: Request, code: str, *, page: bool
    ) -> tuple[Event | None, Found | str, int, dict[str, str]]:
        """The selfie in the request searched in the event: (event, answer or error code, HTTP
        status, the form's other fields). No event: the code or PIN is wrong."""
        event = await pages.event_for(request, code)
        if event is None or not pages.pin_ok(request, event):
            return None, "", 404, {}
        if not event.face_search:
            return event, "search_off", 403, {}
        if not pages.access.searches.hit(client_address(request)):
            return event, "rate_limited", 429, {}
        fields: dict[str, str] = {}
        try:
            declared = request.headers.get("content-length", "")
            size = min(int(declared), settings.max_selfie_mb << 20) if declared.isdigit() else 1 << 20
            async with line.place(size):  # bounds the selfies held in memory at once
                try:
                    selfie, fields = await read_form(request, "selfie", settings.max_selfie_mb << 20)
                except UploadRejected as exc:
                    return event, exc.code, exc.status, fields
                if page and settings.consent_required and fields.get("consent") != "yes":
                    return event, "consent", 422, fields
                started = time.perf_counter()
                result = await pages.search(event, selfie)
                del selfie  # in memory only, and only for as long as the search
        except Busy:
            return event, "busy", 503, fields
        if isinstance(result, str):
            return event, result, 503 if result == "unavailable" else 422, fields
        logger.info(
            "guest search in %s: %d photos (%s) in %.0f ms",
            event.code,
            len(result.hits),
            result.mode,
            (time.perf_counter() - started) * 1000,
        )
        return event, result, 200, fields

    def retry_headers(error: str) -> dict[str, str] | None:
        return {"rate_limited": {"Retry-After": "60"}, "busy": {"Retry-After": "5"}}.get(error)

    @app.post("/api/events/{code}/search", responses=doc.SEARCH_API, openapi_extra=doc.SELFIE_BODY)
    async def api_search(request: Request, code: str) -> Response:
        event, result, status, _ = await run_search(request, code.lower(), page=False)
        if event is None:
            return not_found()
        if isinstance(result, str):
            return JSONResponse(
                {"error": result, "message": MESSAGES[result]},
                status_code=status,
                headers=retry_headers(result),
            )
        base = pages.base_url(request)
        matches = result.matches()
        zip_token = pages.access.zip_token(event.code, [m.photo.id for m in matches])
        zip_url = f"{base}/e/{event.code}/zip/{zip_token}" if matches else None
        return JSONResponse(
            {
                "event": event.code,
                "mode": result.mode,
                "offline": result.offline,
                "faces_in_selfie": result.faces_in_selfie,
                "matches": [pages.match_json(base, event, m) for m in matches],
                "zip_url": zip_url,
            }
        )

    @app.post(
        "/e/{code}/search",
        response_class=HTMLResponse,
        responses=doc.SEARCH_PAGE,
        openapi_extra=doc.SELFIE_BODY,
    )
    async def page_search(request: Request, code: str) -> Response:
        """Search, keep the answer in memory and send the phone to its address (Post/Redirect/
        Get): reload, back and a bookmark show the results again without searching again."""
        event, result, status, fields = await run_search(request, code.lower(), page=True)
        if event is None:
            return unknown_code(request, code)
        if isinstance(result, str):
            if result == "search_off":
                return RedirectResponse(f"/e/{event.code}", status_code=303)
            return event_home(
                request,
                event,
                status,
                error=MESSAGES[result],
                error_code=result,
                watch=fields.get("watch") == "yes",
            )
        held = results.hold(
            event.code,
            result.hits,
            mode=result.mode,
            offline=result.offline,
            faces_in_selfie=result.faces_in_selfie,
            embedding=result.embedding,
            watch=fields.get("watch") == "yes",
        )
        wanted = fields.get("watch") == "yes"
        suffix = "?full=1" if wanted and not held.watching() and settings.live_hours > 0 else ""
        return RedirectResponse(f"/e/{event.code}/r/{held.token}{suffix}", status_code=303)

    async def visible_matches(event: Event, held: Held) -> list[Match]:
        """The held results the guest may see now (the host may have hidden some since)."""
        photos = {p.id: p for p in await services.store.guest_photos(event, [h.photo_id for h in held.hits])}
        return [
            Match(photos[h.photo_id], h.score, h.source, h.face_id) for h in held.hits if h.photo_id in photos
        ]

    @app.get("/e/{code}/r/{token}.json", responses=doc.RESULTS_JSON)
    async def results_json(request: Request, code: str, token: str, have: str = "") -> Response:
        """An open results page's poll: the ids it may show now, in order, and the photos it lacks."""
        event = await pages.event_for(request, code)
        held = results.get(event.code, token) if event is not None and pages.pin_ok(request, event) else None
        if event is None or held is None:
            return JSONResponse({"error": "expired", "message": MESSAGES["expired"]}, status_code=404)
        known = {int(p) for p in have.split(",")[:2000] if p.isdecimal() and len(p) < 12}
        matches = await visible_matches(event, held)
        return JSONResponse(
            {
                "ids": [m.photo.id for m in matches],
                "new": [pages.match_json("", event, m) for m in matches if m.photo.id not in known],
                "watching": held.watching(),
                "backlog": await services.faces.index_db.backlog(event.code),
            },
            # closed after each poll: an open page holds no connection between polls, so phones
            # behind one address (a venue's NAT) stay within web.max_connections_per_ip
            headers={"Cache-Control": "no-store", "Connection": "close"},
        )

    @app.get("/e/{code}/r/{token}", response_class=HTMLResponse, responses=doc.PAGE)
    async def results_page(
        request: Request, code: str, token: str, full: str = "", show: str = ""
    ) -> Response:
        event = await pages.event_for(request, code)
        if event is None:
            return unknown_code(request, code)
        if not pages.pin_ok(request, event):
            return render(request, "pin.html", event=event)
        held = results.get(event.code, token)
        if held is None:
            return event_home(request, event, 410, error=MESSAGES["expired"], error_code="expired")
        matches = await visible_matches(event, held)
        # the first RESULTS_FIRST in the page (it stays light); the page's script fetches the rest,
        # and "Show all" (?show=all) renders every one for a phone without script
        shown = matches if show == "all" else matches[:RESULTS_FIRST]
        items = [pages.match_json("", event, m) for m in shown]
        zip_url = f"/e/{event.code}/zip/{pages.access.zip_token(event.code, [m.photo.id for m in matches])}"
        return render(
            request,
            "results.html",
            event=event,
            items=items,
            total=len(matches),
            zip_url=zip_url if matches else None,
            offline=held.offline,
            several_faces=held.faces_in_selfie > 1,
            watching=held.watching(),
            live_full=bool(full),
            backlog=await services.faces.index_db.backlog(event.code),
            poll_url=f"/e/{event.code}/r/{token}.json",
            headers={"Cache-Control": "private, no-store"},
        )

    async def photo_or_none(request: Request, code: str, token: str) -> Photo | None:
        event = await pages.event_for(request, code)
        if event is None:
            return None
        photo = await pages.photo(event, token)
        if photo is None:
            pages.access.failures.hit(client_address(request))
        return photo

    @app.get("/e/{code}/p/{token}/{variant}.jpg", response_class=Response, responses=doc.files(doc.JPEG))
    async def image(request: Request, code: str, token: str, variant: str) -> Response:
        """``thumb.jpg`` (480 px), ``f<face id>.jpg`` (360 px square around that face) or
        ``view.jpg`` (the proxy, else a JPEG original)."""
        face = (
            int(variant[1:]) if variant[:1] == "f" and variant[1:].isdecimal() and len(variant) < 13 else None
        )
        known = variant in ("thumb", "view") or face is not None
        photo = await photo_or_none(request, code, token) if known else None
        if photo is None:
            return not_found()
        if face is not None:
            path = await pages.face_thumbnail(photo, face)
        else:
            path = await (pages.thumbnail(photo) if variant == "thumb" else pages.view(photo))
        if path is None:
            return not_found()
        return cached_file(request, path, f"{variant[:12]}-{photo.sha256[:32]}", "image/jpeg")

    @app.get("/e/{code}/p/{token}/download", response_class=Response, responses=doc.files(doc.ANY_FILE))
    async def download(request: Request, code: str, token: str) -> Response:
        photo = await photo_or_none(request, code, token)
        return not_found() if photo is None else await pages.download(request, photo)

    @app.get("/e/{code}/zip/{token}", response_class=Response, responses=doc.ZIP)
    async def download_zip(request: Request, code: str, token: str) -> Response:
        event = await pages.event_for(request, code)
        if event is None:
            return not_found()
        ids = pages.access.zip_ids(event.code, token)
        if ids is None:
            pages.access.failures.hit(client_address(request))
            return not_found()
        photos = await services.store.guest_photos(event, ids)  # hidden since: left out
        files = zip_entries(photos, originals=True)  # a file gone meanwhile is skipped while zipping
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
        return StreamingResponse(
            zip_stream(files),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="photos-{event.code}-{stamp}.zip"'},
        )

    @app.get("/e/{code}/qr.{fmt}", response_class=Response, responses=doc.QR)
    async def qr(request: Request, code: str, fmt: str) -> Response:
        event = await pages.event_for(request, code)
        if event is None or fmt not in ("png", "svg"):
            return not_found()
        body, media = qr_code(f"{pages.base_url(request)}/e/{event.code}", fmt)
        # its URL depends on who asked (public_url, the name typed): for this phone only, never a proxy
        return Response(body, media_type=media, headers={"Cache-Control": "private, no-store"})

    # the host link and the photo wall
    app.include_router(host_router(pages, render))


def content_security_policy() -> str:
    """The guest listener's Content-Security-Policy: the box only, no frames, no plugins, forms
    posted back to the box, the pages' inline stylesheets and scripts by their SHA-256 (and the
    box's own stylesheets: an event's look.css)."""

    def inline(template: str) -> str:
        text = TEMPLATES.env.get_template(template).render()
        return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"

    return "; ".join(
        [
            "default-src 'self'",
            "script-src " + " ".join(inline(name) for name in INLINE_SCRIPTS),
            # 'self': an event's look.css
            "style-src 'self' " + " ".join(inline(name) for name in INLINE_STYLES),
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )
