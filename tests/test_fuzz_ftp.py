"""Random FTP command sequences against a live box, on a raw socket after a real login.

Hypothesis writes the lines byte by byte (invalid UTF-8, NULs, bare CR or LF, Telnet IAC, lines
of a few KB, traversal in every spelling, NFC/NFD look-alikes), opens passive and active data
connections and sends or reads a little. After every example:

- every reply followed the reply grammar (``DDD text`` or a ``DDD-`` block ended by ``DDD text``)
  and arrived within REPLY_TIMEOUT; the connection only closed after 221, 421 or a "Disconnecting"
  530;
- the box process is alive, logged no traceback, and takes a fresh login and a real upload (226);
- nothing appeared outside the key's jail: the data folder (except the jail, the photo store,
  tmp/, quarantine/ and the database files, whose own names are checked against their patterns)
  and the folder around it are unchanged, and tmp/ is empty again once the session is over;
- the jail holds no symlink but the three "doors" planted in it (to a folder next to the data
  folder, to the link-signing key, to the database), and nothing behind them ever reached the
  client; every stored photo still hashes to its name.

Each example gets a fresh upload key (through the admin API), so examples replay alike.
Every bug found is fixed and kept as a regression test below (FIXED_BUGS says what each was).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import secrets
import socket
import ssl
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, currently_in_test_context, event, example, given, note, settings
from hypothesis import strategies as st

from tests.boxproc import BoxProcess, make_box, store
from tests.conftest import jpeg_bytes

REPLY_TIMEOUT = 10.0  # s; a failed login alone costs 1 s, a landing an fsync or two
PROBE = jpeg_bytes(96, 64, seed=7)
# Verbs that need a data connection, and those the box already refuses with 425 without one.
TRANSFER_VERBS = {"STOR", "APPE", "STOU", "RETR", "LIST", "NLST", "MLSD"}
UPLOAD_VERBS = {"STOR", "APPE", "STOU"}
# pyftpdlib's command table (TLS_FTPHandler.proto_cmds; importing pyftpdlib here would import the
# deprecated asyncore), to see a line as the server will (see server_verb).
PROTO_VERBS = frozenset(
    [
        *["ABOR", "ALLO", "APPE", "AUTH", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT", "HELP"],
        *["LIST", "MDTM", "MFMT", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP", "OPTS", "PASS"],
        *["PASV", "PBSZ", "PORT", "PROT", "PWD", "QUIT", "REIN", "REST", "RETR", "RMD", "RNFR"],
        *["RNTO", "SITE", "SIZE", "STAT", "STOR", "STOU", "STRU", "SYST", "TYPE", "USER", "XCUP"],
        *["XCWD", "XMKD", "XPWD", "XRMD"],
    ]
)


# --- the wire ---------------------------------------------------------------------------------


class Hang(AssertionError):
    """No (complete) reply within the timeout."""


class BadReply(AssertionError):
    """A reply that breaks RFC 959's reply grammar."""


class Dropped(AssertionError):
    """The server closed the control connection without saying why (221/421) first."""


class Leaked(AssertionError):
    """An upload's temporary file stayed in tmp/ after its session ended."""


@dataclass
class Reply:
    code: int
    lines: list[bytes]  # without their CRLF
    raw: bytes

    @property
    def text(self) -> str:
        return b"\n".join(self.lines).decode("utf-8", "replace")


class ControlConnection:
    """A raw control connection: bytes out, replies in, never waiting past `timeout`."""

    def __init__(self, port: int, timeout: float) -> None:
        self.timeout = timeout
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.eof = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Hang(f"no complete reply within {self.timeout} s; got {self.buffer!r}")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise Hang(f"no complete reply within {self.timeout} s; got {self.buffer!r}") from None
        except (ConnectionResetError, ssl.SSLError):
            chunk = b""
        if not chunk:
            self.eof = True
        self.buffer += chunk

    def raw_line(self, deadline: float) -> bytes | None:
        """The next line including its terminator (LF), or None at end of stream."""
        while b"\n" not in self.buffer:
            if self.eof:
                if self.buffer:
                    raise BadReply(f"connection closed inside a reply line: {self.buffer!r}")
                return None
            self._fill(deadline)
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def reply(self) -> Reply | None:
        """One complete reply, or None if the server closed the connection first.

        Every line must end in CRLF and hold no other CR: a bare LF inside a reply splits it for
        any client that reads lines (ftplib, curl, cameras)."""
        deadline = time.monotonic() + self.timeout
        raw = b""
        lines: list[bytes] = []
        code: bytes | None = None
        while True:
            line = self.raw_line(deadline)
            if line is None:
                if raw:
                    raise BadReply(f"connection closed inside a reply: {raw!r}")
                return None
            raw += line
            content = line[:-2] if line.endswith(b"\r\n") else line[:-1]
            if not line.endswith(b"\r\n") or b"\r" in content:
                raise BadReply(f"bare CR or LF inside a reply line: {raw!r}")
            lines.append(content)
            if code is None:
                match = re.match(rb"(\d{3})([ -])", content)
                if match is None:
                    raise BadReply(f"reply line without a 3-digit code: {content!r} (in {raw!r})")
                code = match.group(1)
                if match.group(2) == b" ":
                    break
            elif content.startswith(code + b" "):
                break
        return Reply(int(code), lines, raw)

    def starttls(self) -> None:
        self.sock = client_tls().wrap_socket(self.sock)


