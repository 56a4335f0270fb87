"""What each HTTP listener does before the app sees a request: connection caps, deadlines, and
who may use the control socket. Runs on the asyncio thread (uvicorn's protocol callbacks).

- ``ConnectionGate``: a global and a per-address cap on open connections, applied by the
  listening socket itself (``GatedSocket.accept``). One over the cap is answered ``503`` and
  closed at once, so a flood of idle sockets from the LAN can never use up the box's file
  handles (the FTP listener and the database need them).
- Deadlines: a client has ``header_timeout`` seconds to send a request's headers (from the
  connection, or from the end of the previous response) and ``body_timeout`` seconds for the
  body once the headers arrived; then the connection is closed. uvicorn itself stops timing a
  connection as soon as it sent one byte, which let half-sent requests (slowloris) stay open.
- The control socket admits only the box's own user and root, checked with the peer's
  credentials (``SO_PEERCRED``) on every connection, beside the socket's 0600 mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections import Counter
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 5\r\nConnection: close\r\nContent-Length: 46\r\n\r\n"
    b"The box is busy; please try again in a moment."
)


class ConnectionGate:
    """Counts open connections, in total and per address (loop thread only)."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self._open: Counter[str] = Counter()
        self.refused = 0

    @property
    def open(self) -> int:
        return sum(self._open.values())

    def admit(self, address: str) -> bool:
        if self.open >= self.total or self._open[address] >= self.per_address:
            self.refused += 1
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]


class GatedSocket(socket.socket):
    """A listening socket that applies its gate in ``accept()``: a connection over the cap is
    answered 503 and closed right there, before asyncio makes a transport of it, so a flood never
    holds more handles than the cap (asyncio accepts up to 100 connections per turn of the loop
    and would hand each to a task first: the handles piled up before any gate could close them)."""

    gate: ConnectionGate

    def accept(self) -> tuple[socket.socket, Any]:
        while True:
            conn, address = super().accept()  # BlockingIOError when none is waiting: asyncio stops
            host = str(address[0]) if isinstance(address, tuple) else "local"
            if self.gate.admit(host):
                return conn, address
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(BUSY)
            conn.close()


def gated_listener(host: str, port: int, gate: ConnectionGate, backlog: int = 2048) -> GatedSocket:
    """A bound, listening ``GatedSocket`` for ``host``:``port`` (IPv4 or IPv6)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only for sockets that say they are TCP, and a
    # keep-alive answer (headers, then body) would wait 40 ms for the client's delayed ACK.
    sock = GatedSocket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.gate = gate
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a unix socket (Linux ``SO_PEERCRED``)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def guarded_protocol(
    gate: ConnectionGate | None,
    *,
    header_timeout: float,
    body_timeout: float,
    owner_only: bool = False,
) -> type[H11Protocol]:
    """uvicorn's h11 protocol with this listener's gate, deadlines and (for the control socket)
    the peer check; passed to ``uvicorn.Config(http=...)``."""
    allowed = {0, os.getuid()}

    class Guarded(H11Protocol):
        _phase: str | None = None
        _timer: asyncio.TimerHandle | None = None
        _address: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if owner_only:
                sock = transport.get_extra_info("socket")
                uid = peer_uid(sock) if sock is not None else None
                if uid not in allowed:
                    logger.warning("control socket: refused a client of uid %s (not the box's user)", uid)
                    transport.close()
                    return
            if gate is not None:  # admitted by the GatedSocket's accept(); released when lost
                peer = transport.get_extra_info("peername")
                self._address = str(peer[0]) if isinstance(peer, tuple) else "local"
            self._follow()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._address is not None and gate is not None:
                gate.release(self._address)
                self._address = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._follow()

        def _follow(self) -> None:
            """Arm the deadline of the phase the connection is in: waiting for headers, for the
            body, or (no deadline) for our own answer."""
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                phase = "body" if cycle.more_body else "answer"
            else:
                phase = "headers"
            if phase == self._phase:
                return
            self._phase = phase
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            seconds = {"headers": header_timeout, "body": body_timeout}.get(phase)
            if seconds is not None:
                self._timer = self.loop.call_later(seconds, self._expired, phase)

        def _expired(self, phase: str) -> None:
            self._timer = None
            if not self.transport.is_closing():
                logger.debug("closing a connection from %s: no request %s in time", self.client, phase)
                self.transport.close()

    return Guarded
