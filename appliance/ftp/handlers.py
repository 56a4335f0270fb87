"""pyftpdlib handler subclasses: where stock pyftpdlib is bent to cameras and to "226 means
durable". Everything here runs on the session's own thread.

- the data channel's close path lands the file (verify, fsync, hash, queue) *before* replying
  226; a truncated or corrupt upload gets 451 and is kept for resume + quarantined;
- passive ports come from the configured range only (425 when it is full, never outside it);
- failed logins feed the Defender; banned IPs get 421 at connect;
- sessions per key are capped, and a revoked key's live sessions are cut;
- an implicit-TLS variant speaks TLS from the first byte (port 990).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
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
from appliance.ftp.tls import DataChannelTLS
from appliance.ingest.landing import Destination, StagingFile

if TYPE_CHECKING:
    from appliance.ftp.authorizer import KeyAuthorizer
    from appliance.ftp.sessions import Sessions
    from appliance.ingest.landing import Lander

logger = logging.getLogger(__name__)


class _NoPassivePort(OSError):
    pass


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
                    self._resp = (exc.reply, logger.warning)
                    self.transfer_finished = False
                    self.cmd_channel.server_stats("rejected")
                except Exception:
                    logger.exception("landing %s failed", upload.original_name)
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
            logger.exception("could not keep the partial upload %s", upload.original_name)

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
            self._resp = (cause.reply, logger.warning)
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
    max_sessions_per_key: ClassVar[int]
    stats: ClassVar[dict[str, int]]
    authorizer: KeyAuthorizer
    _current_type: str
    _dtp_acceptor: Any
    _dtp_connector: Any
    _in_dtp_queue: Any
    _out_dtp_queue: Any

    def handle(self) -> None:
        ban = self.defender.banned_for(self.remote_ip)
        if ban > 0:
            self.respond(f"421 Too many failed logins from your address; try again in {int(ban) + 1} s.")
            self.close_when_done()
            return
        super().handle()

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        # NUL, or a bare CR/LF inside the line (replies echo the command or its path: a line
        # break there would hand the client a reply line it wrote itself)
        if "\x00" in line or "\r" in line or "\n" in line:
            self.respond("501 Invalid character in command.")
            return
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

    # --- login

    def ftp_PASS(self, line: str) -> None:
        if self.authenticated:
            self.respond("503 User already authenticated.")
            return
        if not self.username:
            self.respond("503 Login with USER first.")
            return
        username = self.username
        if self.sessions.count(username) >= self.max_sessions_per_key:
            self.respond("421 Too many sessions for this upload key; close one and retry.")
            self.close_when_done()
            return
        try:
            self.authorizer.validate_authentication(username, line, self)
        except AuthenticationFailed as err:
            self.server_stats("login_failed")
            if isinstance(err, RevokedKey):
                self.sessions.note_error(username, "login refused: the key is revoked")
            elif not isinstance(err, UnknownUser):
                self.sessions.note_error(username, "login failed: wrong password")
            score = (
                Defender.SCORE_UNKNOWN_USER if isinstance(err, UnknownUser) else Defender.SCORE_WRONG_PASSWORD
            )
            ban = self.defender.record_failure(self.remote_ip, score)
            if ban:
                self.server_stats("banned")
                logger.warning("banned %s for %d s after repeated failed logins", self.remote_ip, ban)
                self.respond(f"421 Too many failed logins; this address is banned for {int(ban)} s.")
                self.close_when_done()
                return
            self.handle_auth_failed(str(err), line)
            return
        self.server_stats("login_ok")
        self.defender.record_success(self.remote_ip)
        self.handle_auth_success(
            self.authorizer.get_home_dir(username), line, self.authorizer.get_msg_login(username)
        )

    def on_login(self, username: str) -> None:
        self.sessions.add(username, self)
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
            logger.info("%s session from %s ended", self.username, self.remote_ip)

    def close(self) -> None:
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

    def cut(self) -> None:
        """End this session now: shut the socket down; the session's own loop closes the rest."""
        try:
            fd = self.socket.fileno()
            dup = socket.socket(fileno=os.dup(fd))
        except (OSError, ValueError):
            return
        try:
            dup.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            dup.close()


class ImplicitTLSHandler(BoxHandler):
    """TLS from the first byte (implicit FTPS, port 990); data channels protected by default."""

    def handle(self) -> None:
        if self.defender.banned_for(self.remote_ip) > 0:
            self.close()
            return
        self.secure_connection(self.ssl_context)

    def handle_ssl_established(self) -> None:
        if not getattr(self, "_greeted", False):
            self._greeted = True
            self._pbsz = True
            self._prot = True
            BoxHandler.handle(self)