def client_tls() -> ssl.SSLContext:
    """A client context that takes the box's self-made certificate (the CA is not the point)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def expect(conn: ControlConnection, line: bytes, *codes: int) -> Reply:
    """Send `line` and return its reply, which must have one of `codes`."""
    conn.send(line + b"\r\n")
    reply = conn.reply()
    assert reply is not None and reply.code in codes, (line, reply)
    return reply


def connect_and_login(
    box: BoxProcess, user: str, password: str, timeout: float = REPLY_TIMEOUT
) -> ControlConnection:
    conn = ControlConnection(box.ftp_port, timeout)
    try:
        greeting = conn.reply()
        assert greeting is not None and greeting.code == 220, greeting
        expect(conn, f"USER {user}".encode(), 331)
        expect(conn, f"PASS {password}".encode(), 230)
    except BaseException:
        conn.close()
        raise
    return conn


# --- what a command line is ---------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    line: bytes  # without CRLF; may hold {port} / {eport} (the harness's active-mode listener)
    data: str = "close"  # for transfers: "close", "junk", "jpeg", "read"
    junk: bytes = b""
    setup: bytes = b""  # for transfers: a data-connection command sent first (PASV, EPSV, PORT)

    def render(self, port: int) -> bytes:
        hi, lo = divmod(port, 256)
        return self.line.replace(b"{port}", f"127,0,0,1,{hi},{lo}".encode()).replace(
            b"{eport}", str(port).encode()
        )


def server_verb(line: bytes) -> str:
    """The command pyftpdlib will run for `line` (it decodes with errors="replace", upper-cases
    the first word, and maps lines ending in ABOR/STAT/QUIT, e.g. after Telnet IAC IP, to them)."""
    text = line.decode("utf-8", "replace")
    verb = text.split(" ")[0].upper()
    if verb not in PROTO_VERBS and verb[-4:] in ("ABOR", "STAT", "QUIT"):
        return verb[-4:]
    return verb


# --- strategies -----------------------------------------------------------------------------

TRAVERSAL = [
    "..",
    ".",
    "...",
    "../..",
    "../../..",
    "%2e%2e",
    "%2E%2E%2F",
    "..%2f..%2f",
    "..\\..",
    "\\..\\..\\",
    "..;",
    "~",
    "~root",
    "*",
    "?",
    "[a-z]*",
    "-la",
    "-R",
    "*.JPG",
    "DCIM",
    "100EOSR5",
    "IMG_0001.JPG",
    "DSC_0001.NEF",
    "a b",
    " ",
    "\u2025",  # two-dot leader
    "\uff0e\uff0e",  # fullwidth full stops
    "\u00e9",  # NFC e-acute
    "e\u0301",  # NFD e-acute
    "\u212b",  # Angstrom sign (NFC: A-ring)
    "A\u030a",
    "\ufb01",  # ligature fi (NFKC: fi)
    "door",  # planted: a symlink to a folder outside the data folder
    "door/outside-7f3a.txt",
    "key.jpg",  # planted: a symlink to the box's link-signing secret
    "db",  # planted: a symlink to the database
    "link",
    "etc/passwd",
    "proc/self/root",
    "dev/null",
    "shutterbox.db",
    "photos",
    "quarantine",
    "run",
    "ftp",
    "CON",
    "nul",
]
RAW_SEGMENTS = [
    b"\xff\xfe",
    b"\xc0\xae\xc0\xae",  # overlong UTF-8 for ".."
    b"\xe0\x80\xae",
    b"\xed\xa0\x80",  # a UTF-8-encoded surrogate
    b"\x80",
    b"\x00",
    b"\t",
    b"\x1b[2J",
    b"\xff\xf4\xff\xf2",  # Telnet IAC IP, IAC DM
]

text_segment = st.one_of(
    st.sampled_from(TRAVERSAL),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12),
    st.builds(lambda n, c: c * n, st.integers(100, 300), st.sampled_from("xé.")),
)


@st.composite
def path_arg(draw: st.DrawFn) -> bytes:
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 9)) == 0:
            parts.append(draw(st.sampled_from(RAW_SEGMENTS)))
        else:
            text = draw(text_segment)
            form = draw(st.sampled_from(["NFC", "NFD", "as is", "as is"]))
            parts.append((text if form == "as is" else unicodedata.normalize(form, text)).encode())
    sep = draw(st.sampled_from([b"/", b"/", b"/", b"//", b"\\", b"/./"]))
    path = sep.join(parts)
    lead = draw(st.sampled_from([b"", b"", b"/", b"//", b"\\", b"/../../"]))
    return lead + path


def fixed(*args: str) -> st.SearchStrategy[bytes]:
    return st.sampled_from([a.encode() for a in args])


ARGS: dict[str, st.SearchStrategy[bytes]] = {
    "TYPE": fixed("I", "A", "E", "L 8", "A N", "X", "i", ""),
    "MODE": fixed("S", "B", "C", "Z", ""),
    "STRU": fixed("F", "R", "P", ""),
    "REST": fixed("0", "1", "100", "-1", "99999999999999999999999", "abc", "")
    | st.integers(0, 10**6).map(lambda n: str(n).encode()),
    "ALLO": fixed("10", "999999999999999999999", "R 10", "x", ""),
    "SITE": fixed("CHMOD 777 x", "CHMOD 0 /", "HELP", "HELP CHMOD", "ZONE", "IDLE 1", "SYMLINK a b", ""),
    "OPTS": fixed("UTF8 ON", "UTF8 OFF", "MLST type;size;", "MLST ;;;;", "MLST " + "x;" * 500, "UTF8", ""),
    "HELP": fixed("", "STOR", "SITE", "NOPE", "x" * 300),
    "PBSZ": fixed("0", "-1", "99999999999", "x", ""),
    "PROT": fixed("P", "C", "S", "E", "X", ""),
    "AUTH": fixed("TLS", "SSL", "TLS-C", "KERBEROS", ""),
    "PORT": fixed(
        "{port}", "{port}", "127,0,0,1,0,1", "1,2,3,4,5,6", "256,0,0,1,1,1", "a,b,c", "", "127,0,0,1,999,999"
    ),
    "EPRT": fixed(
        "|1|127.0.0.1|{eport}|", "|1|127.0.0.1|{eport}|", "|2|::1|21|", "|3|x|1|", "||||", "|1|1.2.3.4|1|"
    ),
    "EPSV": fixed("", "", "1", "2", "ALL", "3", "x"),
    "PASV": fixed("", "", "x"),
    "MFMT": st.builds(
        lambda t, p: t + b" " + p, fixed("20000101000000", "99999999999999", "0", "2024-01-01"), path_arg()
    ),
    "USER": fixed("anonymous", "root", "x" * 300, ""),
    "PASS": fixed("", "guess", "x" * 300),
    "STAT": st.one_of(fixed(""), path_arg()),
    "ABOR": fixed(""),
    "NOOP": fixed("", "x"),
    "FEAT": fixed(""),
    "SYST": fixed(""),
    "PWD": fixed(""),
    "CDUP": fixed("", ".."),
    "QUIT": fixed(""),
    "REIN": fixed(""),
}
PATH_VERBS = [
    *("CWD", "XCWD", "MKD", "XMKD", "RMD", "XRMD", "DELE", "RNFR", "RNTO", "SIZE", "MDTM"),
    *("LIST", "NLST", "MLSD", "MLST", "STOR", "APPE", "STOU", "RETR"),
]
# Weights: path commands and transfers most, logins (1 s each when they fail) least.
VERBS = [*PATH_VERBS, *PATH_VERBS, *(v for v in ARGS if v not in ("USER", "PASS", "QUIT", "REIN"))]
JUNK_VERBS = ["XYZZY", "", " ", "GET", "HTTP/1.1", "SITEX", "\u00c9CRIRE", "x" * 50, "STOR\tx"]


@st.composite
def command(draw: st.DrawFn) -> Command:
    roll = draw(st.integers(0, 99))
    if roll < 2:
        verb = draw(st.sampled_from(["USER", "PASS", "QUIT", "REIN"]))
    elif roll < 8:
        verb = draw(st.sampled_from(JUNK_VERBS))
    else:
        verb = draw(st.sampled_from(VERBS))
    arg = draw(ARGS[verb]) if verb in ARGS else draw(path_arg())
    spelled = draw(st.sampled_from([verb, verb, verb, verb.lower(), verb.title()])).encode()
    sep = draw(
        st.integers(0, 19).flatmap(lambda n: st.just(b" ") if n else st.sampled_from([b"  ", b"\t", b""]))
    )
    line = spelled + (sep + arg if arg or draw(st.booleans()) else b"")
    mangle = draw(st.integers(0, 19))
    if mangle == 0:
        line = b"\xff\xf4\xff\xf2" + line  # Telnet interrupt + data mark before the command
    elif mangle == 1:
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from([b"\r", b"\n", b"\x00", b"\r\x00", b"\n\r"])) + line[at:]
    elif mangle == 2:
        line += b"x" * draw(st.integers(1500, 5000))  # around pyftpdlib's 2048-byte line limit
    elif mangle == 3:
        line += draw(st.binary(min_size=1, max_size=40))
    data = draw(st.sampled_from(["close", "junk", "jpeg", "read"]))
    junk = draw(st.binary(max_size=3000)) if data == "junk" else b""
    setup = b""
    if server_verb(line) in TRANSFER_VERBS:  # mostly with a data connection, so the transfer happens
        setup = draw(
            st.sampled_from(
                [b"PASV", b"PASV", b"PASV", b"EPSV", b"PORT {port}", b"EPRT |1|127.0.0.1|{eport}|", b""]
            )
        )
    return Command(line, data, junk, setup)


commands = st.lists(command(), min_size=1, max_size=10)


# --- running a session ------------------------------------------------------------------------


@dataclass
class Session:
    """One control connection and its data connections, as the camera's side sees them."""

    conn: ControlConnection
    tls_data: bool = True  # under PROT P, speak TLS on data connections (False: stay in clear)
    listener: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    data_sock: socket.socket | None = None
    data_ready: bool = False  # the previous command set up the data connection
    transcript: list[tuple[bytes, list[Reply]]] = field(default_factory=list)
    last: Reply | None = None
    closed_after: int | None = None  # the reply code after which the server hung up
    marks: int = 0
    prot_private: bool = False  # PROT P in force: data connections are TLS
    received: bytearray = field(default_factory=bytearray)  # every byte the box sent us

    def close(self) -> None:
        self.drop_data()
        self.listener.close()
        self.conn.close()

    def drop_data(self) -> None:
        if self.data_sock is not None:
            with contextlib.suppress(OSError):
                self.data_sock.close()
            self.data_sock = None

    def _secure_data(self) -> None:
        """Under PROT P the box speaks TLS (as the server) on every data connection, from the
        moment it connects; a session with `tls_data` False stays in clear (FIXED_BUGS 5)."""
        if self.data_sock is None or not self.prot_private or not self.tls_data:
            return
        try:
            self.data_sock = client_tls().wrap_socket(self.data_sock)
        except (OSError, ssl.SSLError):
            self.drop_data()

    def _connect_data(self, port: int) -> None:
        self.drop_data()
        with contextlib.suppress(OSError):
            self.data_sock = socket.create_connection(("127.0.0.1", port), timeout=self.conn.timeout)
        self._secure_data()

    def _accept_active(self) -> None:
        self.drop_data()
        self.listener.settimeout(2)
        with contextlib.suppress(OSError):
            self.data_sock, _ = self.listener.accept()
            self.data_sock.settimeout(self.conn.timeout)
        self._secure_data()

    def _read_reply(self, sent: bytes, replies: list[Reply]) -> Reply | None:
        reply = self.conn.reply()
        if reply is None:
            last = self.last
            if last is not None and (
                last.code in (221, 421) or (last.code == 530 and "Disconnecting" in last.text)
            ):
                self.closed_after = last.code
                return None
            raise Dropped(f"the server hung up without 221/421 after {sent!r} (last reply: {last})")
        replies.append(reply)
        self.last = reply
        self.received += reply.raw
        return reply

    def _data_phase(self, cmd: Command, upload: bool) -> None:
        """The camera's side of a transfer the server has just accepted (1xx)."""
        sock, self.data_sock = self.data_sock, None
        if sock is None:
            return
        try:
            sock.settimeout(2)
            if cmd.data == "junk":
                sock.sendall(cmd.junk)
            elif cmd.data == "jpeg":
                sock.sendall(PROBE)
            elif cmd.data == "read" and not upload:
                with contextlib.suppress(TimeoutError):
                    while chunk := sock.recv(65536):
                        self.received += chunk
        except OSError:
            pass
        finally:
            sock.close()

    def run(self, cmd: Command) -> None:
        if self.closed_after is not None:
            return
        line = cmd.render(self.listener.getsockname()[1])
        verb = server_verb(line)
        if cmd.setup:
            self.run(Command(cmd.setup))
            if self.closed_after is not None:
                return
        replies: list[Reply] = []
        self.transcript.append((line, replies))
        self.conn.send(line + b"\r\n")
        reply = self._read_reply(line, replies)
        self.data_ready = False
        if reply is None:
            return
        if reply.code in (227, 229):
            match = re.search(rb"\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)", reply.raw) or re.search(
                rb"\(\|\|\|(\d+)\|\)", reply.raw
            )
            assert match is not None, reply
            groups = match.groups()
            port = int(groups[0]) if len(groups) == 1 else int(groups[4]) * 256 + int(groups[5])
            self._connect_data(port)
            self.data_ready = self.data_sock is not None
        elif verb in ("PORT", "EPRT") and reply.code == 200:
            self._accept_active()
            self.data_ready = self.data_sock is not None
        elif reply.code == 234 and verb == "AUTH":
            self.conn.starttls()
        elif b"Protection set to" in reply.raw or b"flushed" in reply.raw or verb == "REIN":
            self.prot_private = b"Protection set to Private" in reply.raw
        elif 100 <= reply.code < 200:
            self._data_phase(cmd, upload=verb in UPLOAD_VERBS)
            reply = self._read_reply(line, replies)
            assert reply is None or reply.code >= 200, f"two preliminary replies to {line!r}"
        if verb in TRANSFER_VERBS:
            self.drop_data()  # a data connection serves one transfer
        self.sync(line)

    def sync(self, after: bytes) -> None:
        """Send a unique unknown verb and read every reply up to its answer: extra replies to the
        previous command (a line over 2 KB gets two) are read and checked, never left behind."""
        if self.closed_after is not None:
            return
        self.marks += 1
        mark = f"XSYNC{self.marks}".encode()
        with contextlib.suppress(OSError):
            self.conn.send(mark + b"\r\n")
        replies = self.transcript[-1][1]
        while (reply := self._read_reply(after, replies)) is not None:
            if mark in reply.raw:
                replies.pop()
                return


