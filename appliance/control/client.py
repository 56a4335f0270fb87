"""The CLI's side of the control socket: a small httpx client over ``DATA/run/control.sock``.
Runs in the CLI process (no event loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from appliance.errors import NotRunningError, ShutterboxError
from appliance.layout import Layout


class ApiError(ShutterboxError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class ControlClient:
    def __init__(self, data_dir: Path, timeout: float = 30.0) -> None:
        self.socket = Layout(data_dir.resolve()).control_socket
        self.data_dir = data_dir
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://shutterbox", timeout=timeout
        )

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if not self.socket.exists():
            raise NotRunningError(self._not_running())
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise NotRunningError(self._not_running()) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if not isinstance(detail, str):
                detail = "; ".join(
                    f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
                )
            raise ApiError(response.status_code, detail)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    def _not_running(self) -> str:
        return (
            f"no shutterbox is running with data folder {self.data_dir} "
            f"(start it with: shutterbox up --data {self.data_dir})"
        )
