"""``shutterbox doctor``: what commonly breaks at a venue, checked, one line each: OK, WARN or FAIL
and what to do (SKIP: the check does not apply, and why).

In check order: the FTP listener answers on the LAN address (not only loopback); the passive
range is free (or held by the box's own transfers); the masquerade address is one of the box's
own; NTP set the clock (``timedatectl``; S3 refuses requests signed more than 15 minutes off);
free disk above ``storage.reserve_mb``; the CA certificate's days left; no other device answers
for the box's mDNS name; the uplink resolves and reaches S3 (when cloud sync is on); cameras
that logged in but never uploaded. The first and the last need the running box
(``GET /api/doctor`` runs them all in the daemon, which knows its ports, sessions and logs); with
the box stopped the CLI runs the others itself and says which it could not.

Every check blocks (sockets, a subprocess, DNS, the disk): the daemon runs each on a worker
thread (``asyncio.to_thread``), the CLI on its main thread. A check never raises: what it could
not find out is a WARN that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import psutil
from cryptography import x509
from zeroconf import AddressResolverIPv4, InterfaceChoice, Zeroconf  # type: ignore[attr-defined]  # not in __all__

from appliance.guest.address import WILDCARDS, lan_address
from appliance.mdns import box_name
from appliance.plaintext import Column, table

if TYPE_CHECKING:
    from appliance.config import Settings
    from appliance.layout import Layout
    from appliance.services import Services

logger = logging.getLogger(__name__)

Level = Literal["OK", "WARN", "FAIL", "SKIP"]
TIMEOUT = 3.0  # seconds for one connect, one answer, one subprocess
MDNS_SECONDS = 1.5  # how long the LAN is asked who answers for the box's name
CA_WARN_DAYS = 30
EARLIEST_YEAR = 2025  # a clock before this was never set (a Pi without RTC boots in the past)
S3_SKEW = "S3 refuses requests signed more than 15 minutes off"
NTP_QUERY = ("show", "-p", "NTPSynchronized", "--value")  # timedatectl's one-word answer
LOGIN_LOGGER = "appliance.ftp.handlers"  # its "<user> (<camera>) logged in from <ip>" lines
NEEDS_BOX = "needs the running box (start it: shutterbox up)"


@dataclass(frozen=True)
class Finding:
    """One check's line: ``check`` names it, ``text`` says what was found and, unless OK, what
    to do; ``needs_box``: only the running box can run it."""

    check: str
    level: Level
    text: str
    needs_box: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def report(findings: Iterable[Finding], *, box_running: bool) -> dict[str, Any]:
    """The answer of ``GET /api/doctor`` (and of ``doctor --json``): ``ok`` when nothing FAILs."""
    checks = [f.to_json() for f in findings]
    return {
        "box_running": box_running,
        "ok": all(c["level"] != "FAIL" for c in checks),
        "checks": checks,
    }


DOCTOR_COLUMNS = [
    Column("result", lambda c: str(c["level"])),
    Column("check", lambda c: str(c["check"])),
    Column("found, and what to do", lambda c: str(c["text"])),
]


def lines(result: dict[str, Any]) -> list[str]:
    """``report``'s answer as aligned plain text, a last line summing it up."""
    checks: list[dict[str, Any]] = result["checks"]
    out = table(checks, DOCTOR_COLUMNS)
    counts = {level: sum(1 for c in checks if c["level"] == level) for level in ("FAIL", "WARN")}
    summary = f"{counts['FAIL']} FAIL, {counts['WARN']} WARN: "
    if counts["FAIL"]:
        out += ["", summary + "fix the FAIL lines before the cameras arrive"]
    elif counts["WARN"]:
        out += ["", summary + "nothing stops the cameras, but read the WARN lines"]
    else:
        out += ["", "nothing found that would stop the cameras"]
    if not result["box_running"]:
        out.append("(the box is not running: the checks marked SKIP need it)")
    return out


# --- each check