def plant_doors(box: BoxProcess, user: str, outside: Path) -> dict[str, Path]:
    """Symlinks in the jail (the login made it) to what a camera must never reach."""
    doors = {"door": outside, "key.jpg": box.data / "link.key", "db": box.data / "shutterbox.db"}
    for name, target in doors.items():
        (box.jail(user) / name).symlink_to(target)
    return doors


def run_session(
    box: BoxProcess,
    user: str,
    password: str,
    cmds: list[Command],
    *,
    tls_data: bool = True,
    timeout: float = REPLY_TIMEOUT,
    outside: Path | None = None,
) -> Session:
    conn = connect_and_login(box, user, password, timeout)
    if outside is not None:
        plant_doors(box, user, outside)
    session = Session(conn, tls_data)
    try:
        for cmd in cmds:
            session.run(cmd)
        if session.closed_after is None:
            with contextlib.suppress(OSError):
                conn.send(b"QUIT\r\n")
            session._read_reply(b"QUIT", [])
    finally:
        session.close()
    return session


# --- invariants ---------------------------------------------------------------------------------

DB_PREFIX = "shutterbox.db"
CHECKED_DIRS = {
    "photos": re.compile(r"photos(/[a-z0-9]+(/[0-9a-f]{2}(/[0-9a-f]{64}\.[a-z0-9]{1,8})?)?)?"),
    "tmp": re.compile(r"tmp(/[0-9a-f]{16}\.(part|link))?"),
    "quarantine": re.compile(r"quarantine(/\d{8}(/\d{6}-[0-9a-f]{8}-[A-Za-z0-9._-]{0,80})?)?"),
    "proxies": re.compile(r"proxies(/[a-z0-9]+(/[0-9a-f]{64}\.jpg(\.\d+\.\d+\.tmp)?)?)?"),
    "thumbs": re.compile(r"thumbs(/[a-z0-9]+(/[0-9a-f]{64}\.jpg(\.\d+\.\d+\.tmp)?)?)?"),
}


