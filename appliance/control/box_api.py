"""The admin API's routes about the box as a whole: status, the event-day checklist, doctor,
cameras, photos, rejections, logs, metrics, the CA certificate and the guest listener's schema.
Runs on the asyncio thread."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Query, Response
from fastapi.responses import PlainTextResponse

from appliance import doctor as doctor_checks
from appliance import metrics
from appliance.control.checklist import checklist

if TYPE_CHECKING:
    from appliance.control.operations import Operations
    from appliance.control.status import StatusReport
    from appliance.services import Services


def box_router(
    services: Services, report: StatusReport, operations: Operations, web_app: FastAPI
) -> APIRouter:
    router = APIRouter()

    @router.get("/api/checklist")
    async def event_day() -> list[dict[str, Any]]:
        """The event-day checklist (``shutterbox checklist``): each line's ``part`` (before,
        during, after), ``text``, ``state`` (done, not yet, off, by hand) and ``detail``."""
        return [line.to_json() for line in await checklist(services, report)]

    @router.get("/api/status")
    async def status() -> dict[str, Any]:
        return await report.status()

    @router.get("/api/doctor")
    async def doctor() -> dict[str, Any]:
        """What commonly breaks at a venue, checked in the running box (``shutterbox doctor``):
        ``checks`` lists each one's ``level`` (OK, WARN, FAIL, SKIP) and ``text`` (what was
        found, and what to do); ``ok`` is false when one FAILs. Takes a few seconds."""
        findings = await doctor_checks.on_box(services, await report.cameras())
        return doctor_checks.report(findings, box_running=True)

    @router.get("/api/guest/openapi.json")
    async def guest_schema() -> dict[str, Any]:
        """The guest listener's OpenAPI schema (that listener does not list its own routes)."""
        return web_app.openapi()

    @router.get("/api/cameras")
    async def cameras() -> list[dict[str, Any]]:
        return await report.cameras()

    @router.get("/api/photos")
    async def list_photos(
        event: str | None = None, limit: int = Query(100_000, ge=1, le=1_000_000)
    ) -> list[dict[str, Any]]:
        if event is not None:
            await services.store.get_event(event)
        return [p.to_json() for p in await services.store.list_photos(event, limit=limit)]

    @router.get("/api/rejections")
    async def list_rejections(limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        return [r.to_json() for r in await services.store.list_rejections(limit)]

    @router.get("/api/logs")
    async def logs(after: int = Query(0, ge=0), limit: int = Query(200, ge=1, le=2000)) -> dict[str, Any]:
        """The box's recent log lines (newest last), from ``after`` on. ``pid`` changes when the box
        restarts (and the sequence starts again from 1)."""
        return {**services.logs.since(after, limit), "pid": os.getpid()}

    @router.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> Response:
        """Prometheus text exposition (every metric in docs/metrics.md)."""
        body = metrics.render(await report.status())
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @router.get("/api/tls/ca.crt", response_class=PlainTextResponse)
    async def ca_certificate() -> str:
        return operations.ca_certificate_pem()

    return router
