"""FtpService: builds and runs the FTP listeners, each on its own thread with its own IOLoop.

Entered on the asyncio thread (``async with FtpService(...)``); listener threads are started on
enter and stopped and joined on exit. Shutdown stops each acceptor loop first, then closes every
session from the acceptor's own thread (pyftpdlib's IOLoop is not thread-safe); an upload cut
by shutdown is kept for resume and never acknowledged.

Out of file handles (a flood of sockets, EMFILE/ENFILE) or kernel memory, the listener never
closes: it stops polling its socket for a short, growing pause (50 ms doubling to 1 s) and tries
again, with one log line when the shortage starts and one when it ends.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer, ThreadedFTPServer

from appliance.ftp.authorizer import KeyAuthorizer
from appliance.ftp.defender import Defender
from appliance.ftp.handlers import BoxHandler, CameraFS, ImplicitTLSHandler
from appliance.ftp.sessions import PreLogin, Sessions
from appliance.ftp.tls import make_context
from appliance.health import Health

if TYPE_CHECKING:
    from pathlib import Path

    from appliance.bridge import Bridge
    from appliance.config import FtpSettings
    from appliance.ingest.landing import Lander
    from appliance.store import Store

logger = logging.getLogger(__name__)

RECEIVE_BUFFER = 1 << 20
# accept() errors that say "not now" (out of file handles or kernel memory, or a connection reset
# before it was taken): pause accepting and retry, never close the listener
_ACCEPT_SHORTAGE = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED))
# One poll of the listener's loop: a stop is noticed within it (0.1 s would stop the box ~0.4 s
# sooner, for 5x the idle wake-ups; not measured under the hardening tests since, so not taken).
POLL_SECONDS = 0.5
ACCEPT_PAUSE_MIN = 0.05
ACCEPT_PAUSE_MAX = 1.0
_SHORTAGE_LOG_INTERVAL = 30.0


class _Server(ThreadedFTPServer):  # type: ignore[misc]
    """ThreadedFTPServer with per-instance exit flag and lock (pyftpdlib shares them per class,
    so stopping one listener would stop the other), an accept that backs off instead of dying,
    and no session thread for a connection refused at the door."""

    join_timeout = 10

    def __init__(self, address: tuple[str, int], handler: type[BoxHandler], ioloop: Any) -> None:
        self._exit = threading.Event()
        self._lock = threading.Lock()
        self._pause = 0.0  # > 0: in a shortage episode, the current pause
        self._paused_since = 0.0
        self._episode_logged = False  # the current shortage episode's start was logged
        self._shortage_logged_at = float("-inf")
        self._unlogged_episodes = 0
        self._resume_call: Any = None
        self._session_failures_logged_at = float("-inf")
        super().__init__(address, handler, ioloop=ioloop, backlog=64)

    # --- accept, with back-off (on the acceptor's thread)

    def handle_accept(self) -> None:
        try:
            sock, addr = self.socket.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._back_off(exc)
            return
        if self._pause:
            if self._episode_logged:
                logger.warning(
                    "FTP listener on port %d accepts again after %.1f s short of file handles",
                    self.address[1],
                    time.monotonic() - self._paused_since,
                )
            self._pause = 0.0
        self.handle_accepted(sock, addr)

    def _back_off(self, exc: OSError) -> None:
        if not self._pause:
            # A shortage episode. Out of handles, one accept often succeeds (a dropped session
            # freed a handle) and the next fails: such episodes follow each other every ~70 ms,
            # so only the first in _SHORTAGE_LOG_INTERVAL is logged (start and end), the rest counted.
            now = self._paused_since = time.monotonic()
            self._episode_logged = now - self._shortage_logged_at > _SHORTAGE_LOG_INTERVAL
            if not self._episode_logged:
                self._unlogged_episodes += 1
            else:
                self._shortage_logged_at = now
                known = exc.errno in _ACCEPT_SHORTAGE
                earlier = self._unlogged_episodes
                self._unlogged_episodes = 0
                logger.warning(
                    "FTP listener on port %d cannot accept (%s%s); pausing, retrying up to every %.0f s%s",
                    self.address[1],
                    errno.errorcode.get(exc.errno or 0, exc.errno),
                    ", out of file handles or memory" if known else f": {exc.strerror}",
                    ACCEPT_PAUSE_MAX,
                    f" ({earlier} more short pauses since the last such warning)" if earlier else "",
                )
        self._pause = min(max(self._pause * 2, ACCEPT_PAUSE_MIN), ACCEPT_PAUSE_MAX)
        if self._fileno is not None and self._fileno in self.ioloop.socket_map:
            self.ioloop.unregister(self._fileno)
        self._resume_call = self.ioloop.call_later(self._pause, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._resume_call = None
        if not self._closed and self._fileno is not None and self._fileno not in self.ioloop.socket_map:
            self.add_channel()

    def handle_accepted(self, sock: socket.socket, addr: Any) -> None:
        """pyftpdlib's, except that a connection closed at the door (banned, over a cap) gets
        no thread, and a thread that cannot start closes its connection."""
        handler = FTPServer.handle_accepted(self, sock, addr)
        if handler is None or handler._closed:
            return
        self.ioloop.unregister(handler._fileno)
        thread = threading.Thread(target=self._loop, args=(handler,), name=repr(addr), daemon=True)
        try:
            thread.start()
        except RuntimeError:  # can't start new thread
            self._session_failed(handler, "no thread for it")
            return
        with self._lock:
            self._active_tasks.append(thread)

    def _loop(self, handler: Any) -> None:
        """The session thread. Its own IOLoop needs a file handle (epoll): when there is none,
        close the connection instead of leaving it open and unserved."""
        try:
            super()._loop(handler)
        except OSError as exc:
            self._session_failed(handler, str(exc))

    def _session_failed(self, handler: Any, why: str) -> None:
        now = time.monotonic()
        if now - self._session_failures_logged_at > _SHORTAGE_LOG_INTERVAL:
            self._session_failures_logged_at = now
            logger.warning(
                "FTP connection from %s dropped: %s (more such are not logged for 30 s)",
                handler.remote_ip,
                why,
            )
        try:
            handler.close()
        except Exception:  # noqa: BLE001 - its loop never ran; make sure the socket goes
            handler.socket.close()

    def close_all(self) -> None:
        if self._resume_call is not None:
            self._resume_call.cancel()
        super().close_all()
        if not self._closed:  # unregistered while pausing: IOLoop.close did not see it
            self.close()


@dataclass
class _Listener:
    name: str
    server: _Server
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    health: Health | None = None

    @property
    def port(self) -> int:
        return int(self.server.address[1])

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.server.serve_forever(timeout=POLL_SECONDS, blocking=False, handle_exit=False)
                if not self.server.ioloop.socket_map:  # accepting paused (see _Server._back_off)
                    self.stop.wait(0.02)
                if self.health is not None:
                    self.health.beat(f"ftp-{self.name}")  # this listener's I/O loop turns
        except Exception:
            logger.exception("FTP listener %s crashed", self.name)
        finally:
            self.server.close_all()


class FtpService:
    def __init__(
        self,
        settings: FtpSettings,
        *,
        store: Store,
        bridge: Bridge,
        lander: Lander,
        jails: Path,
        cert_file: Path,
        key_file: Path,
        health: Health | None = None,
    ) -> None:
        self.settings = settings
        self.health = health
        self.sessions = Sessions()
        self.stats: dict[str, int] = {}
        self.defender = Defender(
            threshold=settings.ban_threshold,
            window=settings.ban_window,
            ban_time=settings.ban_time,
            ban_time_max=settings.ban_time_max,
        )
        self.prelogin = PreLogin(
            total=settings.max_prelogin_connections, per_ip=settings.max_prelogin_connections_per_ip
        )
        self.authorizer = KeyAuthorizer(store, bridge, jails)
        self._lander = lander
        self._context = make_context(cert_file, key_file)
        self._listeners: list[_Listener] = []
        self.draining = threading.Event()

    def _handler_class(self, base: type[BoxHandler]) -> type[BoxHandler]:
        s = self.settings
        attrs: dict[str, Any] = {
            "authorizer": self.authorizer,
            "abstracted_fs": CameraFS,
            "lander": self._lander,
            "defender": self.defender,
            "sessions": self.sessions,
            "prelogin": self.prelogin,
            "login_timeout": s.login_timeout,
            "stats": self.stats,
            "draining": self.draining,
            "max_sessions_per_key": s.max_sessions_per_key,
            "ssl_context": self._context,
            "tls_control_required": s.tls_required,
            "tls_data_required": s.tls_required,
            "passive_ports": s.passive_range,
            "masquerade_address": s.masquerade_address,
            "permit_foreign_addresses": s.permit_foreign_addresses,
            "timeout": s.idle_timeout,
        }
        handler: Any = type(f"Configured{base.__name__}", (base,), attrs)
        # Reads of up to 1 MiB: a 2 MB frame takes a few passes through the session's loop, not 32.
        dtp = {"timeout": s.data_timeout, "ac_in_buffer_size": RECEIVE_BUFFER}
        handler.dtp_handler = type("ConfiguredDTP", (handler.dtp_handler,), dtp)
        return handler  # type: ignore[no-any-return]

    def _listen(self, name: str, port: int, base: type[BoxHandler]) -> _Listener:
        server = _Server((self.settings.host, port), self._handler_class(base), IOLoop())
        server.max_cons = self.settings.max_connections
        server.max_cons_per_ip = self.settings.max_connections_per_ip
        return _Listener(name, server, health=self.health)

    @property
    def ports(self) -> dict[str, int]:
        return {listener.name: listener.port for listener in self._listeners}

    async def __aenter__(self) -> Self:
        s = self.settings
        self._listeners.append(self._listen("ftp", s.port, BoxHandler))
        if s.implicit_tls_port is not None:
            self._listeners.append(self._listen("ftps_implicit", s.implicit_tls_port, ImplicitTLSHandler))
        for listener in self._listeners:
            listener.thread = threading.Thread(target=listener.run, name=f"ftp-{listener.name}", daemon=True)
            listener.thread.start()
            logger.info("FTP listener %s on %s:%d", listener.name, s.host, listener.port)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for listener in self._listeners:
            listener.stop.set()
            if self.health is not None:
                self.health.forget(f"ftp-{listener.name}")
        for listener in self._listeners:
            if listener.thread is not None:
                await asyncio.to_thread(listener.thread.join, 30)
        self._listeners.clear()

    async def drain(self, seconds: float) -> int:
        """Refuse new logins and transfers, and wait up to ``seconds`` for uploads in flight to
        finish (and be acknowledged); returns how many were still running when time ran out."""
        self.draining.set()
        busy = self.sessions.transferring()
        for _ in range(int(seconds * 10)):  # polled: the transfers run on session threads
            if not busy:
                break
            await asyncio.sleep(0.1)
            busy = self.sessions.transferring()
        if busy:
            logger.warning(
                "%d uploads still running after %.0f s; they are cut and kept for resume", busy, seconds
            )
        return busy

    def revoke(self, username: str) -> int:
        """Forget cached logins of the key and cut its live sessions."""
        self.authorizer.forget(username)
        return self.sessions.cut(username)

    def status(self) -> dict[str, Any]:
        return {
            "ports": self.ports,
            "sessions": self.sessions.snapshot(),
            "banned_ips": {ip: round(left) for ip, left in self.defender.banned_ips().items()},
            "counters": dict(self.stats),
        }


def local_address() -> str:
    """Best guess of the address cameras should use (the interface of the default route)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1; nothing is sent for UDP connect
        return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()
