"""Admin API on the unix control socket (the one way in for the CLI). Requests are served on
the asyncio thread; FTP session changes (revoke) are handed to FtpService, which is thread-safe.

Reachable only through ``DATA/run/control.sock`` (mode 0600, inside a 0700 folder): whoever can
open it is the box's operator.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from appliance import __version__, credentials
from appliance.errors import NotFoundError, StoreError
from appliance.guest.access import new_host_key
from appliance.guest.app import default_public_url
from cloudsync.errors import CloudError

if TYPE_CHECKING:
    from appliance.box import Box
    from appliance.sync import SyncService


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Body):
    name: str = Field(min_length=1, max_length=120)
    functions: list[str] = Field(default_factory=lambda: ["main"], max_length=50)
    originals: Literal["all", "jpeg", "none"] = "all"


class OriginalsIn(_Body):
    originals: Literal["all", "jpeg", "none"]


class KeyIn(_Body):
    event: str = Field(pattern=f"^[{credentials.ALPHABET}]{{{credentials.EVENT_CODE_LENGTH}}}$")
    camera: str = Field(min_length=1, max_length=64)
    function: str = Field("main", min_length=1, max_length=64)


class PinIn(_Body):
    pin: str | None = Field(min_length=4, max_length=32, pattern=r"^[A-Za-z0-9]+$")


class QuotaIn(_Body):
    index_quota: int | None = Field(ge=0)


def make_admin_app(box: Box) -> FastAPI:
    app = FastAPI(title="shutterbox admin", version=__version__)

    @app.exception_handler(StoreError)
    async def store_refused(request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404 if isinstance(exc, NotFoundError) else 409)

    @app.exception_handler(CloudError)
    async def cloud_failed(request: Request, exc: CloudError) -> JSONResponse:
        # only a purge reaches the cloud from here, and it deletes nothing locally until the cloud is done
        detail = f"cloud request failed, nothing local was changed; retry: {exc}"
        return JSONResponse({"detail": detail}, status_code=503)

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        return await box.status()

    @app.get("/api/events")
    async def list_events() -> list[dict[str, Any]]:
        return [e.to_json() for e in await box.store.list_events()]

    @app.post("/api/events", status_code=201)
    async def create_event(body: EventIn) -> dict[str, Any]:
        event = await box.store.create_event(
            body.name, functions=body.functions, originals_policy=body.originals
        )
        return event.to_json()

    @app.delete("/api/events/{code}")
    async def purge_event(code: str) -> dict[str, Any]:
        return await box.purge_event(code)

    @app.put("/api/events/{code}/originals")
    async def set_originals(code: str, body: OriginalsIn) -> dict[str, Any]:
        return (await box.store.set_originals_policy(code, body.originals)).to_json()

    @app.get("/api/keys")
    async def list_keys(event: str | None = None) -> list[dict[str, Any]]:
        return [k.to_json() for k in await box.store.list_keys(event)]

    @app.post("/api/keys", status_code=201)
    async def create_key(body: KeyIn) -> dict[str, Any]:
        key, secret = await box.create_key(body.event, body.function, body.camera)
        return {**key.to_json(), "password": secret, "connect": box.connect_info()}

    @app.delete("/api/keys/{username}")
    async def revoke_key(username: str) -> dict[str, Any]:
        key = await box.store.revoke_key(username)
        cut = box.ftp.revoke(username) if box.ftp else 0
        return {**key.to_json(), "sessions_cut": cut}

    @app.get("/api/photos")
    async def list_photos(
        event: str | None = None, limit: int = Query(100_000, ge=1, le=1_000_000)
    ) -> list[dict[str, Any]]:
        if event is not None:
            await box.store.get_event(event)
        return [p.to_json() for p in await box.store.list_photos(event, limit=limit)]

    @app.get("/api/rejections")
    async def list_rejections(limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        return [r.to_json() for r in await box.store.list_rejections(limit)]

    def sync() -> SyncService:
        if box.sync is None:
            raise HTTPException(503, "the box is starting")
        return box.sync

    @app.get("/api/deadletters")
    async def dead_letters() -> list[dict[str, Any]]:
        return [d.to_json() for d in await sync().queue.dead_letters()]

    @app.post("/api/deadletters/{job_id}/retry")
    async def retry_dead_letter(job_id: int) -> dict[str, Any]:
        await sync().queue.revive(job_id)
        return {"job_id": job_id, "state": "pending"}

    @app.post("/api/deadletters/{job_id}/discard")
    async def discard_dead_letter(job_id: int) -> dict[str, Any]:
        await sync().queue.discard(job_id)
        return {"job_id": job_id, "state": "discarded"}

    @app.put("/api/events/{code}/quota")
    async def set_quota(code: str, body: QuotaIn) -> dict[str, Any]:
        released = await sync().queue.set_quota(code, body.index_quota)
        return {"event": code, "index_quota": body.index_quota, "released_jobs": released}

    @app.get("/api/ledger")
    async def ledger(event: str | None = None) -> list[dict[str, Any]]:
        return await sync().queue.ledger(event)

    def guest_url(code: str) -> str:
        base = box.settings.guest.public_url or default_public_url(box.web_port or box.settings.web.port)
        return f"{base.rstrip('/')}/e/{code}"

    @app.get("/api/events/{code}/guest")
    async def guest_page(code: str) -> dict[str, Any]:
        event = await box.store.get_event(code)
        return {"event": code, "url": guest_url(code), "pin": event.pin_hash is not None}

    @app.put("/api/events/{code}/pin")
    async def set_pin(code: str, body: PinIn) -> dict[str, Any]:
        digest = None if body.pin is None else await asyncio.to_thread(credentials.hash_secret, body.pin)
        await box.store.set_guest_secret(code, "pin_hash", digest)
        return {"event": code, "pin": digest is not None}

    @app.post("/api/events/{code}/host-link", status_code=201)
    async def new_host_link(code: str) -> dict[str, Any]:
        """A new host link (any earlier one stops working). The key is shown once."""
        key, digest = new_host_key()
        await box.store.set_guest_secret(code, "host_key_hash", digest)
        base = guest_url(code).rsplit("/e/", 1)[0]
        return {"event": code, "url": f"{base}/host/{key}"}

    @app.delete("/api/events/{code}/host-link")
    async def revoke_host_link(code: str) -> dict[str, Any]:
        await box.store.set_guest_secret(code, "host_key_hash", None)
        return {"event": code, "host_link": False}

    @app.get("/api/tls/ca.crt", response_class=PlainTextResponse)
    async def ca_certificate() -> str:
        return box.ca_certificate_pem()

    return app