def ftp_listener(settings: Settings, ports: dict[str, int], lan: str) -> Finding:
    """The FTP listener answers ``220`` on the LAN address, not only on loopback [running box]."""
    name = "FTP on the LAN"
    host = settings.ftp.host
    if host not in WILDCARDS and _is_loopback(host):
        return Finding(
            name,
            "FAIL",
            f"FTP listens on {host} only: cameras on the LAN cannot reach it; set ftp.host = 0.0.0.0",
            needs_box=True,
        )
    target = lan if host in WILDCARDS else host
    if _is_loopback(target):
        return Finding(
            name,
            "WARN",
            "the box has no LAN address: connect it to the venue's network (cable or WiFi)",
            needs_box=True,
        )
    port = ports.get("ftp", settings.ftp.port)
    try:
        with socket.create_connection((target, port), timeout=TIMEOUT) as conn:
            conn.settimeout(TIMEOUT)
            greeting = conn.recv(512).decode("ascii", "replace").strip()
            with contextlib.suppress(OSError):
                conn.sendall(b"QUIT\r\n")
    except OSError as exc:
        return Finding(
            name,
            "FAIL",
            f"nothing answers on {target}:{port} ({_reason(exc)}): check the box's firewall"
            f" and that ftp.host is 0.0.0.0 or {target}",
            needs_box=True,
        )
    if not greeting.startswith("220"):
        return Finding(
            name, "FAIL", f"{target}:{port} answered {greeting[:60]!r}, not FTP's 220", needs_box=True
        )
    return Finding(name, "OK", f"answers on {target}:{port}", needs_box=True)


def passive_ports(settings: Settings, own: set[int], cameras: int | None = None) -> Finding:
    """Every port of ``ftp.passive_ports`` can be bound, or is held by the box itself (``own``:
    its transfers in flight); a port another program holds draws a 425 when a transfer picks it."""
    name = "passive ports"
    span = settings.ftp.passive_ports
    ports = settings.ftp.passive_range
    host = settings.ftp.host if settings.ftp.host not in WILDCARDS else ""
    busy = [port for port in ports if port not in own and not _bindable(host, port)]
    if len(busy) == len(ports):
        return Finding(
            name,
            "FAIL",
            f"every port of {span} is taken by another program{_holders(busy)}: no camera can"
            " transfer (425); stop it or move ftp.passive_ports",
        )
    if busy:
        shown = ", ".join(str(p) for p in busy[:5]) + (", ..." if len(busy) > 5 else "")
        return Finding(
            name,
            "WARN",
            f"{len(busy)} of {len(ports)} passive ports ({shown}) are taken by another program"
            f"{_holders(busy)}: a transfer that picks one fails; stop it or move ftp.passive_ports",
        )
    if cameras is not None and len(ports) < 2 * cameras:
        return Finding(
            name,
            "WARN",
            f"{span} is {len(ports)} ports for {cameras} camera keys: widen ftp.passive_ports to"
            f" at least {2 * cameras}",
        )
    return Finding(name, "OK", f"{span}: all {len(ports)} free for transfers")


def masquerade(settings: Settings, addresses: dict[str, str]) -> Finding:
    """``ftp.masquerade_address`` (sent in PASV replies) is one of the box's own addresses
    (``addresses``: IPv4 address -> interface); else cameras log in and every transfer stalls."""
    name = "masquerade address"
    address = settings.ftp.masquerade_address
    if address is None:
        return Finding(name, "OK", "not set: PASV replies carry the address each camera connected to")
    if _is_loopback(address):
        return Finding(
            name,
            "FAIL",
            f"ftp.masquerade_address is {address}, a loopback address: cameras would connect to"
            " themselves; unset it",
        )
    if address in addresses:
        return Finding(name, "OK", f"{address} is this box's address on {addresses[address]}")
    own = ", ".join(a for a in sorted(addresses) if not _is_loopback(a)) or "none"
    words = (
        f"ftp.masquerade_address {address} is not an address of this box (its addresses: {own}):"
        " cameras log in, then every transfer stalls; unset it"
    )
    if ipaddress.ip_address(address).is_global:  # behind NAT the router's outside address is right
        return Finding(name, "WARN", words + f" unless cameras reach the box through NAT at {address}")
    return Finding(name, "FAIL", words + " or set it to the address cameras use")