def tree(root: Path, skip: set[Path]) -> set[str]:
    found: set[str] = set()
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skip]
        for name in dirs:
            found.add(f"{(here / name).relative_to(root)}/")
        for name in files:
            found.add(str((here / name).relative_to(root)))
    return found


@dataclass
class Snapshot:
    outside: set[str]  # DATA except the jail, the checked folders and the database files
    around: set[str]  # the folder holding DATA, except DATA
    log_size: int
    tmp: set[str]  # names in tmp/


def snapshot(box: BoxProcess, user: str) -> Snapshot:
    data = box.data
    skip = {box.jail(user), *(data / d for d in CHECKED_DIRS)}
    outside = {p for p in tree(data, skip) if not p.startswith(DB_PREFIX)}
    tmp = {p.name for p in (data / "tmp").iterdir()}
    return Snapshot(outside, tree(data.parent, {data}), (data / "box.log").stat().st_size, tmp)


def new_tracebacks(box: BoxProcess, since: int) -> list[str]:
    """The tracebacks the box logged after byte `since` of its log, one block each."""
    with (box.data / "box.log").open("rb") as log:
        log.seek(since)
        text = log.read().decode("utf-8", "replace")
    blocks = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|[A-Z]+: {2,})", text)  # one per log record
    return [block for block in blocks if "Traceback" in block]


