"""The one client of the control socket (``DATA/run/control.sock``): ``ControlClient`` for the CLI
(blocking, no event loop) and ``AsyncControlClient`` for the console (awaited on Textual's
asyncio loop), twins over one base as httpx's ``Client`` and ``AsyncClient`` are.

The base owns everything but the transport: where the socket is, the errors, and what an answer
means. A call either returns the decoded JSON (the text, for a PEM or an SVG; the bytes, for a
PDF or a PNG), or raises:

::

    ShutterboxError
    ├── NotRunningError   no box answers on the socket: missing, refused, reset, timed out
    └── ApiError          the box answered 4xx/5xx; ``status`` and the box's ``detail``

so neither the CLI nor the console ever sees an httpx exception: a box that restarts under the
console is a state to show, not a crash. Runs on whichever thread calls it (the CLI's main
thread; the console's asyncio thread). The console imports nothing else of ``appliance``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import httpx

from appliance.errors import NotRunningError, ShutterboxError
from appliance.layout import Layout

__all__ = ["ApiError", "AsyncControlClient", "ControlClient", "NotRunningError"]

BASE_URL = "http://shutterbox"
BINARY_TYPES = ("application/pdf", "image/png")  # answers returned as bytes (a table card)


class ApiError(ShutterboxError):
    """The box refused a request; ``detail`` is its reason, fit to show the operator."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _detail(response: httpx.Response) -> str:
    """The box's reason for a 4xx/5xx: FastAPI's ``detail``, its validation errors joined."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text or response.reason_phrase
    if isinstance(detail, list):  # FastAPI validation errors: [{loc, msg, ...}]
        return "; ".join(_field_error(d) for d in detail if isinstance(d, dict))
    return str(detail)


def _field_error(error: dict[str, Any]) -> str:
    """``camera is required``, ``event: 'X' is not an event code: ...``; the box words ``msg``."""
    field = ".".join(str(p) for p in error.get("loc", [])[1:])
    msg = str(error.get("msg"))
    if not field:
        return msg
    return f"{field} {msg}" if msg.startswith(("is ", "must ")) else f"{field}: {msg}"


class _BaseControlClient:
    """What both twins share: the socket, the error mapping and the decoding of answers."""

    TIMEOUT: ClassVar[float]

    def __init__(self, data_dir: Path, timeout: float | None = None) -> None:
        self.data_dir = data_dir
        self.socket = Layout(data_dir.resolve()).control_socket
        self.timeout = self.TIMEOUT if timeout is None else timeout

    def _not_running(self) -> NotRunningError:
        return NotRunningError(
            f"no shutterbox is running with data folder {self.data_dir} "
            f"(start it with: shutterbox up --data {self.data_dir})"
        )

    @contextmanager
    def _transport(self) -> Iterator[None]:
        """Around each request: a missing socket or any transport error is a box not running."""
        if not self.socket.exists():
            raise self._not_running()
        try:
            yield
        except httpx.TransportError as exc:
            raise self._not_running() from exc

    def _result(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        if response.headers.get("content-type", "").startswith("application/json"):
            try:
                return response.json()
            except ValueError as exc:
                raise ApiError(response.status_code, "the box sent invalid JSON") from exc
        if response.headers.get("content-type", "").startswith(BINARY_TYPES):
            return response.content
        return response.text


class ControlClient(_BaseControlClient):
    """Blocking twin, for the CLI (and scripts): ``with ControlClient(data) as box: box.request(...)``."""

    TIMEOUT = 30.0

    def __init__(self, data_dir: Path, timeout: float | None = None) -> None:
        super().__init__(data_dir, timeout)
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)), base_url=BASE_URL, timeout=self.timeout
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._transport():
            response = self._client.request(method, path, **kwargs)
        return self._result(response)


class AsyncControlClient(_BaseControlClient):
    """Async twin, for the console: one connection pool, which reconnects on the next call after
    the box restarts; plus one typed call per endpoint the console uses."""

    TIMEOUT = 5.0

    def __init__(self, data_dir: Path, timeout: float | None = None) -> None:
        super().__init__(data_dir, timeout)
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket)), base_url=BASE_URL, timeout=self.timeout
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._transport():
            response = await self._client.request(method, path, **kwargs)
        return self._result(response)

    # --- typed calls, one per endpoint the console uses

    async def status(self) -> dict[str, Any]:
        return _dict(await self.request("GET", "/api/status"))

    async def events(self) -> list[dict[str, Any]]:
        return _list(await self.request("GET", "/api/events"))

    async def create_event(
        self, name: str, functions: list[str] | None = None, originals: str = "all"
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "originals": originals}
        if functions:
            body["functions"] = functions
        return _dict(await self.request("POST", "/api/events", json=body))

    async def edit_event(self, code: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /api/events/{code}`` with only ``changes`` (``None`` clears a date, accent or
        cover); the event as it is now."""
        return _dict(await self.request("PATCH", f"/api/events/{code}", json=changes))

    async def guest(self, code: str) -> dict[str, Any]:
        return _dict(await self.request("GET", f"/api/events/{code}/guest"))

    async def card(self, code: str, fmt: str = "pdf") -> bytes:
        """The event's table card as a file's bytes (``fmt``: pdf, svg or png)."""
        card = await self.request("GET", f"/api/events/{code}/card", params={"format": fmt})
        return card if isinstance(card, bytes) else str(card).encode("utf-8")

    async def keys(self, event: str | None = None) -> list[dict[str, Any]]:
        params = {"event": event} if event else None
        return _list(await self.request("GET", "/api/keys", params=params))

    async def create_key(self, event: str, camera: str, function: str | None = None) -> dict[str, Any]:
        """None: the event's only function (the box refuses, in words, an event of several)."""
        body = {"event": event, "camera": camera} | ({"function": function} if function is not None else {})
        return _dict(await self.request("POST", "/api/keys", json=body))

    async def revoke_key(self, username: str) -> dict[str, Any]:
        return _dict(await self.request("DELETE", f"/api/keys/{username}"))

    async def cameras(self) -> list[dict[str, Any]]:
        return _list(await self.request("GET", "/api/cameras"))

    async def doctor(self) -> dict[str, Any]:
        return _dict(await self.request("GET", "/api/doctor"))

    async def checklist(self) -> list[dict[str, Any]]:
        return _list(await self.request("GET", "/api/checklist"))

    async def dead_letters(self) -> list[dict[str, Any]]:
        return _list(await self.request("GET", "/api/deadletters"))

    async def retry_dead_letter(self, job_id: int) -> dict[str, Any]:
        return _dict(await self.request("POST", f"/api/deadletters/{job_id}/retry"))

    async def discard_dead_letter(self, job_id: int) -> dict[str, Any]:
        return _dict(await self.request("POST", f"/api/deadletters/{job_id}/discard"))

    async def ca_certificate(self) -> str:
        return str(await self.request("GET", "/api/tls/ca.crt"))

    async def pause_sync(self) -> dict[str, Any]:
        return _dict(await self.request("POST", "/api/sync/pause"))

    async def resume_sync(self) -> dict[str, Any]:
        return _dict(await self.request("POST", "/api/sync/resume"))

    async def logs(self, after: int = 0, limit: int = 500) -> dict[str, Any]:
        return _dict(await self.request("GET", "/api/logs", params={"after": after, "limit": limit}))


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(200, f"expected a JSON object from the box, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ApiError(200, f"expected a JSON list from the box, got {type(value).__name__}")
    return [item for item in value if isinstance(item, dict)]
