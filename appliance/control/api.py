"""The admin API: the one way in for the CLI, the console and the cloud backend. Requests are
served on the asyncio thread; FTP session changes (revoke) are handed to FtpService, which is
thread-safe. OpenAPI at ``/openapi.json`` (and ``/docs``); reference in docs/admin-api.md.

Served twice by the box:
- on ``DATA/run/control.sock`` (mode 0600, inside a 0700 folder; the peer's credentials are
  checked too: only the box's own user and root): the box's operator (CLI, console);
- over HTTP on ``[admin]`` host:port (``lan=True``): every client, loopback included, only with
  ``Authorization: Bearer <token>`` (``shutterbox admin-token rotate``; only its SHA-256 is
  stored, compared in constant time) and a ``Host`` of the box's own. No CORS headers are sent,
  so no web page can read an answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import socket
import time
from typing import TYPE_CHECKING, Any, Literal

import psutil
import segno
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as FastPath
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from appliance import __version__, credentials, metrics
from appliance import doctor as doctor_checks
from appliance.control.checklist import checklist
from appliance.errors import NotFoundError, StoreError
from appliance.guest.access import new_host_key
from appliance.guest.address import guest_address
from appliance.guest.card import MEDIA_TYPES, CardFacts, CardFormat, render_card
from appliance.store.records import MODERATIONS, Moderation, OriginalsPolicy, slug
from appliance.store.store import FunctionError, function_names
from appliance.validation import is_secret, problem
from cloudsync.errors import CloudError

if TYPE_CHECKING:
    from appliance.control.operations import Operations
    from appliance.control.status import StatusReport
    from appliance.services import Services
    from appliance.sync import SyncService


ACCENT_PATTERN = r"^#[0-9A-Fa-f]{6}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Body):
    """An event as the operator creates it (``POST /api/events``) or the cloud backend pushes it
    (``PUT /api/events/{code}``)."""

    name: str = Field(min_length=1, max_length=120)
    functions: list[str] = Field(default_factory=lambda: ["main"], max_length=50)
    originals: OriginalsPolicy = "all"


class OriginalsIn(_Body):
    originals: OriginalsPolicy


class EventEditIn(_Body):
    """What the operator changes of an event (``PATCH /api/events/{code}``): only the fields sent;
    ``null`` clears a date, an accent or a cover."""

    name: str | None = Field(None, min_length=1, max_length=120)
    moderation: Moderation | None = None
    face_search: bool | None = None
    date: str | None = Field(None, description="the event's day, yyyy-mm-dd")
    accent: str | None = Field(None, pattern=ACCENT_PATTERN, description="the guest pages' colour, #rrggbb")
    cover_photo_id: int | None = Field(None, ge=1, le=2**63 - 1, description="a photo of the event")
    add_functions: list[str] | None = Field(
        None,
        max_length=50,
        description="functions to declare (one already there changes nothing); camera keys name one",
    )

    @field_validator("date")
    @classmethod
    def _a_day(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            if len(value) == 10:
                return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
        raise ValueError(f"{value!r} is not a day written yyyy-mm-dd (like 2026-12-24)")

    @model_validator(mode="after")
    def _no_null_switch(self) -> EventEditIn:
        for name, words in (
            ("name", "a name"),
            ("moderation", "one of " + ", ".join(MODERATIONS)),
            ("face_search", "true or false"),
            ("add_functions", "a list of names"),
        ):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null: send {words}, or leave it out")
        return self


ModerateAction = Literal["approve", "reject", "hide", "unhide"]


class ModerateIn(_Body):
    """The host's decision on photos of one event, as the operator makes it."""

    action: ModerateAction
    ids: list[int] = Field(min_length=1, max_length=10_000)

    @field_validator("ids")
    @classmethod
    def _photo_ids(cls, value: list[int]) -> list[int]:
        if any(not 1 <= i <= 2**63 - 1 for i in value):
            raise ValueError("photo ids are whole numbers from 1 up")
        return value


