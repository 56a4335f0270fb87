"""The console's side of the control socket: an async httpx client over ``DATA/run/control.sock``.

Runs on the console's asyncio thread (Textual's event loop). Every call either returns the
decoded JSON (or text), or raises ``BoxUnreachable`` / ``ApiError``: the screens never see an
httpx exception, so a box that restarts under the console is a state to show, not a crash. The
console never opens the database: this client is its only way to the box.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from appliance.layout import Layout
from tui.errors import ApiError, BoxUnreachable

TIMEOUT = 5.0


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text or response.reason_phrase
    if isinstance(detail, list):  # FastAPI validation errors: [{loc, msg, ...}]
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
            for d in detail
            if isinstance(d, dict)
        )
    return str(detail)


class BoxClient:
    """One connection pool to the box's admin API; reconnects on the next call after a restart."""

    def __init__(self, data_dir: Path, timeout: float = TIMEOUT) -> None:
        self.data_dir = data_dir
        self.socket = Layout(data_dir.resolve()).control_socket
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.socket)),
            base_url="http://shutterbox",
            timeout=timeout,
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
        if not self.socket.exists():
            raise BoxUnreachable(f"no control socket at {self.socket}")
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise BoxUnreachable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        if response.headers.get("content-type", "").startswith("application/json"):
            try:
                return response.json()
            except ValueError as exc:
                raise ApiError(response.status_code, "the box sent invalid JSON") from exc
        return response.text

    # --- typed calls, one per endpoint

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

    async def guest(self, code: str) -> dict[str, Any]:
        return _dict(await self.request("GET", f"/api/events/{code}/guest"))

    async def keys(self, event: str | None = None) -> list[dict[str, Any]]:
        params = {"event": event} if event else None
        return _list(await self.request("GET", "/api/keys", params=params))

    async def create_key(self, event: str, camera: str, function: str = "main") -> dict[str, Any]:
        body = {"event": event, "camera": camera, "function": function}
        return _dict(await self.request("POST", "/api/keys", json=body))

    async def revoke_key(self, username: str) -> dict[str, Any]:
        return _dict(await self.request("DELETE", f"/api/keys/{username}"))

    async def cameras(self) -> list[dict[str, Any]]:
        return _list(await self.request("GET", "/api/cameras"))

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
