"""The box's own certificate authority and FTPS server certificate (cryptography).

On first start the box makes a local CA (10 years) and a server certificate signed by it
(2 years, renewed when under 30 days or when the names change). Cameras that need a root
imported (Sony) get ``ca.crt``; an operator may install their own chain instead (config
``tls.cert_file``). Keys are written 0600. Runs on the asyncio thread at start-up only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 730
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertPaths:
    ca_cert: Path
    cert: Path
    key: Path


def ensure_certificates(tls_dir: Path, hostnames: list[str]) -> CertPaths:
    """Create the CA and server certificate under ``tls_dir`` if missing or stale."""
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = CertPaths(tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key")
    ca_key_path = tls_dir / "ca.key"
    if not (paths.ca_cert.exists() and ca_key_path.exists()):
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_cert = _make_ca(ca_key)
        _write_key(ca_key_path, ca_key)
        _write_atomic(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        for stale in (paths.cert, paths.key):
            stale.unlink(missing_ok=True)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    names = list(dict.fromkeys([*hostnames, socket.gethostname(), "localhost"]))
    ips = sorted(_local_ips())
    if _needs_server_cert(paths, names, ips):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = _make_server(key, ca_cert, loaded, names, ips)
        _write_key(paths.key, key)
        _write_atomic(paths.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return paths


def _make_ca(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "shutterbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"shutterbox local CA {os.urandom(3).hex()}"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_server(
    key: rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    names: list[str],
    ips: list[str],
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _needs_server_cert(paths: CertPaths, names: list[str], ips: list[str]) -> bool:
    if not (paths.cert.exists() and paths.key.exists()):
        return True
    cert = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return True
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have_names = set(san.get_values_for_type(x509.DNSName))
    have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return not (set(names) <= have_names and set(ips) <= have_ips)


def _local_ips() -> set[str]:
    import psutil  # local import: only needed when (re)making a certificate

    ips = set()
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET:
                ips.add(addr.address)
    return ips


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(path, pem, 0o600)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
