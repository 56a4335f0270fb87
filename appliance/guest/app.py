"""Guest pages and their JSON API, on the venue-LAN web listener. Runs on the asyncio thread.

Server-rendered HTML (Jinja2), one small inline stylesheet, a few lines of inline script and no
build step, so a five-year-old phone on busy WiFi gets a page of a few kilobytes. The stylesheet
(``templates/guest.css``) and the script (``templates/event.js``) are included inline and allowed
by their SHA-256 in the Content-Security-Policy (:func:`content_security_policy`), which allows
nothing else inline.

Every route is under an event (``/e/<code>/...``) or a host link (``/host/<key>``). An unknown
code, a wrong link or another event's photo all get the same bare 404, and count against the
client's hourly allowance of failures.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import mimetypes
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from appliance import credentials, metrics
from appliance.errors import NotFoundError
from appliance.guest import openapi as doc
from appliance.guest.access import host_key_hash, link_base, own_names
from appliance.guest.admission import Busy, SearchLine
from appliance.guest.files import ascii_name, cached_file, download_name, qr_code, zip_entries, zip_stream
from appliance.guest.thumbs import make_thumbnail
from appliance.guest.tiles import extension, tile_label
from appliance.guest.upload import UploadRejected, read_file_field
from appliance.mdns import box_name
from appliance.proxy import ProxyError, make_proxy
from appliance.store.pairs import raw_halves, shown_for

if TYPE_CHECKING:
    from appliance.guest.access import GuestAccess
    from appliance.services import Services
    from appliance.store.records import Event, Photo

logger = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
CODE_CHARS = set(credentials.ALPHABET)
HOST_PAGE = 60
# The pages' inline scripts (templates/*.js, each included whole in one <script> element and
# allowed by its SHA-256): a page's script is one of these files, rendered with no context.
INLINE_SCRIPTS = ("event.js",)

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
}


@dataclass(frozen=True, slots=True)
class Match:
    photo: Photo
    score: float
    source: str  # "cloud" or "local"


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _not_found() -> Response:
    return Response("Not found", status_code=404, media_type="text/plain")


class GuestPages:
    def __init__(self, services: Services) -> None:
        self.services = services
        hostname = socket.gethostname()
        self.names = own_names(
            [
                box_name(services.settings.mdns),
                hostname,
                hostname.split(".")[0],
                "localhost",
                *services.settings.tls.hostnames,
            ]
        )

    @property
    def access(self) -> GuestAccess:
        return self.services.guest

    # --- who is asking

    async def event_for(self, request: Request, code: str) -> Event | None:
        """The event behind a code, or None (and a failure counted) for an unknown or malformed
        one. A client over its failure allowance gets None for every code."""
        client = _client(request)
        if self.access.failures.exhausted(client):
            return None
        if len(code) == credentials.EVENT_CODE_LENGTH and set(code) <= CODE_CHARS:
            try:
                return await self.services.store.get_event(code)
            except NotFoundError:
                pass
        self.access.failures.hit(client)
        return None

    def pin_ok(self, request: Request, event: Event) -> bool:
        if event.pin_hash is None:
            return True
        cookie = request.cookies.get(self.access.pin_cookie_name(event.code))
        return self.access.pin_cookie_ok(event.code, event.pin_hash, cookie)

    def base_url(self, request: Request) -> str:
        """Where absolute links point: ``guest.public_url``, else the box by the name the guest
        typed (if it is the box's) or the address its connection reached; never a forged Host."""
        configured = self.services.settings.guest.public_url
        if configured:
            return configured.rstrip("/")
        local = request.scope.get("server")
        base = link_base(request.headers.get("host"), local, self.names)
        return base or default_public_url(self.services.ports.web or self.services.settings.web.port)

    # --- search

    async def search(self, event: Event, selfie: bytes) -> dict[str, Any]:
        """Local index always; Rekognition too when the uplink is up. Never raises for the
        uplink: a cloud failure just means the answer is the box's own."""
        faces = self.services.faces
        local = await faces.search(event.code, selfie)
        if local.error:
            metrics.GUEST_SEARCHES.labels(local.error).inc()
            return {"error": local.error, "faces_in_selfie": local.faces_in_selfie}
        sync = self.services.sync
        cloud = None
        if sync.enabled:
            cloud = await sync.search_faces(
                event.code, local.selfie_jpeg, wait=self.services.settings.guest.cloud_timeout
            )
        scores: dict[int, tuple[float, str]] = {}
        if cloud is not None:
            by_face = await faces.index_db.cloud_photos(event.code, [m.face_id for m in cloud])
            for m in cloud:
                photo_id = by_face.get(m.face_id)
                if photo_id is not None and m.similarity / 100 > scores.get(photo_id, (0.0, ""))[0]:
                    scores[photo_id] = (round(m.similarity / 100, 4), "cloud")
            # The collection is authoritative for what it holds; the local index adds the rest.
            synced = await faces.index_db.in_cloud(event.code, [pid for pid, _ in local.matches])
            for photo_id, distance in local.matches:
                if photo_id not in synced and photo_id not in scores:
                    scores[photo_id] = (round(max(0.0, 1.0 - distance), 4), "local")
        else:
            for photo_id, distance in local.matches:
                scores[photo_id] = (round(max(0.0, 1.0 - distance), 4), "local")
        scores = await self.one_per_shutter(event, scores)
        photos = await self.services.store.event_photos(event.code, scores)
        mode = "cloud" if cloud is not None else "local"
        offline = sync.enabled and cloud is None
        metrics.GUEST_SEARCHES.labels(mode).inc()
        return {
            "matches": [Match(p, *scores[p.id]) for p in photos],
            "mode": mode,
            "offline": offline,
            "faces_in_selfie": local.faces_in_selfie,
        }

    async def one_per_shutter(
        self, event: Event, scores: dict[int, tuple[float, str]]
    ) -> dict[int, tuple[float, str]]:
        """A RAW matched (indexed before its JPEG landed, or in the cloud) counts as its JPEG:
        one result per shutter, the JPEG, with the better of the two scores."""
        shown = await shown_for(self.services.store, event.code, scores)
        merged: dict[int, tuple[float, str]] = {}
        for photo_id, score in scores.items():
            target = shown.get(photo_id, photo_id)
            if target not in merged or score[0] > merged[target][0]:
                merged[target] = score
        return merged

    def match_json(self, base: str, event: Event, match: Match) -> dict[str, Any]:
        token = self.access.photo_token(event.code, match.photo.id)
        root = f"{base}/e/{event.code}/p/{token}"
        return {
            "photo_id": match.photo.id,
            "score": match.score,
            "source": match.source,
            "taken_at": match.photo.capture_time or match.photo.received_at,
            "thumbnail_url": f"{root}/thumb.jpg",
            "view_url": f"{root}/view.jpg",
            "download_url": f"{root}/download",
        }

    # --- files

    async def photo(self, event: Event, token: str) -> Photo | None:
        photo_id = self.access.photo_id(event.code, token)
        if photo_id is None:
            return None
        found = await self.services.store.event_photos(event.code, [photo_id])
        return found[0] if found else None

    def proxy_of(self, photo: Photo) -> Path | None:
        if photo.proxy_path and Path(photo.proxy_path).exists():
            return Path(photo.proxy_path)
        return None

    async def view(self, photo: Photo) -> Path | None:
        """The guests' full view: the proxy; a JPEG original until it exists; for another format,
        the proxy made now, where and as the face index and the sync make it (same bytes)."""
        proxy = self.proxy_of(photo)
        if proxy is not None:
            return proxy
        if photo.kind == "jpeg" or not photo.searchable or photo.evicted_at is not None:
            return Path(photo.stored_path) if photo.kind == "jpeg" else None
        dest = self.services.layout.proxies / photo.event / f"{photo.sha256}.jpg"
        if not dest.exists():
            long_edge = self.services.settings.cloud.proxy_long_edge
            try:
                await asyncio.to_thread(make_proxy, Path(photo.stored_path), dest, long_edge=long_edge)
            except (ProxyError, OSError) as exc:
                logger.info("no view of photo %d: %s", photo.id, exc)
                return None
        return dest

    async def thumbnail(self, photo: Photo) -> Path | None:
        dest = self.services.layout.thumbs / photo.event / f"{photo.sha256}.jpg"
        if dest.exists():
            return dest
        stored = Path(photo.stored_path) if photo.searchable and photo.evicted_at is None else None
        source = self.proxy_of(photo) or stored
        if source is None:
            return None
        try:
            await asyncio.to_thread(make_thumbnail, source, dest)
        except (ProxyError, OSError) as exc:
            logger.info("no thumbnail for photo %d: %s", photo.id, exc)
            return None
        return dest


def add_guest_routes(app: FastAPI, services: Services) -> None:
    pages = GuestPages(services)
    settings = services.settings.guest
    web = services.settings.web
    line = SearchLine(web.max_searches, web.search_memory_mb << 20, web.search_wait)

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return TEMPLATES.TemplateResponse(
            request, name, {"consent": settings.consent_text, **context}, status_code=status
        )

    def cloud_on() -> bool:
        return services.sync.enabled

    @app.get("/", response_class=HTMLResponse, responses=doc.HOME)
    async def home(request: Request, code: str | None = None) -> Response:
        if code:
            code = code.strip().lower()
            if await pages.event_for(request, code) is not None:
                return RedirectResponse(f"/e/{code}", status_code=303)
            return render(
                request, "home.html", 404, error="No event has that code. Check the card and try again."
            )
        return render(request, "home.html")

    @app.get("/e/{code}", response_class=HTMLResponse, responses=doc.PAGE)
    async def event_page(request: Request, code: str) -> Response:
        event = await pages.event_for(request, code)
        if event is None:
            return _not_found()
        if not pages.pin_ok(request, event):
            return render(request, "pin.html", event=event)
        return render(request, "event.html", event=event, cloud=cloud_on())

    @app.post("/e/{code}/pin", response_class=HTMLResponse, responses=doc.PIN, openapi_extra=doc.PIN_BODY)
    async def enter_pin(request: Request, code: str) -> Response:
        event = await pages.event_for(request, code)
        if event is None or event.pin_hash is None:
            return _not_found()
        form = await request.form(max_files=0, max_fields=4, max_part_size=1024)
        pin = str(form.get("pin", ""))[:64].strip()
        good = bool(pin) and await asyncio.to_thread(credentials.verify_secret, pin, event.pin_hash)
        if good:
            response = RedirectResponse(f"/e/{code}", status_code=303)
            response.set_cookie(
                pages.access.pin_cookie_name(code),
                pages.access.pin_cookie(code, event.pin_hash),
                max_age=7 * 86400,
                httponly=True,
                samesite="lax",
                path="/",  # the page and the JSON API both need it
            )
            return response
        pages.access.failures.hit(_client(request))
        return render(request, "pin.html", 403, event=event, error="That PIN is not right.")

    async def run_search(request: Request, code: str) -> tuple[Event | None, dict[str, Any], int]:
        event = await pages.event_for(request, code)
        if event is None:
            return None, {}, 404
        if not pages.pin_ok(request, event):
            return None, {}, 404
        if not pages.access.searches.hit(_client(request)):
            return event, {"error": "rate_limited"}, 429
        try:
            declared = request.headers.get("content-length", "")
            size = min(int(declared), settings.max_selfie_mb << 20) if declared.isdigit() else 1 << 20
            async with line.place(size):  # bounds the selfies held in memory at once
                try:
                    selfie = await read_file_field(request, "selfie", settings.max_selfie_mb << 20)
                except UploadRejected as exc:
                    return event, {"error": exc.code}, exc.status
                started = time.perf_counter()
                result = await pages.search(event, selfie)
                del selfie  # in memory only, and only for as long as the search
        except Busy:
            return event, {"error": "busy"}, 503
        if result.get("error"):
            status = 503 if result["error"] == "unavailable" else 422
            return event, result, status
        logger.info(
            "guest search in %s: %d photos (%s) in %.0f ms",
            event.code,
            len(result["matches"]),
            result["mode"],
            (time.perf_counter() - started) * 1000,
        )
        return event, result, 200

    @app.post("/api/events/{code}/search", responses=doc.SEARCH_API, openapi_extra=doc.SELFIE_BODY)
    async def api_search(request: Request, code: str) -> Response:
        event, result, status = await run_search(request, code)
        if event is None:
            return _not_found()
        if status != 200:
            error = result["error"]
            headers = {"429": {"Retry-After": "60"}, "busy": {"Retry-After": "5"}}.get(
                "busy" if error == "busy" else str(status)
            )
            return JSONResponse(
                {"error": error, "message": MESSAGES[error]}, status_code=status, headers=headers
            )
        base = pages.base_url(request)
        matches = result["matches"]
        zip_token = pages.access.zip_token(event.code, [m.photo.id for m in matches])
        zip_url = f"{base}/e/{event.code}/zip/{zip_token}" if matches else None
        return JSONResponse(
            {
                "event": event.code,
                "mode": result["mode"],
                "offline": result["offline"],
                "faces_in_selfie": result["faces_in_selfie"],
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
        event, result, status = await run_search(request, code)
        if event is None:
            return _not_found()
        if status != 200:
            return render(
                request, "event.html", status, event=event, cloud=cloud_on(), error=MESSAGES[result["error"]]
            )
        matches = result["matches"]
        items = [pages.match_json("", event, m) for m in matches]
        zip_url = f"/e/{event.code}/zip/{pages.access.zip_token(event.code, [m.photo.id for m in matches])}"
        return render(
            request,
            "results.html",
            event=event,
            items=items,
            zip_url=zip_url if matches else None,
            offline=result["offline"],
            several_faces=result["faces_in_selfie"] > 1,
        )

    async def photo_or_none(request: Request, code: str, token: str) -> Photo | None:
        event = await pages.event_for(request, code)
        if event is None:
            return None
        photo = await pages.photo(event, token)
        if photo is None:
            pages.access.failures.hit(_client(request))
        return photo

    @app.get("/e/{code}/p/{token}/{variant}.jpg", response_class=Response, responses=doc.files(doc.JPEG))
    async def image(request: Request, code: str, token: str, variant: str) -> Response:
        """``thumb.jpg`` (480 px) or ``view.jpg`` (the proxy, else a JPEG original)."""
        photo = await photo_or_none(request, code, token) if variant in ("thumb", "view") else None
        if photo is None:
            return _not_found()
        path = await (pages.thumbnail(photo) if variant == "thumb" else pages.view(photo))
        if path is None:
            return _not_found()
        return cached_file(request, path, f"{variant[0]}-{photo.sha256[:32]}", "image/jpeg")

    @app.get("/e/{code}/p/{token}/download", response_class=Response, responses=doc.files(doc.ANY_FILE))
    async def download(request: Request, code: str, token: str) -> Response:
        photo = await photo_or_none(request, code, token)
        if photo is None:
            return _not_found()
        original = Path(photo.stored_path)
        path = original if await asyncio.to_thread(original.exists) else pages.proxy_of(photo)
        if path is None:
            return _not_found()
        name = download_name(photo, path)
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return cached_file(
            request,
            path,
            f"d-{photo.sha256[:32]}",
            media,
            **{"Content-Disposition": f'attachment; filename="{ascii_name(name)}"'},
        )

    @app.get("/e/{code}/zip/{token}", response_class=Response, responses=doc.ZIP)
    async def download_zip(request: Request, code: str, token: str) -> Response:
        event = await pages.event_for(request, code)
        if event is None:
            return _not_found()
        ids = pages.access.zip_ids(event.code, token)
        if ids is None:
            pages.access.failures.hit(_client(request))
            return _not_found()
        photos = await services.store.event_photos(event.code, ids)
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
            return _not_found()
        body, media = qr_code(f"{pages.base_url(request)}/e/{event.code}", fmt)
        # its URL depends on who asked (public_url, the name typed): for this phone only, never a proxy
        return Response(body, media_type=media, headers={"Cache-Control": "private, no-store"})

    @app.get("/host/{key}", response_class=HTMLResponse, responses=doc.PAGE)
    async def host_page(request: Request, key: str, page: str = "1") -> Response:
        client = _client(request)
        if pages.access.failures.exhausted(client) or len(key) > 100:
            return _not_found()
        event = await services.store.event_by_host_key(host_key_hash(key))
        if event is None:
            pages.access.failures.hit(client)
            return _not_found()
        # a page link typed by hand: anything but a number is page 1 (not FastAPI's 422 JSON),
        # and past the end is an empty page, never an overflow
        digits = page.strip()
        number = 1
        if digits.isascii() and digits.isdecimal():
            number = min(max(1, int(digits)), 1_000_000) if len(digits) <= 7 else 1_000_000
        photos, total = await services.store.event_page(
            event.code, offset=(number - 1) * HOST_PAGE, limit=HOST_PAGE
        )
        raws = await raw_halves(services.store, event.code, [p.id for p in photos])
        items = []
        for photo in photos:
            item = pages.match_json("", event, Match(photo, 1.0, "host"))
            item["tile"] = tile_label(photo)
            item["note"] = photo.faces_error
            item["more"] = [
                (extension(raw), pages.match_json("", event, Match(raw, 1.0, "host"))["download_url"])
                for raw in raws.get(photo.id, [])
            ]
            items.append(item)
        all_ids = await services.store.event_photo_ids(event.code)
        return render(
            request,
            "host.html",
            event=event,
            items=items,
            page=number,
            pages=max(1, -(-total // HOST_PAGE)),
            total=total,
            key=key,
            zip_page=f"/e/{event.code}/zip/{pages.access.zip_token(event.code, [p.id for p in photos])}"
            if photos
            else None,
            zip_all=f"/e/{event.code}/zip/{pages.access.zip_token(event.code, all_ids)}" if all_ids else None,
        )


def content_security_policy() -> str:
    """The guest listener's Content-Security-Policy: the box only, no frames, no plugins, forms
    posted back to the box, and the pages' one inline stylesheet and script by their SHA-256."""

    def inline(template: str) -> str:
        text = TEMPLATES.env.get_template(template).render()
        return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"

    return "; ".join(
        [
            "default-src 'self'",
            "script-src " + " ".join(inline(name) for name in INLINE_SCRIPTS),
            f"style-src {inline('guest.css')}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def default_public_url(port: int) -> str:
    host = socket.gethostname().split(".")[0] or "shutterbox"
    return f"http://{host}.local" + ("" if port == 80 else f":{port}")
