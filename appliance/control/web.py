"""The venue-LAN web listener. For now it serves a health check; the guest pages arrive with
the face-search work. Runs on the asyncio thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from appliance import __version__

if TYPE_CHECKING:
    from appliance.box import Box


def make_web_app(box: Box) -> FastAPI:
    app = FastAPI(title="shutterbox", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        counts = await box.store.counts()
        return {"ok": True, "version": __version__, "photos": counts["photos_total"]}

    return app
