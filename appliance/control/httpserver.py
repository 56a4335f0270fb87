"""uvicorn as an async context manager on the box's own event loop (no signal capture: the box
owns the signals). Runs on the asyncio thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn

from appliance.control.guard import ConnectionGate, gated_listener, guarded_protocol

logger = logging.getLogger(__name__)

KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this (uvicorn's default too)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """One listener. ``gate`` caps its connections (the guest listener's, which the LAN reaches);
    every listener has deadlines for a request's headers and body; the control socket (``uds``)
    admits only the box's own user and root."""

    def __init__(
        self,
        app: Any,
        *,
        host: str | None = None,
        port: int | None = None,
        uds: Path | None = None,
        gate: ConnectionGate | None = None,
        header_timeout: float = 10.0,
        body_timeout: float = 120.0,
    ) -> None:
        protocol = guarded_protocol(
            gate, header_timeout=header_timeout, body_timeout=body_timeout, owner_only=uds is not None
        )
        config = uvicorn.Config(
            app,
            host=host or "127.0.0.1",
            port=port or 0,
            uds=str(uds) if uds else None,
            http=protocol,
            timeout_keep_alive=KEEP_ALIVE_S,
            log_level="warning",
            lifespan="off",
            access_log=False,
            server_header=False,
        )
        self._uds = uds
        self._server = _Server(config)
        self._address = (host or "127.0.0.1", port or 0)
        self._gate = gate
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int | None:
        for server in self._server.servers:
            for sock in server.sockets:
                name = sock.getsockname()
                if isinstance(name, tuple):
                    return int(name[1])
        return None

    async def __aenter__(self) -> Self:
        if self._uds is not None:
            self._uds.unlink(missing_ok=True)
        # a gated listener's socket is ours: its accept() applies the gate
        sockets: list[socket.socket] | None = (
            [gated_listener(*self._address, self._gate)] if self._gate is not None else None
        )
        self._task = asyncio.create_task(self._server.serve(sockets=sockets))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.02)
        if self._uds is not None:
            self._uds.chmod(0o600)
        return self

    def begin_stop(self) -> None:
        """Start closing now (uvicorn notices within its 0.1 s tick); ``__aexit__`` waits for it.
        The box tells all its servers at once, rather than one after the other."""
        self._server.should_exit = True

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.begin_stop()
        if self._task is not None:
            await self._task
        if self._uds is not None:
            self._uds.unlink(missing_ok=True)
