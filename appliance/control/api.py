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

import socket
import time
from typing import TYPE_CHECKING, Any

import psutil
from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from appliance import __version__
from appliance.control.bodies import worded_errors
from appliance.control.box_api import box_router
from appliance.control.events_api import events_router
from appliance.control.keys_api import keys_router
from appliance.control.sync_api import sync_router
from appliance.errors import NotFoundError, StoreError
from appliance.store.store import FunctionError
from cloudsync.errors import CloudError

if TYPE_CHECKING:
    from appliance.control.operations import Operations
    from appliance.control.status import StatusReport
    from appliance.services import Services


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

    app.include_router(box_router(services, report, operations, web_app))
    app.include_router(events_router(services, operations))
    app.include_router(keys_router(services, operations))
    app.include_router(sync_router(services))
    return app