class KeyIn(_Body):
    """A camera key the operator makes (``POST /api/keys``): for a function the event declared;
    none given, the event's only function (422 in words for a typo, an empty name, or none given
    to an event of several)."""

    event: str = Field(pattern=f"^[{credentials.ALPHABET}]{{{credentials.EVENT_CODE_LENGTH}}}$")
    camera: str = Field(min_length=1, max_length=64)
    function: str | None = Field(None, max_length=64)


MAX_SQL_INT = 2**63 - 1  # SQLite's INTEGER; a larger number is a 422, not an OverflowError
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{2,63}$"
EVENT_CODE_PATTERN = f"^[{credentials.ALPHABET}]{{{credentials.EVENT_CODE_LENGTH}}}$"


# The request patterns in words, for 422 answers a person reads (``{value}``: what was sent).
PATTERN_WORDS = {
    ACCENT_PATTERN: "{value} is not a colour written #rrggbb (like #aa3355)",
    EVENT_CODE_PATTERN: f"{{value}} is not an event code: an event code is {credentials.EVENT_CODE_LENGTH}"
    f" characters from {credentials.ALPHABET}",
    USERNAME_PATTERN: "3 to 64 of a-z 0-9 . _ -, starting with a letter or digit",
    r"^[A-Za-z0-9]+$": "letters and digits only",
    r"^[\x21-\x7e]+$": "printable ASCII characters without spaces",
}


