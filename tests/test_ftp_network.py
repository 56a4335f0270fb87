"""Network-facing settings: the operator's own certificate, the NAT masquerade address, data
connections from a foreign address, and a stalled data channel."""

from __future__ import annotations

import datetime as dt
import ftplib
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.boxproc import make_box, store
from tests.conftest import jpeg_bytes


def own_certificate(folder: Path) -> tuple[Path, Path, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "venue-operator.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "own.crt", folder / "own.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, cert


def test_operator_certificate_is_served_and_exported(tmp_path: Path) -> None:
    cert_path, key_path, cert = own_certificate(tmp_path)
    box = make_box(tmp_path / "data", tls__cert_file=str(cert_path), tls__key_file=str(key_path)).start()
    try:
        user, password = box.new_key(camera="own-cert")
        exported = box.run_cli("ca-cert")
        assert exported.returncode == 0
        assert x509.load_pem_x509_certificate(exported.stdout.encode()) == cert
        context = ssl.create_default_context(cafile=str(cert_path))  # verifies chain and name
        with ftplib.FTP_TLS(context=context, timeout=10) as ftp:
            ftp.connect("localhost", box.ftp_port)
            ftp.auth()
            served = x509.load_der_x509_certificate(ftp.sock.getpeercert(binary_form=True))
            assert served == cert
            ftp.login(user, password)
            ftp.prot_p()
            assert store(ftp, "own.jpg", jpeg_bytes(seed=400)).startswith("226")
    finally:
        box.stop()


def test_masquerade_address_is_announced_in_pasv(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", ftp__masquerade_address="192.0.2.10").start()  # TEST-NET-1
    try:
        user, password = box.new_key(camera="nat")
        with box.ftp(user, password) as ftp:
            host, _ = ftplib.parse227(ftp.sendcmd("PASV"))
            assert host == "192.0.2.10"
            assert ftp.sendcmd("EPSV").startswith("229"), "EPSV carries no address and still works"
    finally:
        box.stop()


@pytest.mark.parametrize("permit", [False, True])
def test_data_connection_from_a_foreign_address(tmp_path: Path, permit: bool) -> None:
    """Control from 127.0.0.1, data from 127.0.0.2 (both loopback): refused unless permitted."""
    box = make_box(tmp_path / "data", ftp__permit_foreign_addresses=str(permit).lower()).start()
    try:
        user, password = box.new_key(camera="fxp")
        frame = jpeg_bytes(seed=401)
        with box.ftp(user, password) as ftp:
            ftp.voidcmd("TYPE I")
            _, port = ftplib.parse227(ftp.sendcmd("PASV"))
            data = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0), timeout=10)
            if not permit:
                with pytest.raises(ftplib.error_temp, match=r"^425 Rejected data connection from foreign"):
                    ftp.getresp()
                data.close()
                assert ftp.sendcmd("NOOP").startswith("200")
                return
            ftp.putcmd("STOR foreign.jpg")
            assert ftp.getresp()[:3] in {"125", "150"}
            data.sendall(frame)
            data.close()
            assert ftp.voidresp().startswith("226")
        assert [p["original_name"] for p in box.photos() if p["username"] == user] == ["foreign.jpg"]
    finally:
        box.stop()


def test_stalled_data_channel_is_aborted_and_kept_for_resume(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", ftp__data_timeout="5").start()
    try:
        user, password = box.new_key(camera="stall")
        frame = jpeg_bytes(1600, 1200, seed=402)
        with box.ftp(user, password, timeout=30) as ftp:
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("STOR stall.jpg")
            conn.sendall(frame[: len(frame) // 2])
            reply = ftp.getline()  # the WiFi froze: no bytes, no FIN; the box gives up after 5 s
            conn.close()
            assert reply[:3] in {"421", "426"}, reply
        assert all(p["username"] != user for p in box.photos())
        [rejection] = [r for r in box.rejections() if r["username"] == user]
        assert rejection["size"] == len(frame) // 2
        with box.ftp(user, password) as again:
            assert again.size("stall.jpg") == len(frame) // 2
    finally:
        box.stop()
