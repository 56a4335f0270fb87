"""The venue-LAN web listener: a health check and the guest pages (``appliance.guest``).
Runs on the asyncio thread.

Everything it answers, a page, a photo or a bare 404, carries the browser protections of
:class:`GuestHeaders`: the guest Content-Security-Policy, no MIME sniffing, no referrer, no
framing, and ``Cache-Control: no-store`` unless the route chose its own (photos are private to the
phone for a day). A redirect never names a host: the listener does not trust the ``Host`` header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance import __version__
from appliance.guest import openapi as doc
from appliance.guest.app import add_guest_routes, content_security_policy

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from appliance.services import Services


class GuestHeaders:
    """ASGI middleware: the guest listener's security headers on every response, and any absolute
    ``Location`` (Starlette's trailing-slash redirect builds one from the ``Host`` header) cut to
    its path, so a forged Host is never reflected."""

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", policy.encode("ascii")),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _OURS]
                names = {k.lower() for k, _ in raw}
                raw = [(k, _relative(v) if k.lower() == b"location" else v) for k, v in raw]
                raw += self.headers
                if b"cache-control" not in names:
                    raw.append((b"cache-control", b"no-store"))
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_OURS = {b"content-security-policy", b"x-content-type-options", b"referrer-policy", b"x-frame-options"}


def _relative(location: bytes) -> bytes:
    """``http://any-host/e/abc?x`` -> ``/e/abc?x``; never ``//host`` (a scheme-relative URL)."""
    parts = urlsplit(location.decode("latin-1"))
    path = "/" + parts.path.lstrip("/")
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")


def make_web_app(services: Services) -> FastAPI:
    app = FastAPI(title="shutterbox", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz", responses=doc.HEALTH)
    async def healthz() -> dict[str, bool]:
        # The box's version and photo count are the admin API's to tell (GET /api/status), not
        # anyone's on the venue LAN: the guest listener only says it answers.
        return {"ok": True}

    @app.exception_handler(StarletteHTTPException)
    async def bare_error(request: Request, exc: StarletteHTTPException) -> Response:
        # An unknown path says no more than an unknown event code or a forged link does.
        return Response(
            "Not found" if exc.status_code == 404 else "Bad request",
            status_code=exc.status_code if exc.status_code in (404, 405) else 400,
            media_type="text/plain",
        )

    add_guest_routes(app, services)
    app.add_middleware(GuestHeaders, policy=content_security_policy())

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, with the headers GuestHeaders adds documented on every answer."""
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)  # builds and keeps app.openapi_schema
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    for response in operation.get("responses", {}).values():
                        response["headers"] = {**doc.HEADERS, **response.get("headers", {})}
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