def ntp_synchronized(run: Callable[[Sequence[str]], str | None] | None = None) -> bool | None:
    """Whether NTP set the clock, from ``timedatectl``; None when it cannot tell (no timedatectl,
    no systemd). ``run`` (tests) answers the query instead."""
    answer = (run or _timedatectl)(NTP_QUERY)
    return {"yes": True, "no": False}.get((answer or "").strip().lower())


def _timedatectl(args: Sequence[str]) -> str | None:
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - a fixed query of the system's own timedatectl
            [exe, *args], capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def clock(settings: Settings, synced: bool | None, now: dt.datetime | None = None) -> Finding:
    """The clock is set: NTP synchronised it and the year is not in the past."""
    name = "clock"
    now = now or dt.datetime.now(dt.UTC)
    shown = now.strftime("%Y-%m-%d %H:%M UTC")
    cloud = settings.cloud.bucket is not None
    if now.year < EARLIEST_YEAR:
        return Finding(
            name,
            "FAIL",
            f"the clock says {shown}: it was never set; give the box an uplink (NTP sets it) or set"
            f" it by hand (sudo date -s '...'); {S3_SKEW} and photos get wrong times",
        )
    if synced is None:
        return Finding(
            name,
            "WARN",
            f"cannot tell whether NTP set the clock (timedatectl does not say); it says {shown}:"
            " compare it with a phone",
        )
    if not synced:
        return Finding(
            name,
            "FAIL" if cloud else "WARN",
            f"NTP has not synchronised the clock (it says {shown}): {S3_SKEW}; give the box an"
            " uplink, or see timedatectl timesync-status",
        )
    return Finding(name, "OK", f"synchronised by NTP ({shown})")


def disk(settings: Settings, root: Path) -> Finding:
    """Free space on the data disk above ``storage.reserve_mb`` (below it cameras get 452)."""
    name = "disk reserve"
    path = root
    while not path.exists() and path != path.parent:
        path = path.parent
    free = shutil.disk_usage(path).free
    reserve = settings.storage.reserve_mb << 20
    words = f"{_mb(free)} free, reserve {settings.storage.reserve_mb} MB (storage.reserve_mb)"
    if free < reserve:
        return Finding(
            name,
            "FAIL",
            f"{words}: cameras are refused (452); free space on {path} or lower storage.reserve_mb",
        )
    if free - reserve < settings.alerts.disk_warning_mb << 20:
        return Finding(name, "WARN", f"{words}: {_mb(free - reserve)} left before cameras are refused")
    return Finding(name, "OK", words)


def ca_certificate(settings: Settings, tls_dir: Path, now: dt.datetime | None = None) -> Finding:
    """Days left of the certificate cameras trust: ``tls.cert_file``'s chain, else the box's CA."""
    name = "CA certificate"
    own = settings.tls.cert_file is None
    path = tls_dir / "ca.crt" if settings.tls.cert_file is None else settings.tls.cert_file
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except FileNotFoundError:
        if own:
            return Finding(
                name, "WARN", f"no CA certificate at {path} yet: the box makes it on its first start"
            )
        return Finding(name, "FAIL", f"tls.cert_file {path} does not exist")
    except (OSError, ValueError) as exc:
        return Finding(name, "FAIL", f"cannot read {path}: {_reason(exc)}")
    now = now or dt.datetime.now(dt.UTC)
    ends = min(c.not_valid_after_utc for c in certificates)
    days = (ends - now).days
    renew = (
        f"delete {tls_dir}/ca.* and restart the box, then import the new ca.crt on the cameras"
        if own
        else "renew the chain tls.cert_file names"
    )
    if ends <= now:
        return Finding(
            name, "FAIL", f"{path} expired on {ends:%Y-%m-%d}: FTPS cameras refuse the box; {renew}"
        )
    if days < CA_WARN_DAYS:
        return Finding(name, "WARN", f"{path} expires on {ends:%Y-%m-%d}, in {days} days: {renew}")
    return Finding(name, "OK", f"valid until {ends:%Y-%m-%d} ({days} days)")


