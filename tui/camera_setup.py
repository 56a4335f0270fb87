"""What to enter on a Canon, Nikon or Sony body for one upload key, step by step.

Built from the key the box just created (``POST /api/keys``: ``username``, ``password`` and the
``connect`` object: host, port, implicit_tls_port, passive_ports, tls). The facts come from
docs/operator-guide.md, section 3 ("Connect a camera"); keep the two in step. Pure functions,
no I/O: the screen fetches the CA certificate and shows its fingerprint next to these steps.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from tui.status import DASH, dig

Brand = Literal["canon", "nikon", "sony"]
BRANDS: tuple[Brand, ...] = ("canon", "nikon", "sony")
BRAND_NAMES: dict[Brand, str] = {"canon": "Canon", "nikon": "Nikon", "sony": "Sony"}

CaNeed = Literal["required", "if asked"]

# What a camera label says about its maker: the brand's name first, then model names that only
# one maker uses (Canon EOS and R5/5D, Nikon Z9/D850, Sony Alpha/ILCE/A7).
BRAND_HINTS: tuple[tuple[Brand, re.Pattern[str]], ...] = (
    ("canon", re.compile(r"\bcanon\b")),
    ("nikon", re.compile(r"\bnikon\b")),
    ("sony", re.compile(r"\bsony\b")),
    ("canon", re.compile(r"\beos\b|\br\d{1,2}\b|\b\d{1,2}d\b")),
    ("nikon", re.compile(r"\bz ?\d{1,2}\b|\bd\d{3,4}\b")),
    ("sony", re.compile(r"\b(alpha|ilce)\b|\ba ?\d{1,4}[a-z]?\b")),
)


def guess_brand(label: str) -> Brand | None:
    """The brand a camera label names (``Nikon Z9 #2`` -> nikon), or None when it names none."""
    lowered = label.lower()
    return next((brand for brand, hint in BRAND_HINTS if hint.search(lowered)), None)


@dataclass(frozen=True)
class Connect:
    """The values every camera needs, as the box announced them for this key."""

    host: str
    port: str
    user: str
    password: str
    passive_ports: str
    implicit_tls_port: str | None

    @classmethod
    def from_key(cls, key: dict[str, Any]) -> Connect:
        def field(*path: str) -> str:
            value = dig(key, *path)
            return DASH if value is None or value == "" else str(value)

        implicit = dig(key, "connect", "implicit_tls_port")
        return cls(
            host=field("connect", "host"),
            port=field("connect", "port"),
            user=field("username"),
            password=field("password"),
            passive_ports=field("connect", "passive_ports"),
            implicit_tls_port=None if implicit in (None, "") else str(implicit),
        )


@dataclass(frozen=True)
class CameraSetup:
    brand: Brand
    title: str
    values: list[tuple[str, str]]
    steps: list[str]
    ca: CaNeed


def values(c: Connect) -> list[tuple[str, str]]:
    """The table every body shares (operator guide, "Values for every camera")."""
    implicit = (
        f"implicit FTPS on port {c.implicit_tls_port}"
        if c.implicit_tls_port
        else "implicit FTPS is off on this box"
    )
    return [
        ("Server / host", c.host),
        ("Port", c.port),
        ("Passive mode", "ON"),
        ("User name", c.user),
        ("Password", c.password),
        ("Security", f"plain FTP, or FTPS explicit (AUTH TLS) on port {c.port}; {implicit}; no SFTP"),
        ("Folder", "anything (folders are created as needed)"),
        ("Proxy", "OFF"),
    ]


def _canon(c: Connect, data_dir: str) -> list[str]:
    if c.implicit_tls_port:
        only_990 = f"if it only offers implicit FTPS, use port {c.implicit_tls_port}"
    else:
        only_990 = "if it only offers port 990, set ftp.implicit_tls_port = 990 on the box first"
    return [
        f"Server type: FTP, or FTPS if the body offers it (explicit FTPS on port {c.port}; {only_990}).",
        f"Address {c.host}, port {c.port}, passive mode ON, proxy OFF.",
        f"User name {c.user}, password {c.password}.",
        'Folder structure: the "Camera" layout that mirrors the card (DCIM/100EOSR5/...) works.',
        "The body probes the server by creating and removing a test folder (MKD + RMD): the box "
        "allows both. Err 46 means a server refused that probe.",
        "If the body asks for a root certificate for FTPS, import the box's CA certificate (below).",
    ]


def _nikon(c: Connect, data_dir: str) -> list[str]:
    return [
        "Server type: FTP (or FTPS, explicit, if the body offers it).",
        f"Address {c.host}, port {c.port}, passive mode ON, proxy OFF.",
        f"User name {c.user}, password {c.password}.",
        "Folder creation: allowed (nested and existing folders are accepted).",
        "Transmitters drop the connection when the meter sleeps and reconnect later: many short "
        "sessions are normal, and an upload cut midway is kept for the camera to resume.",
        "Z9 video (.NEV) can be several GB: raise ftp.max_file_size_mb (default 4096 MiB) for long clips.",
        "If the body asks for a root certificate for FTPS, import the box's CA certificate (below).",
    ]


def _sony(c: Connect, data_dir: str) -> list[str]:
    return [
        f"Export the box's CA certificate: shutterbox ca-cert --data {data_dir} > shutterbox-ca.crt "
        f"(it is also the file {data_dir}/tls/ca.crt).",
        "Copy shutterbox-ca.crt to the root of a memory card, put the card in the camera and import "
        "it with the root-certificate import function (see the camera's manual for the file name).",
        f"FTP Transfer settings: server {c.host}, port {c.port}, user {c.user}, password {c.password}.",
        'Passive mode ON; "Secure Protocol" ON (explicit FTPS on the same port).',
        '"Same-name file: don\'t overwrite" is fine either way.',
        '"Directory hierarchy: same as camera" works (folders are created as needed).',
        "The camera checks the certificate against the box's address: after the box gets a new "
        "address, restart the box. The CA stays the same, so nothing is imported again.",
    ]


def setup(brand: Brand, key: dict[str, Any], data_dir: str = "DIR") -> CameraSetup:
    """The setup of ``key`` on a ``brand`` body; ``data_dir`` is the box's data folder."""
    c = Connect.from_key(key)
    steps = {"canon": _canon, "nikon": _nikon, "sony": _sony}[brand](c, data_dir)
    ca: CaNeed = "required" if brand == "sony" else "if asked"
    return CameraSetup(brand, f"{BRAND_NAMES[brand]} body", values(c), steps, ca)


def fingerprint(pem: str) -> str | None:
    """SHA-256 of the first certificate in ``pem``, as ``AB:CD:...`` (what cameras show)."""
    lines = pem.strip().splitlines()
    try:
        start = lines.index("-----BEGIN CERTIFICATE-----")
        end = lines.index("-----END CERTIFICATE-----", start)
        der = base64.b64decode("".join(lines[start + 1 : end]), validate=True)
    except (ValueError, binascii.Error):
        return None
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
