"""FTPS as cameras speak it: explicit (AUTH TLS) and implicit, protocol and cipher policy,
data-channel session reuse, the box's own CA, and a TLS data channel cut without close-notify."""

from __future__ import annotations

import ftplib
import hashlib
import socket
import ssl
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.boxproc import BoxProcess, make_box, store
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.e2e


def _ca_file(box: BoxProcess, folder: Path) -> Path:
    result = box.run_cli("ca-cert")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-----BEGIN CERTIFICATE-----"), result.stdout[:200]
    path = folder / "shutterbox-ca.pem"
    path.write_text(result.stdout, encoding="ascii")
    return path


def _insecure_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}.jpg"


def _tls_client(box: BoxProcess, context: ssl.SSLContext, host: str = "127.0.0.1") -> ftplib.FTP_TLS:
    client = ftplib.FTP_TLS(context=context, timeout=20)
    client.connect(host, box.ftp_port)
    return client


class ResumingFTP(ftplib.FTP_TLS):
    """A camera that resumes the control connection's TLS session on every data connection."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reused: list[bool | None] = []

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            assert isinstance(self.sock, ssl.SSLSocket)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            self.reused.append(conn.session_reused)
        return conn, size


@pytest.fixture(scope="module")
def strict_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxProcess]:
    """A box with an implicit-FTPS listener and plain FTP logins refused (``tls_required``)."""
    running = make_box(
        tmp_path_factory.mktemp("strict") / "data", ftp__implicit_tls_port="0", ftp__tls_required="true"
    ).start()
    yield running
    code = running.stop()
    assert code == 0, f"box exited with {code}:\n{running.log[-4000:]}"


# --- explicit FTPS, verified against the box's own CA


def test_explicit_ftps_verifies_against_box_ca(box: BoxProcess, tmp_path: Path) -> None:
    event = box.new_event("tls verified")
    user, password = box.new_key(event, camera="sony a1")
    context = ssl.create_default_context(cafile=str(_ca_file(box, tmp_path)))
    data = jpeg_bytes(seed=101)
    name = _name("verified")

    client = _tls_client(box, context, host="localhost")
    try:
        client.auth()
        assert isinstance(client.sock, ssl.SSLSocket)
        client.login(user, password)
        client.prot_p()
        reply = store(client, name, data)
        assert reply.startswith("226"), reply
        listing = client.nlst()
    finally:
        client.close()

    assert name in [entry.rsplit("/", 1)[-1] for entry in listing]
    photos = box.photos(event)
    assert [(p["original_name"], p["sha256"], p["camera"]) for p in photos] == [(name, _sha(data), "sony a1")]


def test_verification_fails_for_a_name_not_in_the_certificate(box: BoxProcess, tmp_path: Path) -> None:
    # Guards the test above: the CA check really runs (a wrong name is refused by the client).
    context = ssl.create_default_context(cafile=str(_ca_file(box, tmp_path)))
    client = ftplib.FTP_TLS(context=context, timeout=20)
    client.connect("127.0.0.1", box.ftp_port)
    client.host = "not-the-box.invalid"  # what AUTH TLS checks the certificate against
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            client.auth()
    finally:
        client.close()


# --- protocol versions and ciphers


def test_tls_1_1_client_is_refused(box: BoxProcess) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are deprecated in ssl
        context = _insecure_context()
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client itself offer TLS 1.1
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    client = _tls_client(box, context)
    try:
        with pytest.raises(ssl.SSLError) as info:
            client.auth()
    finally:
        client.close()
    # The server said no (a protocol_version alert), not the client's own configuration.
    assert info.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", info.value


def test_tls_1_2_with_ecdhe_rsa_aes128_gcm(box: BoxProcess) -> None:
    event = box.new_event("tls12")
    user, password = box.new_key(event)
    context = _insecure_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    data = jpeg_bytes(seed=102)

    client = _tls_client(box, context)
    try:
        client.auth()
        assert isinstance(client.sock, ssl.SSLSocket)
        version, cipher = client.sock.version(), client.sock.cipher()
        client.login(user, password)
        client.prot_p()
        reply = store(client, _name("tls12"), data)
    finally:
        client.close()

    assert version == "TLSv1.2"
    assert cipher is not None
    assert cipher[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    assert reply.startswith("226"), reply
    assert [p["sha256"] for p in box.photos(event)] == [_sha(data)]


def test_tls_1_3_works(box: BoxProcess) -> None:
    event = box.new_event("tls13")
    user, password = box.new_key(event)
    context = _insecure_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    data = jpeg_bytes(seed=103)

    client = _tls_client(box, context)
    try:
        client.auth()
        assert isinstance(client.sock, ssl.SSLSocket)
        version = client.sock.version()
        client.login(user, password)
        client.prot_p()
        reply = store(client, _name("tls13"), data)
    finally:
        client.close()

    assert version == "TLSv1.3"
    assert reply.startswith("226"), reply
    assert [p["sha256"] for p in box.photos(event)] == [_sha(data)]


# --- data channel session reuse: allowed, never required


def test_data_channel_resuming_the_control_session_is_served(box: BoxProcess) -> None:
    event = box.new_event("resume")
    user, password = box.new_key(event)
    context = _insecure_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2  # classic session-id/ticket resumption
    frames = [jpeg_bytes(seed=104), jpeg_bytes(seed=105)]

    client = ResumingFTP(context=context, timeout=20)
    client.connect("127.0.0.1", box.ftp_port)
    try:
        client.auth()
        client.login(user, password)
        client.prot_p()
        replies = [store(client, _name("resume"), data) for data in frames]
    finally:
        client.close()

    assert all(reply.startswith("226") for reply in replies), replies
    assert client.reused == [True, True], "the server did not resume the control session's TLS session"
    assert sorted(p["sha256"] for p in box.photos(event)) == sorted(_sha(d) for d in frames)


def test_data_channel_without_session_reuse_is_served(box: BoxProcess) -> None:
    event = box.new_event("no resume")
    user, password = box.new_key(event)
    data = jpeg_bytes(seed=106)
    client = box.ftp(user, password, tls=True)  # stock ftplib: a fresh TLS session per data connection
    try:
        reply = store(client, _name("fresh"), data)
    finally:
        client.close()
    assert reply.startswith("226"), reply
    assert [p["sha256"] for p in box.photos(event)] == [_sha(data)]


# --- the box's CA


def test_exported_ca_is_a_ca_and_signed_the_served_certificate(box: BoxProcess, tmp_path: Path) -> None:
    ca = x509.load_pem_x509_certificate(_ca_file(box, tmp_path).read_bytes())
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is True
    assert constraints.critical

    client = _tls_client(box, _insecure_context())
    try:
        client.auth()
        assert isinstance(client.sock, ssl.SSLSocket)
        der = client.sock.getpeercert(binary_form=True)
    finally:
        client.close()
    assert der is not None
    served = x509.load_der_x509_certificate(der)

    assert served.issuer == ca.subject
    served.verify_directly_issued_by(ca)  # raises if the signature is not the CA's
    assert served.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)


# --- implicit FTPS


def test_implicit_ftps_upload_with_curl(strict_box: BoxProcess, tmp_path: Path) -> None:
    port = strict_box.info["ftps_implicit_port"]
    assert isinstance(port, int)
    assert port > 0
    assert port != strict_box.ftp_port
    event = strict_box.new_event("implicit")
    user, password = strict_box.new_key(event, camera="nikon z9")
    data = jpeg_bytes(seed=107)
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(data)

    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "30",
            "-k",
            "--user",
            f"{user}:{password}",
            "-T",
            str(frame),
            f"ftps://127.0.0.1:{port}/DSC_0001.jpg",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    photos = strict_box.photos(event)
    assert [(p["original_name"], p["sha256"], p["camera"]) for p in photos] == [
        ("DSC_0001.jpg", _sha(data), "nikon z9")
    ]


def test_implicit_port_speaks_tls_first_never_clear_text(strict_box: BoxProcess) -> None:
    port = int(strict_box.info["ftps_implicit_port"])

    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        plain.settimeout(1.5)
        try:
            greeting = plain.recv(1024)
        except TimeoutError:
            greeting = b""
        assert not greeting.startswith(b"220"), greeting
        plain.sendall(b"USER someone\r\n")
        try:
            answer = plain.recv(1024)
        except (TimeoutError, ConnectionResetError):
            answer = b""
        assert b"220" not in answer
        assert b"331" not in answer

    # ...while a TLS client on the same port gets the banner inside TLS.
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        _insecure_context().wrap_socket(raw) as tls,
    ):
        banner = tls.recv(1024)
    assert banner.startswith(b"220"), banner


# --- tls_required


def test_tls_required_refuses_plain_login_and_serves_ftps(strict_box: BoxProcess) -> None:
    event = strict_box.new_event("tls only")
    user, password = strict_box.new_key(event)

    plain = ftplib.FTP(timeout=20)
    plain.connect("127.0.0.1", strict_box.ftp_port)
    try:
        with pytest.raises(ftplib.error_perm) as info:
            plain.login(user, password)
    finally:
        plain.close()
    assert str(info.value).startswith("550"), info.value
    assert "TLS" in str(info.value)

    data = jpeg_bytes(seed=108)
    client = strict_box.ftp(user, password, tls=True)
    try:
        reply = store(client, _name("tlsonly"), data)
    finally:
        client.close()
    assert reply.startswith("226"), reply
    assert [p["sha256"] for p in strict_box.photos(event)] == [_sha(data)]


# --- a TLS data channel cut without close-notify


def test_data_channel_cut_without_close_notify_is_not_acknowledged(box: BoxProcess) -> None:
    event = box.new_event("cut")
    user, password = box.new_key(event)
    data = jpeg_bytes(seed=109)
    half = len(data) // 2
    name = _name("cut")

    client = box.ftp(user, password, tls=True)
    try:
        client.voidcmd("TYPE I")
        conn, _ = client.ntransfercmd(f"STOR {name}")
        assert isinstance(conn, ssl.SSLSocket)
        conn.sendall(data[:half])
        # SSLSocket.shutdown drops the TLS layer and shuts the TCP socket: no close_notify is sent,
        # exactly what a camera whose WiFi dropped does.
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()
        with pytest.raises(ftplib.Error) as info:
            client.voidresp()
    finally:
        client.close()

    reply = str(info.value)
    assert reply[:3] in {"426", "451"}, reply
    assert box.photos(event) == []
    rejected = [r for r in box.rejections() if r["original_name"] == name]
    assert len(rejected) == 1, rejected
    assert rejected[0]["username"] == user
    assert rejected[0]["event"] == event
    assert rejected[0]["size"] == half