def tmp_leftovers(box: BoxProcess, before: set[str], wait: float = 3.0) -> set[str]:
    """Files in tmp/ that were not there before, once the server had `wait` s to tidy up."""
    deadline = time.monotonic() + wait
    while True:
        new = {p.name for p in (box.data / "tmp").iterdir()} - before
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.05)


def check_invariants(
    box: BoxProcess, user: str, password: str, before: Snapshot, session: Session, doors: tuple[str, ...] = ()
) -> None:
    what = f"{[line for line, _ in session.transcript]!r}"
    assert box.proc is not None and box.proc.poll() is None, f"the box died after {what}:\n{box.log[-3000:]}"
    for block in new_tracebacks(box, before.log_size):
        raise AssertionError(f"the box logged a traceback after {what}:\n{block[-4000:]}")
    leftovers = tmp_leftovers(box, before.tmp)
    if leftovers:
        raise Leaked(f"tmp/ kept {sorted(leftovers)} after {what}")
    with box.ftp(user, password, timeout=REPLY_TIMEOUT) as ftp:  # still takes a login and a frame
        assert store(ftp, f"zz_probe_{secrets.token_hex(4)}.jpg", PROBE).startswith("226")
    after = snapshot(box, user)
    assert after.outside == before.outside, f"outside the jail after {what}: {after.outside ^ before.outside}"
    assert after.around == before.around, (
        f"next to the data folder after {what}: {after.around ^ before.around}"
    )
    for name, pattern in CHECKED_DIRS.items():
        for entry in tree(box.data / name, set()):
            rel = f"{name}/{entry.rstrip('/')}"
            assert pattern.fullmatch(rel), f"unexpected name {rel!r} after {what}"
    jail = box.jail(user).resolve()
    for folder, dirs, files in os.walk(jail):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                assert path.parent == jail and name in doors, f"symlink {path} in the jail after {what}"
            else:
                assert path.resolve().is_relative_to(jail), f"{path} leads out of the jail after {what}"
    received = bytes(session.received)
    for secret in (OUTSIDE_SECRET, UNLISTED.encode(), (box.data / "link.key").read_bytes()):
        assert secret not in received, f"the box sent what lies behind a door after {what}"
    if doors:
        assert (box.data.parent / "outside" / "outside-7f3a.txt").read_bytes() == OUTSIDE_SECRET
    for photo in (box.data / "photos").rglob("*.*"):
        digest = hashlib.sha256(photo.read_bytes()).hexdigest()
        assert photo.name.startswith(digest), f"stored photo {photo} was altered after {what}"


# --- the box and the properties -----------------------------------------------------------------


