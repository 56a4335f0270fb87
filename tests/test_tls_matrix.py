"""The camera-client matrix: every TLS stack a camera may carry uploads a batch of real-size
frames whole at the first try.

Each case is a real client of its own TLS stack over loopback: OpenSSL (Python's ftplib, curl),
GnuTLS (lftp) and Go's crypto/tls (rclone), in plain FTP, explicit FTPS (AUTH TLS, protected
data) and implicit FTPS, with TLS 1.2 and 1.3 forced where the client can force it. Every client
sends its whole batch over one control connection with a new data connection per frame (the
cameras' pattern). Every frame must get 226 at the first try (no client retries; the box records
no rejection), arrive byte-identical and be queued exactly once.

TLS 1.3 servers send session tickets after the handshake; a client that only writes on a data
channel never reads them, and its close then turns into a TCP reset that drops the tail of the
upload (pyftpdlib #602, lftp #666, curl #6149). lftp and rclone showed it on 0.3-2 MB frames.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import shutil
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.boxproc import BoxProcess, make_box
from tests.conftest import camera_jpeg

pytestmark = pytest.mark.e2e

# Real-size frames: a small JPEG export, a 24 MP JPEG, a big one, and a 45 MP fine JPEG.
BATCH_SIZES = (300_000, 1_150_000, 2_400_000, 25_000_000)
TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxProcess]:
    """One box with explicit FTPS on its FTP port and an implicit-FTPS listener."""
    running = make_box(tmp_path_factory.mktemp("matrix") / "data", ftp__implicit_tls_port="0").start()
    yield running
    code = running.stop()
    assert code == 0, f"box exited with {code}:\n{running.log[-4000:]}"


@pytest.fixture(scope="module")
def batch_bases() -> list[bytes]:
    return [camera_jpeg(size, seed=900 + i) for i, size in enumerate(BATCH_SIZES)]


def _batch(folder: Path, bases: list[bytes]) -> dict[str, bytes]:
    """The batch as camera files with names and contents of this case alone (the box files a
    frame it already has as a duplicate, so every case gets fresh bytes)."""
    salt = uuid.uuid4().bytes
    frames: dict[str, bytes] = {}
    folder.mkdir(parents=True, exist_ok=True)
    for i, base in enumerate(bases):
        name = f"DSC_{uuid.uuid4().hex[:6]}_{i}.jpg"
        data = _resalt(base, salt)
        (folder / name).write_bytes(data)
        frames[name] = data
    return frames


def _resalt(base: bytes, salt: bytes) -> bytes:
    """A copy of ``base`` with ``salt`` written into its first padding segment (same size)."""
    at = base.index(b"\xff\xfe") + 4  # the first COM segment's payload
    return base[:at] + salt + base[at + len(salt) :]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _expect_whole(box: BoxProcess, event: str, user: str, frames: dict[str, bytes], transcript: str) -> None:
    rejected = [r for r in box.rejections() if r["username"] == user]
    assert rejected == [], f"frames cut or refused: {rejected}\n{transcript[-3000:]}"
    photos = box.photos(event)
    got = sorted((p["original_name"].rsplit("/", 1)[-1], p["sha256"]) for p in photos)
    assert got == sorted((name, _sha(data)) for name, data in frames.items()), transcript[-3000:]


# --- the clients


class ImplicitFTPS(ftplib.FTP_TLS):
    """ftplib speaking TLS from the first byte (implicit FTPS)."""

    def connect(
        self, host: str = "", port: int = 0, timeout: float = -999, source_address: Any = None
    ) -> str:
        self.host, self.port = host, port
        raw = socket.create_connection((host, port), self.timeout)
        self.af = raw.family
        self.sock = self.context.wrap_socket(raw, server_hostname=host)
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


class ReusingMixin:
    """Resumes the control connection's TLS session on every data connection, and records
    whether the server took it."""

    reused: list[bool]
    context: ssl.SSLContext
    sock: socket.socket
    host: str
    _prot_p: bool

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # type: ignore[arg-type]
        if self._prot_p:
            assert isinstance(self.sock, ssl.SSLSocket)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            self.reused.append(conn.session_reused)
        return conn, size


class ReusingFTPS(ReusingMixin, ftplib.FTP_TLS):
    pass


class ReusingImplicitFTPS(ReusingMixin, ImplicitFTPS):
    pass


def _client_context(version: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if version is not None:
        context.minimum_version = context.maximum_version = TLS_VERSIONS[version]
    return context


def _ftplib(
    box: BoxProcess,
    mode: str,
    version: str | None,
    user: str,
    password: str,
    frames: dict[str, bytes],
    *,
    reuse: bool,
) -> str:
    client: ftplib.FTP
    if mode == "plain":
        client = ftplib.FTP(timeout=60)
        client.connect("127.0.0.1", box.ftp_port)
    elif mode == "explicit":
        client = (ReusingFTPS if reuse else ftplib.FTP_TLS)(context=_client_context(version), timeout=60)
        client.connect("127.0.0.1", box.ftp_port)
    else:
        client = (ReusingImplicitFTPS if reuse else ImplicitFTPS)(
            context=_client_context(version), timeout=60
        )
        client.connect("127.0.0.1", int(box.info["ftps_implicit_port"]))
    if reuse:
        client.reused = []  # type: ignore[attr-defined]
    replies = []
    try:
        client.login(user, password)
        if isinstance(client, ftplib.FTP_TLS):
            client.prot_p()
            assert isinstance(client.sock, ssl.SSLSocket)
            if version is not None:
                assert client.sock.version() == f"TLSv{version}"
        for name, data in frames.items():
            replies.append(client.storbinary(f"STOR {name}", io.BytesIO(data)))
    finally:
        client.close()
    assert all(reply.startswith("226") for reply in replies), replies
    if reuse:
        reused = client.reused  # type: ignore[attr-defined]
        assert reused == [True] * len(frames), f"data channels did not resume the control session: {reused}"
    return "\n".join(replies)


def _run(argv: list[str], timeout: float = 240) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    transcript = result.stdout + result.stderr
    assert result.returncode == 0, f"{argv[0]} exited {result.returncode}:\n{transcript[-4000:]}"
    return transcript


def _curl(box: BoxProcess, mode: str, version: str | None, user: str, password: str, folder: Path) -> str:
    files = ",".join(str(p) for p in sorted(folder.iterdir()))
    if mode == "implicit":
        url = f"ftps://127.0.0.1:{box.info['ftps_implicit_port']}/"
    else:
        url = f"ftp://127.0.0.1:{box.ftp_port}/"
    argv = [
        "curl",
        "-sS",
        "-v",
        "--max-time",
        "200",
        "--user",
        f"{user}:{password}",
        "-T",
        "{" + files + "}",
        url,
    ]
    if mode != "plain":
        argv[1:1] = ["-k", "--ssl-reqd"]
    if version == "1.2":
        argv[1:1] = ["--tlsv1.2", "--tls-max", "1.2"]
    elif version == "1.3":
        argv[1:1] = ["--tlsv1.3"]
    transcript = _run(argv)
    assert "< 451" not in transcript and "< 426" not in transcript, transcript[-3000:]
    if version is not None:
        assert f"TLSv{version}" in transcript, transcript[-3000:]
    return transcript


def _lftp(box: BoxProcess, mode: str, version: str | None, user: str, password: str, folder: Path) -> str:
    settings = [
        "set net:max-retries 1",  # one try: a cut upload is a failure, not a silent retry
        "set net:timeout 60",
        "set cmd:fail-exit yes",
        "set xfer:clobber yes",
    ]
    if mode == "plain":
        settings.append("set ftp:ssl-allow no")
        site = f"ftp://127.0.0.1:{box.ftp_port}"
    else:
        settings += [
            "set ssl:verify-certificate no",
            "set ftp:ssl-force yes",
            "set ftp:ssl-protect-data yes",
            "set ftps:initial-prot P",
        ]
        port = box.info["ftps_implicit_port"] if mode == "implicit" else box.ftp_port
        site = f"{'ftps' if mode == 'implicit' else 'ftp'}://127.0.0.1:{port}"
    if version is not None:
        settings.append(f"set ssl:priority NORMAL:-VERS-ALL:+VERS-TLS{version}")
    names = " ".join(p.name for p in sorted(folder.iterdir()))
    script = "; ".join([*settings, f"open -u {user},{password} {site}", f"lcd {folder}", f"mput {names}"])
    transcript = _run(["lftp", "-d", "-c", script])
    assert "<--- 451" not in transcript and "<--- 426" not in transcript, transcript[-3000:]
    return transcript


def _rclone(box: BoxProcess, mode: str, user: str, password: str, folder: Path, config: Path) -> str:
    obscured = subprocess.run(["rclone", "obscure", password], capture_output=True, text=True, check=True)
    port = box.info["ftps_implicit_port"] if mode == "implicit" else box.ftp_port
    argv = [
        "rclone",
        "copy",
        str(folder),
        ":ftp:DCIM/100EOS5D",  # a card folder rclone creates (listing a missing one first)
        "--config",
        str(config),
        "--ftp-host",
        "127.0.0.1",
        "--ftp-port",
        str(port),
        "--ftp-user",
        user,
        "--ftp-pass",
        obscured.stdout.strip(),
        "--transfers",
        "1",
        "--checkers",
        "1",
        "--ftp-concurrency",
        "2",
        "--retries",
        "1",
        "--low-level-retries",
        "1",
        "-vv",
    ]
    if mode == "explicit":
        argv += ["--ftp-explicit-tls", "--ftp-no-check-certificate"]
    elif mode == "implicit":
        argv += ["--ftp-tls", "--ftp-no-check-certificate"]
    return _run(argv)


MODES = [("plain", None), ("explicit", "1.2"), ("explicit", "1.3"), ("implicit", "1.2"), ("implicit", "1.3")]
CASES = [
    *[pytest.param("ftplib", m, v, id=f"ftplib-{m}-{v or 'clear'}") for m, v in MODES],
    *[pytest.param("ftplib-reuse", m, v, id=f"ftplib-reuse-{m}-{v}") for m, v in MODES if v],
    *[pytest.param("curl", m, v, id=f"curl-{m}-{v or 'clear'}") for m, v in MODES],
    *[pytest.param("lftp", m, v, id=f"lftp-{m}-{v or 'clear'}") for m, v in MODES],
    # Go's crypto/tls cannot be held to one version from rclone's flags: it negotiates TLS 1.3
    *[pytest.param("rclone", m, None, id=f"rclone-{m}") for m in ("plain", "explicit", "implicit")],
]


@pytest.mark.parametrize(("client", "mode", "version"), CASES)
def test_camera_client_uploads_whole_at_first_try(
    box: BoxProcess, batch_bases: list[bytes], tmp_path: Path, client: str, mode: str, version: str | None
) -> None:
    tool = client.split("-")[0]
    if tool != "ftplib" and shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (.ci/run installs it with apt-get)")
    event = box.new_event(f"matrix {client} {mode} {version}")
    user, password = box.new_key(event, camera=f"{client} {mode} {version}")
    folder = tmp_path / "card"
    frames = _batch(folder, batch_bases)

    if tool == "ftplib":
        transcript = _ftplib(box, mode, version, user, password, frames, reuse=client == "ftplib-reuse")
    elif tool == "curl":
        transcript = _curl(box, mode, version, user, password, folder)
    elif tool == "lftp":
        transcript = _lftp(box, mode, version, user, password, folder)
    else:
        transcript = _rclone(box, mode, user, password, folder, tmp_path / "rclone.conf")

    _expect_whole(box, event, user, frames, transcript)