def worded_errors(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation errors (``loc``, ``type``, ``msg``, ``input``, ...) with each ``msg``
    in words: what was wrong and what is allowed. A secret's or a PIN's value is not sent back."""
    worded = []
    for error in errors:
        name = str(error["loc"][-1]) if error.get("loc") else ""
        secret = is_secret(name, None)
        if tuple(error.get("loc", ())) == ("body",) and error["type"] == "missing":
            msg = "a JSON body is required"
        else:
            msg = problem(error, patterns=PATTERN_WORDS, secret=secret)
        item = {**error, "msg": msg}
        if secret:
            item.pop("input", None)
        worded.append(item)
    return worded


class KeyPush(_Body):
    """A camera key pushed by the cloud backend: its secret, or a scrypt hash the box verifies."""

    event: str = Field(pattern=EVENT_CODE_PATTERN)
    camera: str = Field(min_length=1, max_length=64)
    function: str = Field("main", min_length=1, max_length=64)
    secret: str | None = Field(None, min_length=8, max_length=128, pattern=r"^[\x21-\x7e]+$")
    secret_hash: str | None = Field(None, max_length=400)

    @model_validator(mode="after")
    def _one_secret(self) -> KeyPush:
        if (self.secret is None) == (self.secret_hash is None):
            raise ValueError("give exactly one of secret and secret_hash")
        if self.secret_hash is not None and not credentials.valid_hash(self.secret_hash):
            raise ValueError("secret_hash must be scrypt$<log2 n 10-20>$<r>$<p>$<salt b64>$<key b64>")
        return self


class PinIn(_Body):
    pin: str | None = Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9]+$")


class QuotaIn(_Body):
    index_quota: int | None = Field(ge=0, le=MAX_SQL_INT, strict=True)


class _TcpGuard(BaseHTTPMiddleware):
    """Over TCP, loopback included, every request needs the bearer token (another account on the
    box is not the operator) and a ``Host`` that is one of the box's own names or addresses (a
    page a browser on the box loads cannot reach the API by DNS rebinding)."""

    def __init__(self, app: Any, services: Services) -> None:
        super().__init__(app)
        self.services = services
        self._names: frozenset[str] = frozenset()
        self._names_at = 0.0

    def _own_names(self) -> frozenset[str]:
        """The box's names and addresses, refreshed every 30 s (DHCP may move the box)."""
        now = time.monotonic()
        if now - self._names_at > 30 or not self._names:
            hostname = socket.gethostname().lower()
            names = {"localhost", hostname, f"{hostname}.local", self.services.settings.admin.host.lower()}
            names |= {name.lower() for name in self.services.settings.tls.hostnames}
            for addresses in psutil.net_if_addrs().values():
                names |= {a.address.split("%", 1)[0].lower() for a in addresses if a.family in _INET}
            self._names, self._names_at = frozenset(names), now
        return self._names

    def _host_ok(self, header: str) -> bool:
        host = header.strip().lower()
        if host.startswith("["):  # [v6]:port
            host = host[1:].partition("]")[0]
        elif host.count(":") == 1:
            host = host.partition(":")[0]
        return bool(host) and host in self._own_names()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if not self._host_ok(request.headers.get("host", "")):
            return JSONResponse(
                {"detail": "unknown Host: use the box's own name or address"}, status_code=421
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if not self.services.token.configured:
            return JSONResponse(
                {"detail": "no admin token is set on this box (shutterbox admin-token rotate)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if scheme.lower() != "bearer" or not self.services.token.ok(token.strip()):
            return JSONResponse(
                {"detail": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await call_next(request)


_INET = (socket.AF_INET, socket.AF_INET6)


def make_admin_app(
    services: Services, report: StatusReport, operations: Operations, web_app: FastAPI, *, lan: bool = False
) -> FastAPI:
    """The admin API over ``services``; ``web_app`` is the guest listener's (its schema is served
    here, since that listener does not list its own routes)."""
    app = FastAPI(
        title="shutterbox admin",
        version=__version__,
        description="The box's admin API (see docs/admin-api.md). Over HTTP from the LAN, send "
        "`Authorization: Bearer <token>`.",
    )
    if lan:
        app.add_middleware(_TcpGuard, services=services)

    @app.exception_handler(StoreError)
    async def store_refused(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404 if isinstance(exc, NotFoundError) else 409)

    @app.exception_handler(FunctionError)
    async def function_refused(request: Request, exc: FunctionError) -> JSONResponse:
        """A function the event has not declared (a typo), or an empty name: the request is wrong."""
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """A 422 in FastAPI's shape (``{"detail": [{loc, type, msg, ...}]}``), ``msg`` in words."""
        return JSONResponse({"detail": jsonable_encoder(worded_errors(exc.errors()))}, status_code=422)

    @app.exception_handler(CloudError)
    async def cloud_failed(request: Request, exc: CloudError) -> JSONResponse:
        # only a purge reaches the cloud from here, and it deletes nothing locally until the cloud is done
        detail = f"cloud request failed, nothing local was changed; retry: {exc}"
        return JSONResponse({"detail": detail}, status_code=503)

    @app.get("/api/checklist")
    async def event_day() -> list[dict[str, Any]]:
        """The event-day checklist (``shutterbox checklist``): each line's ``part`` (before,
        during, after), ``text``, ``state`` (done, not yet, off, by hand) and ``detail``."""
        return [line.to_json() for line in await checklist(services, report)]

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        return await report.status()

    @app.get("/api/doctor")
    async def doctor() -> dict[str, Any]:
        """What commonly breaks at a venue, checked in the running box (``shutterbox doctor``):
        ``checks`` lists each one's ``level`` (OK, WARN, FAIL, SKIP) and ``text`` (what was
        found, and what to do); ``ok`` is false when one FAILs. Takes a few seconds."""
        findings = await doctor_checks.on_box(services, await report.cameras())
        return doctor_checks.report(findings, box_running=True)

    @app.get("/api/guest/openapi.json")
    async def guest_schema() -> dict[str, Any]:
        """The guest listener's OpenAPI schema (that listener does not list its own routes)."""
        return web_app.openapi()

    @app.get("/api/events")
    async def list_events() -> list[dict[str, Any]]:
        """Every event; ``awaiting_approval`` counts the photos its host has still to decide on
        (null for an event whose guests see every photo at once)."""
        store = services.store
        return [
            {
                **e.to_json(),
                "awaiting_approval": await store.awaiting_approval(e.code)
                if e.moderation == "approve"
                else None,
            }
            for e in await store.list_events()
        ]

    @app.post("/api/events", status_code=201)
    async def create_event(body: EventIn) -> dict[str, Any]:
        event = await services.store.create_event(
            body.name, functions=function_names(body.functions), originals_policy=body.originals
        )
        return event.to_json()

    @app.delete("/api/events/{code}")
    async def purge_event(code: str) -> dict[str, Any]:
        return await operations.purge_event(code)

    @app.patch("/api/events/{code}")
    async def edit_event(code: str, body: EventEditIn) -> dict[str, Any]:
        """Change an event's name, moderation (``open``: guests see every photo at once;
        ``approve``: only those its host approved), face search, date, accent or cover photo; or
        declare more functions (``add_functions``)."""
        store = services.store
        added = function_names(body.add_functions or ())  # refused before anything changes
        given = body.model_dump(include=body.model_fields_set - {"name", "add_functions"})
        event = await store.set_event_settings(code, **given)  # refuses a bad value, changing nothing
        if body.name is not None:
            event = await store.rename_event(code, body.name)
        for function in added:
            event = await store.add_function(code, function)
        return event.to_json()

    @app.post("/api/events/{code}/photos/moderate")
    async def moderate_photos(code: str, body: ModerateIn) -> dict[str, Any]:
        """Approve, reject, hide or unhide photos of the event: ``changed`` counts those whose
        state changed, ``not_found`` lists the ids that are not photos of this event."""
        ids = list(dict.fromkeys(body.ids))
        found = {p.id for p in await services.store.event_photos(code, ids)}
        changed = await services.store.moderate(code, ids, body.action)
        return {
            "event": code,
            "action": body.action,
            "changed": changed,
            "unchanged": len(found) - changed,
            "not_found": [i for i in ids if i not in found],
        }

    @app.put("/api/events/{code}/originals")
    async def set_originals(code: str, body: OriginalsIn) -> dict[str, Any]:
        return (await services.store.set_originals_policy(code, body.originals)).to_json()

    @app.put("/api/events/{code}")
    async def push_event(code: str, body: EventIn, response: Response) -> dict[str, Any]:
        """Create the event under the backend's code, or bring its name and functions up to date;
        pushing the same thing twice changes nothing (200 with ``changed: false``)."""
        # machine to machine: the backend is the source of truth and declares functions as it
        # pushes them, unchecked (people declare theirs through POST and PATCH, checked)
        if not _matches(EVENT_CODE_PATTERN, code):
            raise HTTPException(
                422, f"event code must be {credentials.EVENT_CODE_LENGTH} of {credentials.ALPHABET}"
            )
        event = await services.store.find_event(code)
        if event is None:
            event = await services.store.create_event(
                body.name, code=code, functions=body.functions, originals_policy=body.originals
            )
            response.status_code = 201
            return {**event.to_json(), "changed": True}
        changed = False
        if event.name != body.name:
            event = await services.store.rename_event(code, body.name)
            changed = True
        for function in body.functions:
            if slug(function) not in event.functions:  # stored as slugs
                event = await services.store.add_function(code, function)
                changed = True
        if event.originals_policy != body.originals:
            event = await services.store.set_originals_policy(code, body.originals)
            changed = True
        return {**event.to_json(), "changed": changed}

    @app.put("/api/keys/{username}")
    async def push_key(username: str, body: KeyPush, response: Response) -> dict[str, Any]:
        """Create or confirm a camera key the backend made. The same push again changes nothing;
        a new secret replaces the old one and cuts the key's live sessions; a revoked key stays
        revoked (409) and a key never moves to another event or camera (409)."""
        if not _matches(USERNAME_PATTERN, username):
            raise HTTPException(
                422, "username must be 3-64 of a-z 0-9 . _ - (starting with a letter or digit)"
            )
        digest = body.secret_hash
        key = await services.store.find_key(username)
        if key is None:
            if digest is None:
                assert body.secret is not None
                digest = await asyncio.to_thread(credentials.hash_secret, body.secret)
            key = await services.store.create_key(
                event=body.event,
                function=body.function,
                camera=body.camera,
                secret_hash=digest,
                username=username,
                # machine to machine: the backend is the source of truth and may name a function
                # the box has not heard of yet; it is declared here. People's keys (POST
                # /api/keys) must name a declared one.
                declare_function=True,
            )
            response.status_code = 201
            return {**key.to_json(), "changed": True}
        if key.revoked_at is not None:
            raise HTTPException(409, f"upload key {username} is revoked; push a new username")
        if (key.event, key.function, key.camera) != (body.event, slug(body.function), body.camera):
            raise HTTPException(
                409,
                f"upload key {username} belongs to {key.event}/{key.function}/{key.camera};"
                " push a new username",
            )
        if digest is not None:
            same = digest == key.secret_hash
        else:
            assert body.secret is not None
            same = await asyncio.to_thread(credentials.verify_secret, body.secret, key.secret_hash)
            if not same:
                digest = await asyncio.to_thread(credentials.hash_secret, body.secret)
        if same:
            return {**key.to_json(), "changed": False}
        assert digest is not None
        key = await services.store.set_key_secret(username, digest)
        cut = services.ftp.revoke(username)  # sessions logged in with the old secret
        return {**key.to_json(), "changed": True, "sessions_cut": cut}

    @app.get("/api/cameras")
    async def cameras() -> list[dict[str, Any]]:
        return await report.cameras()

    @app.get("/api/keys")
    async def list_keys(event: str | None = None) -> list[dict[str, Any]]:
        return [k.to_json() for k in await services.store.list_keys(event)]

    @app.post("/api/keys", status_code=201)
    async def create_key(body: KeyIn) -> dict[str, Any]:
        key, secret = await operations.create_key(body.event, body.function, body.camera)  # checked
        return {**key.to_json(), "password": secret, "connect": operations.connect_info()}

    @app.delete("/api/keys/{username}")
    async def revoke_key(username: str) -> dict[str, Any]:
        """Revoke and cut live sessions; revoking a revoked key again changes nothing."""
        key = await services.store.revoke_key(username)
        cut = services.ftp.revoke(username)
        return {**key.to_json(), "sessions_cut": cut}

    @app.get("/api/photos")
    async def list_photos(
        event: str | None = None, limit: int = Query(100_000, ge=1, le=1_000_000)
    ) -> list[dict[str, Any]]:
        if event is not None:
            await services.store.get_event(event)
        return [p.to_json() for p in await services.store.list_photos(event, limit=limit)]

    @app.get("/api/rejections")
    async def list_rejections(limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        return [r.to_json() for r in await services.store.list_rejections(limit)]

    def sync() -> SyncService:
        return services.sync

    @app.get("/api/deadletters")
    async def dead_letters() -> list[dict[str, Any]]:
        return [d.to_json() for d in await sync().queue.dead_letters()]

    @app.post("/api/deadletters/{job_id}/retry")
    async def retry_dead_letter(job_id: int = FastPath(ge=1, le=MAX_SQL_INT)) -> dict[str, Any]:
        await sync().queue.revive(job_id)
        return {"job_id": job_id, "state": "pending"}

    @app.post("/api/deadletters/{job_id}/discard")
    async def discard_dead_letter(job_id: int = FastPath(ge=1, le=MAX_SQL_INT)) -> dict[str, Any]:
        await sync().queue.discard(job_id)
        return {"job_id": job_id, "state": "discarded"}

    @app.post("/api/sync/pause")
    async def pause_sync() -> dict[str, Any]:
        """Jobs in flight finish; no new one starts until resumed (kept across restarts)."""
        await sync().set_paused(True)
        return {"paused": True}

    @app.post("/api/sync/resume")
    async def resume_sync() -> dict[str, Any]:
        await sync().set_paused(False)
        return {"paused": False}

    @app.get("/api/logs")
    async def logs(after: int = Query(0, ge=0), limit: int = Query(200, ge=1, le=2000)) -> dict[str, Any]:
        """The box's recent log lines (newest last), from ``after`` on. ``pid`` changes when the box
        restarts (and the sequence starts again from 1)."""
        return {**services.logs.since(after, limit), "pid": os.getpid()}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Prometheus text exposition (every metric in docs/metrics.md)."""
        body = metrics.render(await report.status())
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.put("/api/events/{code}/quota")
    async def set_quota(code: str, body: QuotaIn) -> dict[str, Any]:
        released = await sync().queue.set_quota(code, body.index_quota)
        return {"event": code, "index_quota": body.index_quota, "released_jobs": released}

    @app.get("/api/ledger")
    async def ledger(event: str | None = None) -> list[dict[str, Any]]:
        return await sync().queue.ledger(event)

    def guest_url(code: str) -> str:
        base = guest_address(services.settings, services.ports.web or services.settings.web.port)
        return f"{base}/e/{code}"

    @app.get("/api/events/{code}/guest")
    async def guest_page(code: str) -> dict[str, Any]:
        event = await services.store.get_event(code)
        return {"event": code, "url": guest_url(code), "pin": event.pin_hash is not None}

    @app.put("/api/events/{code}/pin")
    async def set_pin(code: str, body: PinIn) -> dict[str, Any]:
        digest = None if body.pin is None else await asyncio.to_thread(credentials.hash_secret, body.pin)
        await services.store.set_guest_secret(code, "pin_hash", digest)
        return {"event": code, "pin": digest is not None}

    @app.post("/api/events/{code}/host-link", status_code=201)
    async def new_host_link(code: str) -> dict[str, Any]:
        """A new host link (any earlier one stops working). The key is shown once."""
        key, digest = new_host_key()
        await services.store.set_guest_secret(code, "host_key_hash", digest)
        base = guest_url(code).rsplit("/e/", 1)[0]
        return {"event": code, "url": f"{base}/host/{key}"}

    @app.delete("/api/events/{code}/host-link")
    async def revoke_host_link(code: str) -> dict[str, Any]:
        await services.store.set_guest_secret(code, "host_key_hash", None)
        return {"event": code, "host_link": False}

    @app.get(
        "/api/events/{code}/qr.svg",
        response_class=Response,
        responses={200: {"content": {"image/svg+xml": {}}, "description": "the QR code"}},
    )
    async def guest_qr(code: str) -> Response:
        """The guest page's QR code, to print or show."""
        await services.store.get_event(code)
        svg = segno.make(guest_url(code), error="m").svg_inline(scale=8, border=2)
        return Response(svg, media_type="image/svg+xml")

    @app.get(
        "/api/events/{code}/card",
        response_class=Response,
        responses={
            200: {
                "content": {media: {} for media in MEDIA_TYPES.values()},
                "description": "the table card, A6 portrait",
            }
        },
    )
    async def table_card(
        code: str,
        format: CardFormat = "pdf",
        pin: str | None = Query(None, min_length=4, max_length=32, pattern=r"^[A-Za-z0-9]+$"),
    ) -> Response:
        """The event's table card (PDF, SVG or PNG): its name and day, the QR code of its guest
        page and the address in words, ``guest.wifi_name``, the PIN when ``pin`` is given (it must
        be the event's: the box keeps only its hash) and three steps."""
        event = await services.store.get_event(code)
        if pin is not None:
            if event.pin_hash is None:
                raise HTTPException(
                    422, f"event {code} has no PIN to print; set one with: shutterbox event pin {code} PIN"
                )
            if not await asyncio.to_thread(credentials.verify_secret, pin, event.pin_hash):
                raise HTTPException(422, f"that is not the PIN of event {code}")
        facts = CardFacts(
            name=event.name,
            url=guest_url(code),
            date=event.date,
            wifi_name=services.settings.guest.wifi_name,
            pin=pin,
            pin_required=event.pin_hash is not None,
            accent=event.accent,
        )
        body = await asyncio.to_thread(render_card, facts, format)
        return Response(
            body,
            media_type=MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="card-{code}.{format}"'},
        )

    @app.get("/api/tls/ca.crt", response_class=PlainTextResponse)
    async def ca_certificate() -> str:
        return operations.ca_certificate_pem()

    return app


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None