SECRET = "fuzz-secret-0001"
OUTSIDE_SECRET = b"OUTSIDE-THE-JAIL-" + b"7f3a" * 8  # the content of outside/outside-7f3a.txt
UNLISTED = f"listed-only-if-the-door-opens-{secrets.token_hex(8)}"  # a name the fuzzer cannot write
# The cloud backend may push a key as an scrypt hash; the cheapest one the box accepts (n = 2^10)
# makes a fresh key per example cost milliseconds instead of two full scrypt runs.
_SALT = b"shutterbox-fuzz!"
CHEAP_HASH = "$".join(
    [
        *("scrypt", "10", "1", "1"),
        base64.b64encode(_SALT).decode(),
        base64.b64encode(hashlib.scrypt(SECRET.encode(), salt=_SALT, n=1024, r=1, p=1, dklen=32)).decode(),
    ]
)


@dataclass
class FuzzBox:
    box: BoxProcess
    event: str
    admin: httpx.Client
    outside: Path  # next to the data folder; the jails' "door" symlinks point at it
    keys: Iterator[int] = field(default_factory=lambda: iter(range(10**9)))

    def new_key(self) -> tuple[str, str]:
        """A fresh upload key (so a fresh, empty jail), pushed as the cloud backend would."""
        username = f"fz{next(self.keys)}-{secrets.token_hex(3)}"
        body = {"event": self.event, "camera": username, "secret_hash": CHEAP_HASH}
        reply = self.admin.put(f"/api/keys/{username}", json=body)
        assert reply.status_code == 201, reply.text
        return username, SECRET


@pytest.fixture(scope="module")
def fuzz_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzBox]:
    running = make_box(
        tmp_path_factory.mktemp("ftpfuzz") / "data",
        faces__enabled="false",  # nothing here is about faces: keep the CPU for the fuzzer
        ftp__ban_threshold="1000000",  # the fuzzer fails logins on purpose
        ftp__max_connections_per_ip="64",
    ).start()
    admin = running.admin_api(timeout=30)
    outside = running.data.parent / "outside"
    outside.mkdir()
    (outside / "outside-7f3a.txt").write_bytes(OUTSIDE_SECRET)
    (outside / UNLISTED).mkdir()
    try:
        yield FuzzBox(running, running.new_event("FTP fuzz"), admin, outside)
    finally:
        admin.close()
        code = running.stop()
    assert code == 0, f"box exited with {code}:\n{running.log[-4000:]}"


def fuzz_once(
    fuzz_box: FuzzBox, cmds: list[Command], *, tls_data: bool = True, timeout: float = REPLY_TIMEOUT
) -> None:
    if currently_in_test_context():
        note(f"commands: {cmds!r}")  # (this Hypothesis prints an empty argument list)
    box = fuzz_box.box
    user, password = fuzz_box.new_key()
    before = snapshot(box, user)
    session = run_session(
        box, user, password, cmds, tls_data=tls_data, timeout=timeout, outside=fuzz_box.outside
    )
    if currently_in_test_context():  # what the box answered: --hypothesis-show-statistics
        for line, replies in session.transcript:
            event(f"{server_verb(line)[:8]} {replies[0].code if replies else '-'}")
    check_invariants(box, user, password, before, session, doors=("door", "key.jpg", "db"))


