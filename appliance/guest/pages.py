"""What the guest routes share (``app.py`` for guests, ``host.py`` for the host link): the
:class:`GuestPages` behind them (who is asking, the search, the photo files), the shape of a
match, and the small answers every route gives. Runs on the asyncio thread."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import Request
from fastapi.responses import Response

from appliance import credentials, metrics
from appliance.errors import NotFoundError
from appliance.guest.access import link_base, own_names
from appliance.guest.address import guest_address
from appliance.guest.files import ascii_name, cached_file, download_name
from appliance.guest.results import Hit, ResultBook
from appliance.guest.thumbs import THUMB_EDGE, make_face_thumbnail, make_thumbnail
from appliance.mdns import box_name
from appliance.proxy import ProxyError, make_proxy
from appliance.store.pairs import shown_for

if TYPE_CHECKING:
    from appliance.guest.access import GuestAccess
    from appliance.services import Services
    from appliance.store.records import Event, Photo

logger = logging.getLogger(__name__)

CODE_CHARS = set(credentials.ALPHABET)


def page_number(text: str) -> int:
    """A page number typed in a link: anything but a number is page 1 (never FastAPI's 422 JSON),
    and a huge one is the last possible page, never an overflow."""
    digits = text.strip()
    if digits.isascii() and digits.isdecimal():
        return min(max(1, int(digits)), 1_000_000) if len(digits) <= 7 else 1_000_000
    return 1


def page_count(total: int, per_page: int) -> int:
    """Pages of ``per_page`` items that ``total`` fill; an empty list is one (empty) page."""
    return max(1, -(-total // per_page))


@dataclass(frozen=True, slots=True)
class Match:
    photo: Photo
    score: float
    source: str  # "cloud", "local" or "live" (found after the search, on an open results page)
    face_id: int | None = None  # the guest's face in it, which its thumbnail centres on


@dataclass(frozen=True, slots=True)
class Found:
    """A search's answer: the photos the guest may see, best first by photo (newest first)."""

    hits: list[Hit]
    photos: dict[int, Photo]
    mode: str  # "cloud" or "local"
    offline: bool  # the cloud is configured but did not answer
    faces_in_selfie: int
    embedding: np.ndarray | None  # the selfie's (in memory only, for live results)

    def matches(self) -> list[Match]:
        return [Match(self.photos[h.photo_id], h.score, h.source, h.face_id) for h in self.hits]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


def not_found() -> Response:
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

        guest = services.settings.guest
        self.results = ResultBook(
            keep_s=guest.link_hours * 3600,
            live_s=guest.live_hours * 3600,
            threshold=services.settings.faces.match_threshold,
            per_event=guest.live_watchers_per_event,
            total=guest.live_watchers,
        )
        services.faces.listeners.append(self.results.new_faces)

    @property
    def access(self) -> GuestAccess:
        return self.services.guest

    # --- who is asking

    async def event_for(self, request: Request, code: str) -> Event | None:
        """The event behind a code, or None (and a failure counted) for an unknown or malformed
        one. A client over its failure allowance gets None for every code."""
        client = client_address(request)
        if self.access.failures.exhausted(client):
            return None
        code = code.lower()  # codes are printed in capitals on some cards: one event either way
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
        return base or guest_address(
            self.services.settings, self.services.ports.web or self.services.settings.web.port
        )

    # --- search

    async def search(self, event: Event, selfie: bytes) -> Found | str:
        """Local index always; Rekognition too when the uplink is up. Never raises for the
        uplink: a cloud failure just means the answer is the box's own. A str: why the selfie
        could not be searched ("no_face", ...)."""
        faces = self.services.faces
        local = await faces.search(event.code, selfie)
        if local.error:
            metrics.GUEST_SEARCHES.labels(local.error).inc()
            return local.error
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
        face_of = local.faces  # a pair's JPEG has its own faces when it was indexed
        scores = await self.one_per_shutter(event, scores)
        photos = await self.services.store.guest_photos(event, scores)
        mode = "cloud" if cloud is not None else "local"
        offline = sync.enabled and cloud is None
        metrics.GUEST_SEARCHES.labels(mode).inc()
        hits = [Hit(p.id, *scores[p.id], face_of.get(p.id)) for p in photos]
        return Found(hits, {p.id: p for p in photos}, mode, offline, local.faces_in_selfie, local.embedding)

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
        face = f"{root}/f{match.face_id}.jpg" if match.face_id and self.proxy_of(match.photo) else None
        return {
            "photo_id": match.photo.id,
            "score": match.score,
            "source": match.source,
            "taken_at": match.photo.capture_time or match.photo.received_at,
            "thumbnail_url": f"{root}/thumb.jpg",
            "face_url": face,  # the thumbnail centred on the guest's face, when the box knows it
            "view_url": f"{root}/view.jpg",
            "download_url": f"{root}/download",
        }

    # --- files

    async def photo(self, event: Event, token: str) -> Photo | None:
        photo_id = self.access.photo_id(event.code, token)
        if photo_id is None:
            return None
        found = await self.services.store.guest_photos(event, [photo_id])  # hidden: gone at once
        return found[0] if found else None

    async def download(self, request: Request, photo: Photo) -> Response:
        """The photo as a file to keep: the original while it is on the box, else the proxy."""
        original = Path(photo.stored_path)
        path = original if await asyncio.to_thread(original.exists) else self.proxy_of(photo)
        if path is None:
            return not_found()
        name = download_name(photo, path)
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return cached_file(
            request,
            path,
            f"d-{photo.sha256[:32]}",
            media,
            **{"Content-Disposition": f'attachment; filename="{ascii_name(name)}"'},
        )

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

    async def face_thumbnail(self, photo: Photo, face_id: int) -> Path | None:
        """A square thumbnail centred on one face of the photo (cut from its proxy, where the face
        index found the face); the whole-frame thumbnail when the face is not this photo's."""
        proxy = self.proxy_of(photo)
        box = await self.services.faces.index_db.face_box(photo.id, face_id) if proxy else None
        if proxy is None or box is None:
            return await self.thumbnail(photo)
        dest = self.services.layout.thumbs / photo.event / f"{photo.sha256}-f{face_id}.jpg"
        if dest.exists():
            return dest
        try:
            await asyncio.to_thread(make_face_thumbnail, proxy, dest, box)
        except (ProxyError, OSError) as exc:
            logger.info("no face thumbnail for photo %d: %s", photo.id, exc)
            return await self.thumbnail(photo)
        return dest

    async def thumbnail(self, photo: Photo, edge: int = THUMB_EDGE) -> Path | None:
        name = f"{photo.sha256}.jpg" if edge == THUMB_EDGE else f"{photo.sha256}-{edge}.jpg"
        dest = self.services.layout.thumbs / photo.event / name
        if dest.exists():
            return dest
        stored = Path(photo.stored_path) if photo.searchable and photo.evicted_at is None else None
        source = self.proxy_of(photo) or stored
        if source is None:
            return None
        try:
            await asyncio.to_thread(make_thumbnail, source, dest, edge)
        except (ProxyError, OSError) as exc:
            logger.info("no thumbnail for photo %d: %s", photo.id, exc)
            return None
        return dest
