"""The admin API's cloud-sync routes: dead letters, pause and resume, an event's Rekognition
quota and the usage ledger. Runs on the asyncio thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi import Path as FastPath

from appliance.control.bodies import MAX_SQL_INT, QuotaIn

if TYPE_CHECKING:
    from appliance.services import Services
    from appliance.sync import SyncService


def sync_router(services: Services) -> APIRouter:
    router = APIRouter()

    def sync() -> SyncService:
        return services.sync

    @router.get("/api/deadletters")
    async def dead_letters() -> list[dict[str, Any]]:
        return [d.to_json() for d in await sync().queue.dead_letters()]

    @router.post("/api/deadletters/{job_id}/retry")
    async def retry_dead_letter(job_id: int = FastPath(ge=1, le=MAX_SQL_INT)) -> dict[str, Any]:
        await sync().queue.revive(job_id)
        return {"job_id": job_id, "state": "pending"}

    @router.post("/api/deadletters/{job_id}/discard")
    async def discard_dead_letter(job_id: int = FastPath(ge=1, le=MAX_SQL_INT)) -> dict[str, Any]:
        await sync().queue.discard(job_id)
        return {"job_id": job_id, "state": "discarded"}

    @router.post("/api/sync/pause")
    async def pause_sync() -> dict[str, Any]:
        """Jobs in flight finish; no new one starts until resumed (kept across restarts)."""
        await sync().set_paused(True)
        return {"paused": True}

    @router.post("/api/sync/resume")
    async def resume_sync() -> dict[str, Any]:
        await sync().set_paused(False)
        return {"paused": False}

    @router.put("/api/events/{code}/quota")
    async def set_quota(code: str, body: QuotaIn) -> dict[str, Any]:
        released = await sync().queue.set_quota(code, body.index_quota)
        return {"event": code, "index_quota": body.index_quota, "released_jobs": released}

    @router.get("/api/ledger")
    async def ledger(event: str | None = None) -> list[dict[str, Any]]:
        return await sync().queue.ledger(event)

    return router