def mdns_name(settings: Settings, addresses: Iterable[str]) -> Finding:
    """No other device on the LAN answers for ``<mdns name>.local`` (asked over mDNS)."""
    name = "mDNS name"
    if not settings.mdns.enabled:
        return Finding(name, "SKIP", "mDNS off (mdns.enabled = false)")
    host = f"{box_name(settings.mdns)}.local"
    try:
        answered = _ask_mdns(host, settings.mdns.interfaces)
    except (OSError, RuntimeError, ValueError) as exc:  # zeroconf could not bind or send
        return Finding(name, "WARN", f"could not ask the LAN who answers for {host}: {_reason(exc)}")
    foreign = sorted(set(answered) - set(addresses))
    if foreign:
        return Finding(
            name,
            "FAIL",
            f"another device answers for {host} at {', '.join(foreign)}: cameras and phones may reach"
            " it instead; set mdns.name to another name",
        )
    return Finding(name, "OK", f"no other device answers for {host}")


def _ask_mdns(host: str, interfaces: list[str]) -> list[str]:
    """The IPv4 addresses devices answer for ``host`` (asked where the box advertises)."""
    zc = Zeroconf(interfaces=interfaces or InterfaceChoice.All)
    try:
        resolver = AddressResolverIPv4(f"{host}.")
        resolver.request(zc, MDNS_SECONDS * 1000)
        return [str(a) for a in resolver.parsed_addresses()]
    finally:
        zc.close()


def cloud(settings: Settings) -> Finding:
    """The uplink resolves the S3 endpoint and reaches it (only with cloud sync on)."""
    name = "uplink to S3"
    if settings.cloud.bucket is None:
        return Finding(name, "SKIP", "cloud sync off: skipped")
    url = urlsplit(settings.cloud.s3_endpoint_url or f"https://s3.{settings.cloud.region}.amazonaws.com")
    host = url.hostname or ""
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return Finding(
            name,
            "FAIL",
            f"cannot resolve {host} ({_reason(exc)}): the uplink or its DNS is down; photos wait on"
            " the box until it is back",
        )
    address = str(found[0][4][0])
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT):
            pass
    except OSError as exc:
        return Finding(
            name,
            "FAIL",
            f"{host} resolves ({address}) but does not answer on port {port} ({_reason(exc)}):"
            " check the uplink (a captive portal, a firewall)",
        )
    took = (time.monotonic() - started) * 1000
    return Finding(name, "OK", f"{host} ({address}) answers on port {port} in {took:.0f} ms")


def cameras(keys: list[dict[str, Any]], logins: set[str]) -> Finding:
    """Keys that logged in (a live session, or a login since the box started) and never sent a
    frame: the camera's upload folder or its TLS setting is usually wrong [running box]."""
    name = "cameras"
    silent = [
        k
        for k in keys
        if not k["revoked"] and not k["frames_total"] and (k["connected"] or k["username"] in logins)
    ]
    if silent:
        shown = "; ".join(
            f"{k['camera']} ({k['username']})"
            + (f", last error: {k['last_error']}" if k["last_error"] else "")
            for k in silent[:5]
        )
        return Finding(
            name,
            "WARN",
            f"logged in but never uploaded: {shown}: check the camera's upload folder (leave it"
            " empty or /) and its FTPS setting (shutterbox cameras)",
            needs_box=True,
        )
    if not any(k["connected"] or k["username"] in logins for k in keys):
        return Finding(name, "OK", "no camera has logged in since the box started", needs_box=True)
    return Finding(name, "OK", "every camera that logged in has uploaded", needs_box=True)


# --- running them


def box_addresses() -> dict[str, str]:
    """The box's IPv4 addresses, each with its interface's name."""
    found: dict[str, str] = {}
    for interface, addresses in psutil.net_if_addrs().items():
        for address in addresses:
            if address.family == socket.AF_INET:
                found.setdefault(address.address, interface)
    return found


