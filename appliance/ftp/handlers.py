"""pyftpdlib handler subclasses: where stock pyftpdlib is bent to cameras and to "226 means
durable". Everything here runs on the session's own thread.

- the data channel's close path lands the file (verify, fsync, hash, queue) *before* replying
  226; a truncated or corrupt upload gets 451 and is kept for resume + quarantined;
- passive ports come from the configured range only (425 when it is full, never outside it);
- failed logins feed the Defender; banned IPs get 421 at connect and at every command before
  login (one log line per address and half minute, however many connections are refused);
- connections that have not logged in share a small pool (``PreLogin``) and get
  ``login_timeout`` seconds from connect to log in, whatever they send meanwhile;
- sessions per key are capped, and a revoked key's live sessions are cut;
- MFMT never changes a file's time (see ``CameraFS``);
- camera-supplied names and commands reach the log with control characters escaped;
- an implicit-TLS variant speaks TLS from the first byte (port 990).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pyftpdlib.authorizers import AuthenticationFailed
from pyftpdlib.exceptions import _FileReadWriteError
from pyftpdlib.handlers import DTPHandler, TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.handlers.ftp.dispatchers import PassiveDTP

from appliance import metrics
from appliance.errors import RejectedUpload
from appliance.ftp.authorizer import RevokedKey, UnknownUser
from appliance.ftp.defender import Defender
from appliance.ftp.filesystem import JailFS
from appliance.ftp.tls import DataChannelTLS
from appliance.ingest.landing import Destination, StagingFile
from appliance.loghygiene import escape_controls

if TYPE_CHECKING:
    from appliance.ftp.authorizer import KeyAuthorizer
    from appliance.ftp.sessions import PreLogin, Sessions
    from appliance.ingest.landing import Lander

logger = logging.getLogger(__name__)
_ftpd_logger = logging.getLogger("pyftpdlib")  # its per-command lines keep their own logger


class _NoPassivePort(OSError):
    pass


class CameraFS(JailFS):
    """MFMT is answered (213 with the file's real time) but changes nothing: a landed frame shares
    its inode with the stored photo, and a kept partial's age is what the janitor removes it by,
    which a camera must not be able to make years old (swept at once) or years young (never)."""

    def utime(self, path: str, timeval: float) -> None:
        return None


class StrictPassiveDTP(PassiveDTP):  # type: ignore[misc]
    """pyftpdlib falls back to a random port outside the range when it is full; we refuse."""

    def bind(self, addr: tuple[str, int]) -> None:
        if addr[1] == 0 and self.cmd_channel.passive_ports is not None:
            self.close()
            raise _NoPassivePort(errno.EADDRINUSE, "passive port range exhausted")
        super().bind(addr)
        # With SO_REUSEADDR two sessions can both bind the same random port; only the second
        # listen() fails, which pyftpdlib does not expect and which kills that camera's session.
        # Listen here instead, and on a clash hand pyftpdlib a fresh socket and the EADDRINUSE
        # it knows how to handle (it then tries the next port of the range).
        try:
            self.socket.listen(self.backlog or self.cmd_channel.server.backlog)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            family = self.socket.family
            self.del_channel()
            self.socket.close()
            self.create_socket(family, socket.SOCK_STREAM)
            raise

    def handle_accepted(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        super().handle_accepted(sock, addr)
        channel = self.cmd_channel
        # A data connection reset before we could wrap it leaves pyftpdlib with a queued STOR
        # and no data channel: the camera would wait forever. Say so instead.
        if channel.connected and channel.data_channel is None and channel._in_dtp_queue is not None:
            upload = channel._in_dtp_queue[0]
            channel._in_dtp_queue = None
            if isinstance(upload, StagingFile):
                channel.lander.keep_partial(
                    upload, "data connection reset before any byte arrived", "interrupted"
                )
            channel.respond("426 Data connection lost; transfer aborted.")


class _LandingMixin:
    """Replaces 'close the socket, reply 226, then tell the app' with 'land, then reply'."""

    cmd_channel: BoxHandler
    file_obj: Any
    receive: bool
    transfer_finished: bool
    _closed: bool
    _resp: tuple[str, Any]

    def close(self) -> None:
        upload = self.file_obj
        if not self._closed and self.receive and isinstance(upload, StagingFile) and not upload.sealed:
            lander = self.cmd_channel.lander
            if self.transfer_finished and self._resp and self._resp[0].startswith("226"):
                try:
                    photo = lander.land(upload)
                except RejectedUpload as exc:
                    # the lander has logged the rejection in words: the 451 reply only at DEBUG
                    self._resp = (exc.reply, logger.debug)
                    self.transfer_finished = False
                    self.cmd_channel.server_stats("rejected")
                except Exception:
                    logger.exception("landing %s failed", escape_controls(upload.original_name))
                    self._resp = (
                        "451 Local error while storing the file; please send it again.",
                        logger.error,
                    )
                    self.transfer_finished = False
                    self._keep(upload, "internal error while storing", "error")
                else:
                    self._resp = (f"226 Transfer complete; stored as photo {photo.id}.", logger.debug)
                    self.cmd_channel.server_stats("received")
            else:
                reply = self._resp[0] if self._resp else "aborted (ABOR or connection lost)"
                self._drain(upload)
                self._keep(upload, f"transfer interrupted: {reply}", "interrupted")
        super().close()  # type: ignore[misc]

    def _drain(self, upload: StagingFile, limit: int = 64 << 20) -> None:
        """Keep the bytes that already arrived on a plain data socket (the control connection
        died first): the camera then resumes from there instead of from an earlier point."""
        sock = getattr(self, "socket", None)
        if not isinstance(sock, socket.socket) or self.cmd_channel._current_type is None:
            return
        taken = 0
        try:
            sock.setblocking(False)
            while taken < limit:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                upload.write(chunk)
                taken += len(chunk)
        except (OSError, RejectedUpload):
            pass

    def _keep(self, upload: StagingFile, reason: str, label: str) -> None:
        try:
            self.cmd_channel.lander.keep_partial(upload, reason, label)
        except Exception:
            logger.exception("could not keep the partial upload %s", escape_controls(upload.original_name))

    def enable_receiving(self, type: str, cmd: str) -> None:
        # Like vsftpd's default: never rewrite line endings of an upload, even in TYPE A.
        # A camera left in ASCII mode would otherwise deliver corrupt photos.
        super().enable_receiving("i", cmd)  # type: ignore[misc]

    def handle_error(self) -> None:
        exc = sys.exc_info()[1]
        cause = exc.__cause__ if isinstance(exc, _FileReadWriteError) else exc
        if isinstance(cause, RejectedUpload):
            if isinstance(self.file_obj, StagingFile):
                self._keep(self.file_obj, cause.reason, metrics.reject_reason(cause.reply))
            self._resp = (cause.reply, logger.debug)  # _keep logged the rejection
            self.close()
            return
        super().handle_error()  # type: ignore[misc]


class LandingDTP(_LandingMixin, DTPHandler):  # type: ignore[misc]
    pass


class TLSLandingDTP(_LandingMixin, TLS_DTPHandler):  # type: ignore[misc]
    """Under PROT P: a data connection that ends before its TLS handshake is done (a camera that
    connects in clear, a link that drops) is answered on the control connection when a transfer
    was waiting for it. pyftpdlib closes such a channel without a reply and the camera waits
    forever (its SSL-EOF path), or replies 522 even when nothing was waiting (its failure path),
    which a client takes as the answer to its next command."""

    _in_handshake = False
    socket: Any

    def secure_connection(self, ssl_context: Any) -> None:
        # pyftpdlib's own, with the connection that holds TLS 1.3 tickets back (see tls.py)
        self._ssl_requested = True
        raw: socket.socket = self.socket
        self.socket = DataChannelTLS(ssl_context, raw)
        self.socket.set_accept_state()
        self._ssl_accepting = True

    def handle_read_event(self) -> None:
        super().handle_read_event()
        # The end of the stream came in with the frame's last bytes: no further readiness will
        # announce it (a client that sent close_notify may wait for ours), so read it now.
        if isinstance(self.socket, DataChannelTLS) and self.socket.ended and not self._closed:
            super().handle_read_event()

    def _do_ssl_handshake(self) -> None:
        self._in_handshake = True
        try:
            super()._do_ssl_handshake()
        finally:
            self._in_handshake = False

    def handle_failed_ssl_handshake(self) -> None:
        self.close()

    def close(self) -> None:
        waiting = self.receive or self.cmd is not None
        if self._in_handshake and not self._closed and not self._resp and waiting:
            self._resp = (
                "522 TLS handshake on the data connection failed; transfer aborted.",
                logger.warning,
            )
        super().close()


NO_DATA_CONNECTION = "425 Open a data connection first (PASV or EPSV)."
DRAIN_REFUSED = frozenset(("USER", "PASS", "STOR", "APPE", "STOU", "RETR", "PASV", "EPSV", "PORT", "EPRT"))


class BoxHandler(TLS_FTPHandler):  # type: ignore[misc]
    """Configured per server by ``FtpService`` (pyftpdlib configures handlers by class attribute)."""

    dtp_handler = TLSLandingDTP
    passive_dtp = StrictPassiveDTP
    banner = "shutterbox ready."
    auth_failed_timeout = 1
    max_login_attempts = 5
    use_sendfile = False

    lander: ClassVar[Lander]
    defender: ClassVar[Defender]
    sessions: ClassVar[Sessions]
    prelogin: ClassVar[PreLogin]
    login_timeout: ClassVar[float]
    max_sessions_per_key: ClassVar[int]
    stats: ClassVar[dict[str, int]]
    authorizer: KeyAuthorizer
    _current_type: str
    _dtp_acceptor: Any
    _dtp_connector: Any
    _in_dtp_queue: Any
    _out_dtp_queue: Any
    _ssl_accepting: bool
    _login_timer: Any = None
    _connected_at = 0.0
    _admitted = False

    # --- the door: bans, the pre-login pool, the login deadline (on the acceptor's thread)

    def handle(self) -> None:
        if self._admit():
            super().handle()

    def _admit(self) -> bool:
        """Called once per connection on the acceptor's thread. A refused connection is closed
        here and now (``close``, not ``close_when_done``): no session thread is started for it."""
        self._connected_at = time.monotonic()
        if self._refuse_if_banned(at_connect=True):
            return False
        admitted, victim = self.prelogin.admit(self, self.remote_ip)
        if not admitted:
            self.server_stats("refused_prelogin")
            logger.debug("refused %s: too many connections from it that have not logged in", self.remote_ip)
            self._say("421 Too many connections from your address that have not logged in.")
            self.close()
            return False
        self._admitted = True
        if victim is not None:  # on its own session thread: shut its socket, its loop closes it
            self.server_stats("evicted_prelogin")
            logger.debug("closed a connection from %s that had not logged in, to make room", victim.remote_ip)
            victim.cut("421 Too many connections waiting to log in; closing the oldest.")
        return True

    def _say(self, reply: str) -> None:
        """A reply on a connection that may not speak TLS yet (implicit FTPS): said only in clear."""
        self.respond(reply)

    def _refuse_if_banned(self, *, at_connect: bool = False) -> bool:
        left = self.defender.banned_for(self.remote_ip)
        if left <= 0:
            return False
        unlogged = self.defender.refusal_to_log(self.remote_ip)
        if unlogged is not None:
            logger.warning(
                "refused a connection from banned %s (ban ends in %d s)%s",
                self.remote_ip,
                int(left) + 1,
                f"; {unlogged} more refused since the last such line" if unlogged else "",
            )
        self._say(f"421 Too many failed logins from your address; try again in {int(left) + 1} s.")
        if at_connect:
            self.close()
        else:
            self.close_when_done()
        return True

    def add_channel(self, map: Any = None, events: Any = None) -> None:
        super().add_channel(map, events)
        # Once on the session's own loop (the acceptor's loop handed it over), start the login
        # deadline there: the timer then fires on the thread that owns this connection.
        if self._login_timer is None and self.ioloop is not self.server.ioloop and not self.authenticated:
            left = self._connected_at + self.login_timeout - time.monotonic()
            self._login_timer = self.ioloop.call_later(
                max(left, 0.0), self._login_expired, _errback=self.handle_error
            )

    def _login_expired(self) -> None:
        if self._closed or self.authenticated:
            return
        self.server_stats("prelogin_timeout")
        logger.info("%s did not log in within %d s; closed", self.remote_ip, self.login_timeout)
        if getattr(self, "_ssl_accepting", False):
            self.close()  # no TLS yet: nothing can be said
            return
        self.respond("421 Login timed out.")
        if self._fileno in self.ioloop.socket_map:
            self.close_when_done()
        else:  # waiting out a failed login's delay: not polled right now
            self.close()

    def _leave_prelogin(self) -> None:
        if self._admitted:
            self._admitted = False
            self.prelogin.leave(self, self.remote_ip)
        if self._login_timer is not None and not self._login_timer.cancelled:
            self._login_timer.cancel()

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        # NUL, or a bare CR/LF inside the line (replies echo the command or its path: a line
        # break there would hand the client a reply line it wrote itself)
        if "\x00" in line or "\r" in line or "\n" in line:
            self.respond("501 Invalid character in command.")
            return
        if not self.authenticated and self._refuse_if_banned():
            return  # every connection of a banned address, also those opened before the ban
        if self.draining.is_set() and cmd in DRAIN_REFUSED:
            # shutting down: transfers already running finish; nothing new starts
            self.respond("421 The box is restarting; try again in a few seconds.")
            self.close_when_done()
            return
        super().pre_process_command(line, cmd, arg)

    def server_stats(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1
        if name.startswith("login_") or name == "banned":
            metrics.FTP_LOGINS.labels(name.removeprefix("login_")).inc()

    # --- log lines: the prefix holds the USER name as sent, messages hold paths as sent

    def log(self, msg: str, logfun: Any = None) -> None:
        (logfun or _ftpd_logger.info)("%s %s", self._log_prefix(), escape_controls(msg))

    def logline(self, msg: str, logfun: Any = None) -> None:
        if self._log_debug:
            (logfun or _ftpd_logger.debug)("%s %s", self._log_prefix(), escape_controls(msg))

    def logerror(self, msg: str) -> None:
        _ftpd_logger.error("%s %s", self._log_prefix(), escape_controls(msg))

    def _log_prefix(self) -> str:
        return f"{self.remote_ip}:{self.remote_port}-[{escape_controls(self.username or '')}]"

    # --- login

    def ftp_PASS(self, line: str) -> None:
        if self.authenticated:
            self.respond("503 User already authenticated.")
            return
        if not self.username:
            self.respond("503 Login with USER first.")
            return
        username = self.username
        if not self.sessions.claim(username, self, self.max_sessions_per_key):
            self.respond("421 Too many sessions for this upload key; close one and retry.")
            self.close_when_done()
            return
        try:
            self.authorizer.validate_authentication(username, line, self)
        except AuthenticationFailed as err:
            self.sessions.remove(username, self)
            self.server_stats("login_failed")
            if isinstance(err, RevokedKey):
                self.sessions.note_error(username, "login refused: the key is revoked")
            elif not isinstance(err, UnknownUser):
                self.sessions.note_error(username, "login failed: wrong password")
            score = (
                Defender.SCORE_UNKNOWN_USER if isinstance(err, UnknownUser) else Defender.SCORE_WRONG_PASSWORD
            )
            ban = self.defender.record_failure(self.remote_ip, score, username)
            if ban:
                self.server_stats("banned")
                logger.warning("banned %s for %d s after repeated failed logins", self.remote_ip, ban)
                self.respond(f"421 Too many failed logins; this address is banned for {int(ban)} s.")
                self.close_when_done()
                return
            if self._refuse_if_banned():  # another connection crossed the threshold meanwhile
                return
            self.handle_auth_failed(str(err), line)
            return
        self.server_stats("login_ok")
        self.defender.record_success(self.remote_ip, username)
        self.handle_auth_success(
            self.authorizer.get_home_dir(username), line, self.authorizer.get_msg_login(username)
        )

    def on_login(self, username: str) -> None:
        self._leave_prelogin()
        login = self.authorizer.login(username)
        self.destination = Destination(login.key.event, login.key.function, login.key.camera, username)
        logger.info(
            "%s (%s) logged in from %s%s",
            username,
            login.key.camera,
            self.remote_ip,
            " over TLS" if self._ssl_established else "",
        )

    def on_disconnect(self) -> None:
        if self.username:
            logger.info("%s session from %s ended", escape_controls(self.username), self.remote_ip)

    def ftp_QUIT(self, line: str) -> None:
        """A camera that quits frees its place under ``ftp.max_sessions_per_key`` before the 221:
        one that reconnects at once is not refused because the close that frees it comes after
        (CI saw a 421 so). With an upload still in flight the place is held until it ends.

        A data connection that is open but carries nothing (PORT or PASV, then QUIT) is closed
        first: pyftpdlib counted it as a transfer in progress, held the 221 back and kept the
        session until the data connection timed out (the fuzzer found it, FIXED_BUGS 8)."""
        channel = self.data_channel
        if (
            channel is not None
            and not channel.receive
            and channel.file_obj is None
            and not channel.producer_fifo
        ):
            channel.close()  # _on_dtp_close forgets it
        if not self.data_channel and getattr(self, "username", None):
            self.sessions.remove(self.username, self)
        super().ftp_QUIT(line)

    def close(self) -> None:
        self._leave_prelogin()
        if getattr(self, "username", None):
            self.sessions.remove(self.username, self)
        super().close()

    # --- uploads

    def open_upload(self, filename: str, mode: str) -> StagingFile:
        return self.lander.open(self.destination, Path(filename), self.fs.fs2ftp(filename), mode)

    # --- data connections: never "150" for one that cannot come

    def _data_coming(self) -> bool:
        """A data connection is open, or a PASV/EPSV listener or PORT/EPRT connect is still live
        (pyftpdlib keeps a timed-out listener or a failed connect referenced after closing it)."""
        if self.data_channel is not None:
            return True
        return any(d is not None and not d._closed for d in (self._dtp_acceptor, self._dtp_connector))

    def _on_dtp_connection(self) -> None:
        # pyftpdlib forgets the passive listener once it has accepted, but keeps the active
        # connector, so the next transfer without a new PORT waited for it forever; and a new
        # PORT/PASV during a transfer would close it, and with it the data channel's socket.
        if self._dtp_connector is not None and self.data_channel is not None:
            self._dtp_connector = None
        super()._on_dtp_connection()

    def push_dtp_data(self, data: Any, isproducer: bool = False, file: Any = None, cmd: Any = None) -> None:
        """LIST, NLST, MLSD and RETR."""
        if not self._data_coming():
            if file is not None:
                file.close()
            self.respond(NO_DATA_CONNECTION)
            return
        super().push_dtp_data(data, isproducer, file, cmd)

    def _drop_queued(self) -> None:
        """Forget a transfer that answered 150 and waits for its data connection, closing its file
        (an upload's temporary copy goes with it; pyftpdlib forgot the file without closing it)."""
        files = []
        if self._in_dtp_queue:  # (file, cmd)
            files.append(self._in_dtp_queue[0])
        if self._out_dtp_queue:  # (data, isproducer, file, cmd)
            files.append(self._out_dtp_queue[2])
        self._in_dtp_queue = self._out_dtp_queue = None
        for file in files:
            if file is not None:
                file.close()

    def flush_account(self) -> None:
        """USER or REIN."""
        self._drop_queued()
        super().flush_account()

    def ftp_ABOR(self, line: str) -> None:
        if self.data_channel is None and (self._in_dtp_queue or self._out_dtp_queue):
            # pyftpdlib answered 225 and kept the transfer queued for the next data connection
            self._drop_queued()
            self._shutdown_connecting_dtp()
            self.respond("426 Transfer aborted via ABOR.")
            self.respond("226 ABOR command successful.")
            return
        super().ftp_ABOR(line)

    def _refused(self) -> bool:
        if not self._data_coming():
            self.respond(NO_DATA_CONNECTION)
            return True
        try:
            self.lander.check_space()
        except RejectedUpload as exc:
            self.server_stats("refused_disk_full")
            metrics.FRAMES_REJECTED.labels("disk_full").inc()
            if self.username:
                self.sessions.note_error(self.username, exc.reason)
            self.respond(exc.reply)
            return True
        return False

    def ftp_STOR(self, file: str, mode: str = "w") -> Any:
        if self._refused():
            self._restart_position = 0
            return None
        return super().ftp_STOR(file, mode)

    def ftp_STOU(self, line: str) -> Any:
        if self._refused():
            return None
        return super().ftp_STOU(line)

    def _as_binary(self, command: Any, arg: str) -> Any:
        # pyftpdlib refuses SIZE and REST in ASCII mode; uploads are never translated here, so
        # sizes and offsets are exact in either mode, and cameras that never send TYPE I work.
        saved, self._current_type = self._current_type, "i"
        try:
            return command(arg)
        finally:
            self._current_type = saved

    def ftp_SIZE(self, path: str) -> Any:
        return self._as_binary(super().ftp_SIZE, path)

    def ftp_REST(self, line: str) -> Any:
        return self._as_binary(super().ftp_REST, line)

    def ftp_MLSD(self, path: str) -> Any:
        # RFC 3659 wants 501 for a path that is not a folder; one that does not exist at all is
        # "not found" (550), which clients such as rclone take as "create it" before uploading
        # into a card folder.
        if not self.fs.lexists(path):
            self.respond("550 No such file or directory.")
            return None
        return super().ftp_MLSD(path)

    def on_renamed(self, src: str, dst: str) -> None:
        self.lander.bridge.call(self.lander.store.rename_photo, self.username, src, dst)

    # --- passive mode from the range only

    def _make_epasv(self, extmode: bool = False) -> None:
        try:
            super()._make_epasv(extmode)
        except _NoPassivePort:
            self._dtp_acceptor = None
            logger.warning(
                "passive ports %d-%d all busy; refusing a data connection",
                self.passive_ports[0],
                self.passive_ports[-1],
            )
            self.respond("425 No free passive port on the box; try again shortly.")

    # --- revocation (called from another thread)

    def cut(self, reply: str | None = None) -> None:
        """End this session now: shut the socket down; the session's own loop closes the rest.
        ``reply`` is written first, best effort, on a connection not yet speaking TLS."""
        try:
            fd = self.socket.fileno()
            dup = socket.socket(fileno=os.dup(fd))
        except (OSError, ValueError):
            return
        try:
            if reply is not None and not self._ssl_established and not self._ssl_accepting:
                dup.send(f"{reply}\r\n".encode(), socket.MSG_DONTWAIT)
            dup.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            dup.close()


class ImplicitTLSHandler(BoxHandler):
    """TLS from the first byte (implicit FTPS, port 990); data channels protected by default."""

    def handle(self) -> None:
        if self._admit():
            self.secure_connection(self.ssl_context)

    def _say(self, reply: str) -> None:
        pass  # the client expects a TLS handshake: refused connections are just closed

    def handle_ssl_established(self) -> None:
        if not getattr(self, "_greeted", False):
            self._greeted = True
            self._pbsz = True
            self._prot = True
            TLS_FTPHandler.handle(self)  # the 220; admitted at connect already
