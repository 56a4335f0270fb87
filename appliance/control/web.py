"""The venue-LAN web listener: a health check and the guest pages (``appliance.guest``).
Runs on the asyncio thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance import __version__
from appliance.guest.app import add_guest_routes

if TYPE_CHECKING:
    from appliance.box import Box


def make_web_app(box: Box) -> FastAPI:
    app = FastAPI(title="shutterbox", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        counts = await box.store.counts()
        return {"ok": True, "version": __version__, "photos": counts["photos_total"]}

    @app.exception_handler(StarletteHTTPException)
    async def bare_error(request: Request, exc: StarletteHTTPException) -> Response:
        # An unknown path says no more than an unknown event code or a forged link does.
        return Response(
            "Not found" if exc.status_code == 404 else "Bad request",
            status_code=exc.status_code if exc.status_code in (404, 405) else 400,
            media_type="text/plain",
        )

    add_guest_routes(app, box)
    return app
