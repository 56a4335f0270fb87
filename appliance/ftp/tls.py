"""The pyOpenSSL context for FTPS: TLS 1.2 and 1.3 only, ECDHE with AES-GCM first (the suites
Sony bodies offer), session resumption allowed but never required. Built once at start-up; and
the data channel's connection, which never sends a TLS 1.3 ticket while a camera uploads."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

from OpenSSL import SSL

CIPHERS = b":".join(
    [
        b"ECDHE-ECDSA-AES128-GCM-SHA256",
        b"ECDHE-RSA-AES128-GCM-SHA256",
        b"ECDHE-ECDSA-AES256-GCM-SHA384",
        b"ECDHE-RSA-AES256-GCM-SHA384",
        b"ECDHE-ECDSA-CHACHA20-POLY1305",
        b"ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


def make_context(cert_file: Path, key_file: Path) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    context.set_cipher_list(CIPHERS)  # TLS 1.3 suites are all AEAD and stay at OpenSSL's defaults
    context.use_certificate_chain_file(str(cert_file))
    context.use_privatekey_file(str(key_file))
    context.check_privatekey()
    # Server-side session cache on: a camera that resumes its control session on the data
    # channel is served; one that does not is served too (we never demand reuse).
    context.set_session_id(b"shutterbox")
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    return context


RECORD_HEADER = 5  # content type, version, length
READ_CHUNK = 256 << 10  # kernel bytes per read into the connection's own buffer
RECORD_PLAINTEXT = 16 << 10  # SSL_read hands out at most one record (16 KiB) per call


class DataChannelTLS(SSL.Connection):
    """TLS on an FTP data connection that never speaks while the camera may still be writing.

    A TLS 1.3 server sends its session tickets right after the handshake. A camera uploading on
    a data channel never reads, so at its close the unread tickets make its kernel answer with a
    TCP reset, and the tail of the frame still in flight is lost (pyftpdlib #602, lftp #666,
    curl #6149): 451 at a multiple of 16 KiB for GnuTLS and Go clients. OpenSSL cannot be told
    to send no tickets through pyOpenSSL, so this connection runs OpenSSL on memory buffers and
    moves the bytes itself: what OpenSSL writes once a TLS 1.3 handshake is done (the tickets) is
    held back until the box itself next writes on that channel (a listing or download, or the
    close_notify after the camera has sent everything), in order, so the TLS stream stays whole.
    The same context serves control and data channels, so a camera that resumes its control
    session on the data channel still can; one that does not is served too.

    While the handshake runs it reads at most to the end of the current TLS record, so bytes the
    camera sends after its Finished stay in the kernel and wake the session's loop as usual.
    Runs on the FTP session's thread, like the handler that owns it.
    """

    def __init__(self, context: SSL.Context, sock: socket.socket) -> None:
        super().__init__(context, None)
        self._raw = sock
        self._outgoing = bytearray()  # TLS bytes for the wire not yet taken by the kernel
        self._held = b""  # post-handshake messages kept back until we next write
        self._header = bytearray()  # a record header read in part during the handshake
        self._record_left = 0  # bytes of the current record still in the kernel
        self._eof = False
        # the end of stream met after data still handed out, raised at the next read: kept as
        # class and arguments, not as the exception (its traceback would hold this connection
        # in a reference cycle, and with it OpenSSL's buffers, until the cyclic GC ran)
        self._end: tuple[type[SSL.Error], tuple[Any, ...]] | None = None
        self._buffer = bytearray(READ_CHUNK)  # reused: no 1 MiB allocation per read (heap churn)

    def __getattr__(self, name: str) -> Any:
        if name == "_raw":  # before __init__ has set it
            raise AttributeError(name)
        return getattr(self._raw, name)

    def sock_shutdown(self, how: int) -> None:
        self._raw.shutdown(how)

    @property
    def ended(self) -> bool:
        """The peer's end of stream arrived together with data already handed out."""
        return self._end is not None

    # --- the wire

    def _recv_raw(self, size: int) -> memoryview | None:
        """Up to ``size`` bytes from the kernel (a view of the reused buffer; empty at EOF), or
        None when it has none yet."""
        view = memoryview(self._buffer)[: min(size, READ_CHUNK)]
        try:
            got = self._raw.recv_into(view)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise _syscall_error(exc) from exc
        return view[:got]

    def _take_output(self) -> bytes:
        chunks = []
        while True:
            try:
                chunks.append(self.bio_read(65536))
            except SSL.WantReadError:
                return b"".join(chunks)

    def _flush(self) -> None:
        while self._outgoing:
            try:
                sent = self._raw.send(self._outgoing)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                raise _syscall_error(exc) from exc
            del self._outgoing[:sent]

    def _write_out(self, data: bytes) -> None:
        """Queue ``data`` after anything held back, and send what the kernel takes now."""
        if self._held:
            self._outgoing[:0] = self._held
            self._held = b""
        self._outgoing += data
        self._flush()

    def _feed_record(self) -> bool:
        """Give OpenSSL the kernel's next bytes, never past the end of the current record;
        False when the kernel has none yet."""
        if self._eof:
            return False
        want = self._record_left or RECORD_HEADER - len(self._header)
        data = self._recv_raw(want)
        if data is None:
            return False
        if not data:
            self._eof = True
            self.bio_shutdown()
        elif self._record_left:
            self._record_left -= len(data)
            self.bio_write(data)
        else:
            self._header += data
            if len(self._header) == RECORD_HEADER:
                self._record_left = int.from_bytes(self._header[3:5], "big")
                self.bio_write(bytes(self._header))
                self._header.clear()
        return True

    def _feed(self) -> None:
        """Give OpenSSL one read of the kernel's bytes, a readiness event's worth: the plaintext
        handed to pyftpdlib then stays under this process's mmap threshold (512 KiB,
        process.release_memory_promptly) and comes from the reused heap; at 8 reads (2 MiB) every
        read mapped, zeroed and unmapped a block: 28 against 20 ms of kernel time an 8 MB frame
        (docs/benchmarks-addendum.md). More data waits in the kernel and wakes the loop again."""
        data = self._recv_raw(READ_CHUNK)
        if data is None:
            return
        if not data:
            self._eof = True
            self.bio_shutdown()
            return
        self.bio_write(data)

    # --- what pyftpdlib calls

    def do_handshake(self) -> None:
        while True:
            self._flush()
            if self._outgoing:
                raise SSL.WantWriteError()
            try:
                super().do_handshake()
            except SSL.WantReadError:
                flight = self._take_output()
                if flight:
                    self._outgoing += flight
                elif not self._feed_record():
                    raise
                continue
            after = self._take_output()
            if not after:
                return
            if self.get_protocol_version_name() == "TLSv1.3":
                self._held += after  # session tickets: sent when we next write, never before
                return
            self._outgoing += after  # TLS 1.2: the server's last flight is the handshake

    def recv(self, bufsiz: int, flags: int | None = None) -> bytes:
        if self._end is not None:
            kind, args = self._end
            raise kind(*args)
        self._feed()
        out = []
        try:
            while True:
                out.append(super().recv(RECORD_PLAINTEXT))
        except SSL.WantReadError:
            pass
        except (SSL.ZeroReturnError, SSL.SysCallError) as end:
            if not out:
                raise
            self._end = (type(end), end.args)
        answer = self._take_output()  # e.g. a KeyUpdate the peer asked for
        if answer:
            self._write_out(answer)
        if not out:
            raise SSL.WantReadError()
        return b"".join(out)

    read = recv

    def send(self, buf: Any, flags: int = 0) -> int:
        self._write_out(b"")
        if self._outgoing:
            raise SSL.WantWriteError()
        sent = super().send(buf)
        self._write_out(self._take_output())
        return sent

    write = send

    def shutdown(self) -> bool:
        try:
            done = super().shutdown()
        except SSL.Error:
            if not self._eof:
                raise
            return True  # the peer left without close_notify: the stream is over, say nothing
        self._write_out(self._take_output())
        if self._outgoing:
            raise SSL.WantWriteError()
        return done


def _syscall_error(exc: OSError) -> SSL.SysCallError:
    """A socket error as pyOpenSSL reports it on a socket-backed connection."""
    code = exc.errno or 0
    return SSL.SysCallError(code, errno.errorcode.get(code, str(exc)))