def offline(settings: Settings, layout: Layout) -> list[Finding]:
    """The checks the CLI runs with the box stopped (nothing of the box holds a port then);
    those that need the box are SKIP, saying so."""
    addresses = box_addresses()
    return [
        Finding("FTP on the LAN", "SKIP", NEEDS_BOX, needs_box=True),
        _guarded("passive ports", lambda: passive_ports(settings, set())),
        _guarded("masquerade address", lambda: masquerade(settings, addresses)),
        _guarded("clock", lambda: clock(settings, ntp_synchronized())),
        _guarded("disk reserve", lambda: disk(settings, layout.root)),
        _guarded("CA certificate", lambda: ca_certificate(settings, layout.tls)),
        _guarded("mDNS name", lambda: mdns_name(settings, addresses)),
        _guarded("uplink to S3", lambda: cloud(settings)),
        Finding("cameras", "SKIP", NEEDS_BOX, needs_box=True),
    ]


async def on_box(services: Services, keys: list[dict[str, Any]]) -> list[Finding]:
    """Every check, in the running box (``keys``: ``StatusReport.cameras()``); the blocking ones
    at once, each on a worker thread."""
    s = services
    settings = s.settings
    addresses = await asyncio.to_thread(box_addresses)
    active = sum(1 for k in keys if not k["revoked"])
    checks: list[tuple[str, Callable[[], Finding]]] = [
        ("FTP on the LAN", lambda: ftp_listener(settings, s.ftp.ports, lan_address())),
        ("passive ports", lambda: passive_ports(settings, _own_ports(), active)),
        ("masquerade address", lambda: masquerade(settings, addresses)),
        ("clock", lambda: clock(settings, ntp_synchronized())),
        ("disk reserve", lambda: disk(settings, s.layout.root)),
        ("CA certificate", lambda: ca_certificate(settings, s.layout.tls)),
        ("mDNS name", lambda: mdns_name(settings, addresses)),
        ("uplink to S3", lambda: cloud(settings)),
    ]
    findings = list(await asyncio.gather(*(asyncio.to_thread(_guarded, n, c) for n, c in checks)))
    logins = logged_in(s.logs.since(0, 100_000)["lines"])
    findings.append(_guarded("cameras", lambda: cameras(keys, logins)))
    return findings


def logged_in(log_lines: Iterable[dict[str, Any]]) -> set[str]:
    """Usernames with a login in the box's recent log lines (``GET /api/logs``'s ring)."""
    users = set()
    for line in log_lines:
        message = str(line.get("message", ""))
        if line.get("logger") == LOGIN_LOGGER and " logged in from " in message:
            users.add(message.split(" ", 1)[0])
    return users


def _guarded(name: str, check: Callable[[], Finding]) -> Finding:
    """Run one check; one that fails unexpectedly is a WARN saying so, never the doctor's end."""
    try:
        return check()
    except Exception as exc:  # the doctor reports every check, whatever breaks one
        logger.warning("doctor: the %s check failed: %s", name, exc, exc_info=True)
        return Finding(name, "WARN", f"could not check: {_reason(exc)}")


def _own_ports() -> set[int]:
    """Local TCP ports this process holds (the box's own passive sockets, its listeners)."""
    try:
        return {c.laddr.port for c in psutil.Process().net_connections(kind="tcp") if c.laddr}
    except psutil.Error:
        return set()


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the FTP server's own binds
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _holders(ports: list[int]) -> str:
    """`` (pid 123, python3)`` for the processes holding ``ports``, when the system says."""
    wanted = set(ports)
    names: dict[int, str] = {}
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port in wanted and conn.pid and conn.pid != os.getpid():
                with contextlib.suppress(psutil.Error):
                    names[conn.pid] = psutil.Process(conn.pid).name()
    except psutil.Error:
        return ""
    return f" ({', '.join(f'pid {pid}, {name}' for pid, name in sorted(names.items()))})" if names else ""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mb(size: int) -> str:
    return f"{size / (1 << 30):.1f} GB" if size >= 1 << 30 else f"{size >> 20} MB"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