FUZZ = settings(
    deadline=None,
    database=None,
    # No shrinking: each example is a live session (~0.2 s); shrinking one failure would take
    # longer than the test's timeout. The failure message carries the whole transcript.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(FUZZ, max_examples=150)
@given(cmds=commands)
def test_random_command_sequences(fuzz_box: FuzzBox, cmds: list[Command]) -> None:
    fuzz_once(fuzz_box, cmds)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@settings(FUZZ, max_examples=600)
@given(cmds=st.lists(command(), min_size=1, max_size=25))
def test_random_command_sequences_long(fuzz_box: FuzzBox, cmds: list[Command]) -> None:
    fuzz_once(fuzz_box, cmds)


# --- bugs found and fixed, kept as regressions --------------------------------------------------

FIXED_BUGS = """What each was before its fix; now each gets a reply and leaves nothing behind.
1. LIST, NLST, MLSD and RETR without PASV/EPSV/PORT: "150 File status okay. About to open data
   connection." and then nothing until ftp.idle_timeout (600 s) ended the session. Now 425
   (BoxHandler.push_dtp_data), as STOR/APPE/STOU already got.
2. A bare CR or LF inside a command line was echoed into the reply ('500 Command "A<LF>B" not
   understood.', '257 "/a<LF>b" directory created.'): a client that reads lines saw a reply line
   without a code, or one it wrote itself. Now 501 (BoxHandler.pre_process_command).
3. APPE, or REST + STOR, of a missing file (or of a folder) with a data connection open:
   StagingFile raised FileNotFoundError without an errno, pyftpdlib's strerror() then a
   TypeError, and the session was dropped without a reply. Now 550 with the errno's text.
4. REST past the end + STOR: "554 REST position ... > file size ...", but the copy StagingFile
   had made in tmp/ stayed there, one full copy per attempt. Now StagingFile.close() removes the
   temporary of an upload that was never landed or kept.
5. PROT P, and a data connection closed before its TLS handshake was done (a camera that
   connects in clear, a link that drops then): pyftpdlib closed the data channel without a reply,
   so LIST/STOR waited forever. Now 522 when a transfer was waiting (TLSLandingDTP).
6. The same frame sent again under its name (a camera retrying after a lost 226) left
   tmp/<hex>.link: rename(2) onto a name that is already the same inode does nothing. Now the
   link is always removed (Lander._link_into_jail).
7. After a transfer over an active (PORT/EPRT) connection, STOR/APPE/STOU without a new PORT got
   "150" and then nothing: pyftpdlib keeps the used connector, so a data connection looked on its
   way. Now the connector is forgotten once connected, and a timed-out PASV listener or a failed
   PORT connect no longer counts either (BoxHandler._data_coming).
8. QUIT with a data connection open but idle (PORT or PASV, then no transfer): pyftpdlib
   treated it as a transfer in progress, stopped reading, kept the 221 back and held the session
   (and its place under ftp.max_sessions_per_key) until the data connection timed out, 300 s.
   Now the idle data connection is closed and the 221 sent at once (BoxHandler.ftp_QUIT).
"""

NO_DATA_VERBS = ["LIST", "NLST", "MLSD", "RETR PROBE_0001.JPG"]


@pytest.mark.parametrize("verb", NO_DATA_VERBS)
def test_listing_without_a_data_connection_is_answered(fuzz_box: FuzzBox, verb: str) -> None:
    user, password = fuzz_box.new_key()
    with fuzz_box.box.ftp(user, password) as ftp:
        store(ftp, "PROBE_0001.JPG", PROBE)
    conn = connect_and_login(fuzz_box.box, user, password, timeout=4)
    try:
        conn.send(verb.encode() + b"\r\n")
        reply = conn.reply()
        while reply is not None and reply.code < 200:
            reply = conn.reply()
        assert reply is not None and reply.code == 425, reply
    finally:
        conn.close()


ECHOED = [b"XYZZY\nABC", b"MKD a\nb", b"XYZZY\r226 Transfer complete."]


@pytest.mark.parametrize("line", ECHOED)
def test_control_characters_are_not_echoed_into_replies(fuzz_box: FuzzBox, line: bytes) -> None:
    user, password = fuzz_box.new_key()
    conn = connect_and_login(fuzz_box.box, user, password)
    try:
        conn.send(line + b"\r\n")
        reply = conn.reply()
        assert reply is not None and len(reply.lines) == 1, reply
    finally:
        conn.close()


def strict_session(
    fuzz_box: FuzzBox, lines: list[bytes], timeout: float = REPLY_TIMEOUT
) -> tuple[Session, Snapshot, str]:
    """Run `lines` after PASV (the data connection open) with no tolerance; returns the session,
    the snapshot taken before it and the key's username."""
    user, password = fuzz_box.new_key()
    with fuzz_box.box.ftp(user, password) as ftp:
        store(ftp, "PROBE_0001.JPG", PROBE)
    before = snapshot(fuzz_box.box, user)
    session = Session(connect_and_login(fuzz_box.box, user, password, timeout))
    try:
        for line in lines:
            session.run(Command(line))
    finally:
        session.close()
    return session, before, user


@pytest.mark.parametrize(
    "lines",
    [[b"PASV", b"APPE missing.jpg"], [b"PASV", b"REST 1", b"STOR missing.jpg"], [b"PASV", b"APPE /"]],
    ids=["APPE-missing", "REST-STOR-missing", "APPE-folder"],
)
def test_resuming_a_missing_file_is_refused(fuzz_box: FuzzBox, lines: list[bytes]) -> None:
    session, before, _ = strict_session(fuzz_box, lines)
    assert session.transcript[-1][1][-1].code == 550
    assert not new_tracebacks(fuzz_box.box, before.log_size)


def test_refused_rest_leaves_nothing_in_tmp(fuzz_box: FuzzBox) -> None:
    session, before, _ = strict_session(fuzz_box, [b"PASV", b"REST 999999", b"STOR PROBE_0001.JPG"])
    assert session.transcript[-1][1][-1].code == 554
    leftovers = tmp_leftovers(fuzz_box.box, before.tmp)
    if leftovers:
        raise Leaked(f"tmp/ kept {sorted(leftovers)}")


@pytest.mark.parametrize("verb", [b"LIST", b"STOR clear.jpg"])
def test_data_connection_without_tls_under_prot_p_is_answered(fuzz_box: FuzzBox, verb: bytes) -> None:
    user, password = fuzz_box.new_key()
    conn = connect_and_login(fuzz_box.box, user, password, timeout=4)
    data: socket.socket | None = None
    try:
        expect(conn, b"AUTH TLS", 234)
        conn.starttls()
        expect(conn, b"PBSZ 0", 200)
        expect(conn, b"PROT P", 200)
        reply = expect(conn, b"PASV", 227)
        port = re.search(rb"(\d+),(\d+)\)", reply.raw)
        assert port is not None
        data = socket.create_connection(("127.0.0.1", int(port[1]) * 256 + int(port[2])), timeout=4)
        time.sleep(0.3)  # the box has accepted it and waits for a TLS client hello
        expect(conn, verb, 125, 150)
        time.sleep(0.3)
        data.close()  # a camera that does not speak TLS on the data connection gives up
        reply = conn.reply()
        assert reply is not None and reply.code >= 400, reply
    finally:
        if data is not None:
            data.close()
        conn.close()


@pytest.mark.parametrize("upload", [b"STOR a.jpg", b"APPE PROBE_0001.JPG", b"STOU"])
def test_upload_after_an_active_transfer_without_port_is_refused(fuzz_box: FuzzBox, upload: bytes) -> None:
    session, _, _ = strict_session(fuzz_box, [b"PORT {port}", b"NLST", upload], timeout=4)
    assert session.transcript[-1][1][-1].code == 425


@pytest.mark.parametrize("upload", [b"STOR a.jpg", b"LIST"])
def test_transfer_after_a_failed_active_connect_is_refused(fuzz_box: FuzzBox, upload: bytes) -> None:
    """PORT to a port nobody listens on: 425, and the next transfer is refused too (pyftpdlib
    kept the failed connector, which looked like a connection on its way)."""
    closed = socket.create_server(("127.0.0.1", 0))
    hi, lo = divmod(closed.getsockname()[1], 256)
    closed.close()
    session, _, _ = strict_session(fuzz_box, [f"PORT 127,0,0,1,{hi},{lo}".encode(), upload], timeout=4)
    assert [replies[-1].code for _, replies in session.transcript] == [425, 425]


@pytest.mark.parametrize("opening", [b"PORT {port}", b"PASV"])
def test_quit_with_an_idle_data_connection_is_answered_at_once(fuzz_box: FuzzBox, opening: bytes) -> None:
    """Found by the long fuzz run (FIXED_BUGS 8): the 221 never came."""
    session, _, _ = strict_session(fuzz_box, [opening, b"QUIT"], timeout=4)
    assert session.transcript[-1][1][-1].code == 221
    assert session.closed_after is not None, "the box closes the session after its 221"


@pytest.mark.parametrize("then", [b"REIN", b"ABOR"])
def test_a_queued_upload_given_up_leaves_nothing_in_tmp(fuzz_box: FuzzBox, then: bytes) -> None:
    """STOR waiting for its data connection, then the camera starts over (REIN) or aborts."""
    user, password = fuzz_box.new_key()
    with fuzz_box.box.ftp(user, password) as ftp:
        store(ftp, "PROBE_0001.JPG", PROBE)
    before = snapshot(fuzz_box.box, user)
    conn = connect_and_login(fuzz_box.box, user, password, timeout=4)
    try:
        expect(conn, b"PASV", 227)
        expect(conn, b"APPE PROBE_0001.JPG", 150)  # a copy of the frame is made in tmp/
        if then == b"ABOR":  # the waiting transfer ends (426), then ABOR is answered (226)
            expect(conn, then, 426)
            reply = conn.reply()
            assert reply is not None and reply.code == 226, reply
        else:
            expect(conn, then, 230)
        expect(conn, b"NOOP", 200)  # nothing else was said in between
        leftovers = tmp_leftovers(fuzz_box.box, before.tmp)
        if leftovers:
            raise Leaked(f"tmp/ kept {sorted(leftovers)}")
    finally:
        conn.close()


def test_resending_a_frame_under_its_name_leaves_nothing_in_tmp(fuzz_box: FuzzBox) -> None:
    user, password = fuzz_box.new_key()
    before = snapshot(fuzz_box.box, user)
    for _ in range(2):  # the camera missed the first 226 and sends the frame again
        with fuzz_box.box.ftp(user, password) as ftp:
            assert store(ftp, "DSC_0001.JPG", PROBE).startswith("226")
    leftovers = tmp_leftovers(fuzz_box.box, before.tmp)
    if leftovers:
        raise Leaked(f"tmp/ kept {sorted(leftovers)}")


@settings(FUZZ, phases=[Phase.explicit], report_multiple_bugs=False)
@given(cmds=commands)
@example(cmds=[Command(b"MKD a\nb")])
@example(cmds=[Command(b"XYZZY\nABC")])
@example(cmds=[Command(b"PASV"), Command(b"APPE /")])
@example(
    cmds=[
        Command(b"PASV"),
        Command(b"STOR a.jpg", "jpeg"),
        Command(b"PASV"),
        Command(b"REST 99999"),
        Command(b"STOR a.jpg"),
    ]
)
@example(
    cmds=[
        Command(b"AUTH TLS"),
        Command(b"PBSZ 0"),
        Command(b"PROT P"),
        Command(b"PASV"),
        Command(b"LIST", "read"),
    ]
)
@example(
    cmds=[Command(b"PASV"), Command(b"STOR a.jpg", "jpeg"), Command(b"PASV"), Command(b"STOR a.jpg", "jpeg")]
)
@example(
    cmds=[Command(b"EPRT |1|127.0.0.1|{eport}|"), Command(b"NLST", "read"), Command(b"STOU", "junk", b"x")]
)
@example(cmds=[Command(b"NLST")])
@example(cmds=[Command(b"PORT {port}", "junk", b"x"), Command(b"QUIT")])
def test_bugs_found_replay_cleanly(fuzz_box: FuzzBox, cmds: list[Command]) -> None:
    """The fuzzer's own findings (FIXED_BUGS 1-8) as whole sessions, data connections in clear
    under PROT P."""
    fuzz_once(fuzz_box, cmds, tls_data=False, timeout=4)
