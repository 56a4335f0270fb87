"""FTP ingest benchmark: shutterbox against Debian's vsftpd and pure-ftpd, same clients, same
files, one run.

What it measures
    N concurrent FTP clients (default 8: one persistent ftplib session each, own folder, PASV,
    binary) upload real JPEGs over loopback:

    * phase 1: ``--frames`` frames (default 2000) of the smallest ``--sizes`` entry (2 MB). Long
      enough that vsftpd, which does not fsync, must also write back to disk instead of bursting
      into the page cache: over 600-frame runs its MB/s swung 570-1,630;
    * phase 2: ``--mixed-frames`` frames (default 80) cycling through all ``--sizes`` (2, 25 MB).

    Each phase runs against shutterbox (which fsyncs, validates, hashes and queues every frame
    before its 226), then against vsftpd and then against pure-ftpd (which only write(2) the
    file; neither fsyncs).
    Reported per phase and server: frames/min and MB/s (payload bytes / wall time, from the
    first STOR to the last 226), 226 latency p50/p99 (from closing the data connection after
    the last byte to receiving the 226 reply, nearest-rank percentiles), errors, how many
    frames were found stored byte-for-byte on disk afterwards, the server's CPU (process tree,
    % of one core) and peak memory (sum of RSS over the server's process tree, sampled every
    0.5 s). Then the shutterbox/vsftpd and shutterbox/pure-ftpd MB/s ratios, the box's peak RSS
    and the issue's targets: >= 3300 frames/min of 2 MB frames and >= 0.7x vsftpd's MB/s (no
    target is set against pure-ftpd; it is a second anchor).

    shutterbox gets one upload key per client (at a venue each camera has its own; the box
    caps sessions per key), vsftpd and pure-ftpd the same local user. Every frame is a distinct
    valid JPEG (3 base images per size, made unique by a COM segment naming the run and the
    frame), held in memory by the client processes. Server data goes to a fresh directory on a
    real disk (/tmp, or /var/tmp if /tmp is tmpfs). After each phase the harness runs sync(2)
    and waits for the server to go idle, so that one phase's writeback or backlog does not land
    in the next one. The script prints figures; it never fails on timing.

How to reproduce
    make bench-ingest                      # or: .venv/bin/python bench/ingest.py
    .venv/bin/python bench/ingest.py --frames 100 --json
    Run as root for the vsftpd and pure-ftpd parts: they create a local user ``sbbench``
    (deleted afterwards if the script created it) and run /usr/sbin/vsftpd and pure-ftpd
    directly, not as services. Debian's two packages conflict (both provide ftp-server), so:
    apt-get install vsftpd, then unpack pure-ftpd beside it (its libraries are vsftpd's and
    libc's): apt-get download pure-ftpd && dpkg-deb -x pure-ftpd_*.deb /opt/pure-ftpd
    The servers and the clients share the machine's CPUs; on a 2-core box that is part of
    what is measured. See bench/README.md for the flags.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import ftplib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _common import (
    SAMPLE_S,
    ProcTree,
    filesystem,
    fmt,
    free_port,
    free_range,
    fsync_probe,
    log,
    log_problems,
    machine_info,
    pct,
    round_or_none,
    run_script,
    shutterbox_version,
    terminate,
    work_base,
)
from _ftpload import (
    MB,
    Endpoint,
    LoadResult,
    Phase,
    check_frame,
    count_intact,
    make_bases,
    make_frame,
    run_load,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
TARGET_FRAMES_PER_MIN = 3300
TARGET_MBPS_RATIO = 0.7
PASSIVE_PORTS = 100
PASSIVE_PORTS_FROM = 61000  # above Linux's ephemeral range (32768-60999)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
BUSY_WARN_PCT = 10.0  # whole-machine CPU before a server's run above which figures are suspect
VSFTPD = Path("/usr/sbin/vsftpd")
VSFTPD_USER = "sbbench"
# Debian's pure-ftpd and vsftpd packages conflict (both provide ftp-server): with vsftpd installed,
# pure-ftpd's binary is unpacked from its .deb instead (see pureftpd_server).
PUREFTPD_PATHS = (Path("/usr/sbin/pure-ftpd"), Path("/opt/pure-ftpd/usr/sbin/pure-ftpd"))
PUREFTPD_UNPACK = "apt-get download pure-ftpd && dpkg-deb -x pure-ftpd_*.deb /opt/pure-ftpd"
ANCHORS = ("vsftpd", "pure-ftpd")  # the servers shutterbox is compared with, in running order
BOX_DEFAULT_CONNECTIONS_PER_IP = 16  # shutterbox's ftp.max_connections_per_ip default


class Skipped(Exception):
    """A server cannot be benchmarked here (not root, not installed); not an error."""


# --------------------------------------------------------------------------------------------
# Machine, ports, processes


def _deb_version(package: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or None
    return None


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, SIGKILL after STOP_TIMEOUT_S, then kill whatever is left in its session."""
    code = proc.poll()
    if code is None:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log(f"pid {proc.pid} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; SIGKILL")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # started with start_new_session: pgid == pid
    proc.wait()
    return code


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_for_login(endpoint: Endpoint, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with ftplib.FTP(timeout=10) as ftp:
                ftp.connect(endpoint.host, endpoint.port)
                ftp.login(endpoint.user, endpoint.password)
            return
        except ftplib.error_perm:
            raise
        except ftplib.all_errors as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"FTP login never succeeded: {exc!r}\n{_tail(log)}") from exc
            time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# The servers


@dataclass
class Server:
    name: str
    endpoints: list[Endpoint]  # client i uses endpoints[i % len(endpoints)]
    pid: int
    upload_root: Path  # where the uploaded frames end up (searched by count_intact)
    notes: list[str] = field(default_factory=list)
    tls: bool = False  # serves explicit FTPS (the FTPS phase runs against it)


def _shutterbox_exe() -> Path:
    exe = Path(sys.executable).parent / "shutterbox"
    if exe.exists():
        return exe
    found = shutil.which("shutterbox")
    if not found:
        raise RuntimeError("shutterbox CLI not found (run `make` to install the venv)")
    return Path(found)


def _cli_json(cmd: Sequence[str | Path], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[1:3]))} failed:\n{out.stderr.strip()}")
    text = out.stdout
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
    except ValueError as exc:
        raise RuntimeError(f"no JSON in output of {cmd[1:3]}: {text!r}") from exc
    return dict(obj)


@contextlib.contextmanager
def shutterbox_server(work: Path, passive: tuple[int, int], clients: int) -> Iterator[Server]:
    exe = _shutterbox_exe()
    data = work / "shutterbox-data"
    data.mkdir()
    env = {
        **os.environ,
        "SHUTTERBOX_FTP__PORT": str(free_port()),
        "SHUTTERBOX_FTP__PASSIVE_PORTS": f"{passive[0]}-{passive[1]}",
        "SHUTTERBOX_WEB__PORT": str(free_port()),
        "SHUTTERBOX_ADMIN__PORT": "0",  # any free port: another box may hold the default 8081
    }
    notes: list[str] = []
    if clients + 1 > BOX_DEFAULT_CONNECTIONS_PER_IP:  # every client comes from 127.0.0.1
        env["SHUTTERBOX_FTP__MAX_CONNECTIONS_PER_IP"] = str(clients + 1)
        notes.append(f"shutterbox run with ftp.max_connections_per_ip={clients + 1}")
    log = work / "shutterbox.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "up", "--data", str(data)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop it with SIGTERM
        )
    try:
        box_json = data / "run" / "box.json"
        deadline = time.monotonic() + START_TIMEOUT_S
        box: dict[str, Any] | None = None
        while box is None:
            if proc.poll() is not None:
                raise RuntimeError(f"shutterbox up exited with {proc.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{box_json} did not appear:\n{_tail(log)}")
            with contextlib.suppress(OSError, ValueError):
                box = json.loads(box_json.read_text())  # may be half-written: retry
            time.sleep(0.2)
        port = int(box.get("ftp_port") or env["SHUTTERBOX_FTP__PORT"])
        event = _cli_json([exe, "event", "create", "Bench", "--data", data, "--json"], env)
        endpoints = []
        for i in range(clients):  # one key per camera, as at a venue (and sessions/key are capped)
            key_cmd = [exe, "key", "create", "--event", event["code"], "--camera", f"bench-{i}"]
            key = _cli_json([*key_cmd, "--data", data, "--json"], env)
            endpoints.append(Endpoint(HOST, port, str(key["username"]), str(key["password"])))
        _wait_for_login(endpoints[0], proc, log)
        yield Server("shutterbox", endpoints, proc.pid, data, notes, tls=True)
    finally:
        code = _stop(proc)
        if code not in (0, -signal.SIGTERM, None):
            notes.append(f"shutterbox exited with code {code} on SIGTERM")
        notes += log_problems(log)


def _ensure_user(name: str, password: str) -> bool:
    """Create ``name`` if missing (True if created) and set its password."""
    created = False
    try:
        pwd.getpwnam(name)
    except KeyError:
        # vsftpd chdirs to the home directory at login, and Debian's PAM stack requires a
        # shell from /etc/shells; the password is random per run and the user goes away after.
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/sh", name],
            check=True,
            capture_output=True,
        )
        created = True
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    return created


def _drop_user(name: str, created: bool) -> None:
    if created:
        subprocess.run(["userdel", "--remove", name], capture_output=True)
    else:
        subprocess.run(["usermod", "--lock", name], capture_output=True)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for the anchor's FTPS (loopback only)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "anchor.crt", folder / "anchor.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def _vsftpd_conf(port: int, passive: tuple[int, int], root: Path, tls: tuple[Path, Path]) -> str:
    options = {
        "listen": "YES",
        "listen_ipv6": "NO",
        "listen_address": HOST,
        "listen_port": port,
        "background": "NO",
        "anonymous_enable": "NO",
        "local_enable": "YES",
        "write_enable": "YES",
        "local_umask": "022",
        "local_root": root,  # log in straight into the benchmark's upload directory
        "chroot_local_user": "NO",
        "pasv_enable": "YES",
        "pasv_min_port": passive[0],
        "pasv_max_port": passive[1],
        "connect_from_port_20": "NO",
        "pam_service_name": "vsftpd",
        "secure_chroot_dir": "/var/run/vsftpd/empty",
        "seccomp_sandbox": "NO",  # the seccomp sandbox breaks in containers
        "isolate": "NO",
        "isolate_network": "NO",  # needs CLONE_NEWNET
        "max_clients": 0,
        "max_per_ip": 0,
        "xferlog_enable": "NO",
        "dirmessage_enable": "NO",
        "use_localtime": "YES",
        # explicit FTPS for the FTPS phase (plain logins still allowed for the others); no
        # data-channel session reuse demanded, as ftplib does not resume (nor do most cameras)
        "ssl_enable": "YES",
        "rsa_cert_file": tls[0],
        "rsa_private_key_file": tls[1],
        "allow_anon_ssl": "NO",
        "force_local_logins_ssl": "NO",
        "force_local_data_ssl": "NO",
        "require_ssl_reuse": "NO",
        "strict_ssl_read_eof": "NO",  # an upload may end without close_notify, as cameras end it
        "ssl_ciphers": "HIGH",
    }
    return "".join(f"{k}={v}\n" for k, v in options.items())


def _anchor_dirs(work: Path, name: str) -> tuple[Path, Path]:
    """``work/<name>`` and its upload folder, owned by the anchor's local user."""
    user = pwd.getpwnam(VSFTPD_USER)
    base = work / name
    upload_root = base / "ftp"
    upload_root.mkdir(parents=True)
    os.chown(upload_root, user.pw_uid, user.pw_gid)
    for d in (work, base):
        d.chmod(0o711)  # the session runs as the user and must reach upload_root
    return base, upload_root


def _start_anchor(
    command: Sequence[str], base: Path, port: int, password: str
) -> tuple[subprocess.Popen[bytes], Endpoint]:
    """Start an anchor server (its log in ``base``) and wait until the bench user can log in."""
    log = base / f"{Path(command[0]).name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(command),
            cwd=base,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint = Endpoint(HOST, port, VSFTPD_USER, password)
    _wait_for_login(endpoint, proc, log)
    return proc, endpoint


@contextlib.contextmanager
def vsftpd_server(work: Path, passive: tuple[int, int]) -> Iterator[Server]:
    if os.geteuid() != 0:
        raise Skipped("vsftpd skipped: run as root (it needs a local system user and PAM)")
    if not VSFTPD.exists():
        raise Skipped(f"vsftpd skipped: {VSFTPD} not found (apt-get install vsftpd)")
    Path("/var/run/vsftpd/empty").mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    created = _ensure_user(VSFTPD_USER, password)
    proc: subprocess.Popen[bytes] | None = None
    try:
        base, upload_root = _anchor_dirs(work, "vsftpd")
        conf = base / "vsftpd.conf"
        port = free_port()
        conf.write_text(_vsftpd_conf(port, passive, upload_root, _self_signed(base)))
        proc, endpoint = _start_anchor([str(VSFTPD), str(conf)], base, port, password)
        note = (
            "vsftpd does not fsync: its 226 follows write(2) + close(2). (It ftruncate()s each"
            " upload, which makes ext4 start writeback at close; the 226 does not wait for it.)"
        )
        yield Server("vsftpd", [endpoint], proc.pid, upload_root, [note], tls=True)
    finally:
        if proc is not None:
            _stop(proc)
        _drop_user(VSFTPD_USER, created)


def pureftpd_binary() -> Path | None:
    return next((p for p in PUREFTPD_PATHS if os.access(p, os.X_OK)), None)


def _pureftpd_version() -> str | None:
    """From the binary (``pure-ftpd v1.0.50 [privsep]``): dpkg does not know an unpacked one."""
    binary = pureftpd_binary()
    if binary is None:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
        words = (out.stdout + out.stderr).split()
        if len(words) > 1 and words[0] == "pure-ftpd":
            return f"{words[1].lstrip('v')} ({binary})"
    return str(binary)


def pureftpd_command(binary: Path, port: int, passive: tuple[int, int], pidfile: Path) -> list[str]:
    """pure-ftpd's command line: standalone in the foreground on loopback, local users only
    (``-l unix``), chrooted to their home (``-A``), no anonymous login (``-E``)."""
    sessions = (passive[1] - passive[0] + 1) // 2  # pure-ftpd caps -c at half the passive ports
    return [
        str(binary),
        "-S",
        f"{HOST},{port}",  # listen address and port
        "-l",
        "unix",  # /etc/passwd + /etc/shadow, as vsftpd's PAM stack
        "-A",  # chroot every user (but root) to their home directory
        "-E",  # authenticated users only
        "-H",  # no reverse DNS
        "-f",
        "none",  # no syslog
        "-p",
        f"{passive[0]}:{passive[1]}",  # passive ports, as vsftpd's pasv_min/max_port
        "-c",
        str(sessions),
        "-C",
        str(sessions),  # every client comes from 127.0.0.1
        "-U",
        "133:022",  # files 644, directories 755: vsftpd's local_umask=022
        "-g",
        str(pidfile),  # not /var/run/pure-ftpd.pid, which a system service may own
    ]


def _set_home(name: str, home: str) -> None:
    subprocess.run(["usermod", "--home", home, name], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def pureftpd_server(work: Path, passive: tuple[int, int]) -> Iterator[Server]:
    """pure-ftpd run directly (not Debian's wrapper or service) with the user vsftpd uses.

    pure-ftpd chroots a unix user to the home directory in /etc/passwd, so for the run the
    user's home points at a fresh upload directory under ``work`` (the same filesystem as the
    other servers' data); the old home is put back afterwards. The binary is Debian's, installed
    (/usr/sbin) or, since the package conflicts with vsftpd's, unpacked under /opt/pure-ftpd.
    """
    if os.geteuid() != 0:
        raise Skipped("pure-ftpd skipped: run as root (it needs a local system user)")
    binary = pureftpd_binary()
    if binary is None:
        raise Skipped(
            f"pure-ftpd skipped: not found in {', '.join(map(str, PUREFTPD_PATHS))}. Debian's"
            f" package conflicts with vsftpd's; unpack it next to vsftpd: {PUREFTPD_UNPACK}"
        )
    password = secrets.token_urlsafe(18)
    created = _ensure_user(VSFTPD_USER, password)
    proc: subprocess.Popen[bytes] | None = None
    old_home: str | None = None
    try:
        user = pwd.getpwnam(VSFTPD_USER)
        base, upload_root = _anchor_dirs(work, "pure-ftpd")
        try:
            _set_home(VSFTPD_USER, str(upload_root))
        except subprocess.CalledProcessError as exc:  # e.g. the user has running processes
            raise RuntimeError(
                f"pure-ftpd: cannot point {VSFTPD_USER}'s home at the upload directory: {exc.stderr.strip()}"
            ) from exc
        old_home = user.pw_dir
        port = free_port()
        proc, endpoint = _start_anchor(
            pureftpd_command(binary, port, passive, base / "pure-ftpd.pid"), base, port, password
        )
        note = (
            "pure-ftpd does not fsync either: its 226 follows write(2) + close(2) (strace of a run:"
            " no fsync, fdatasync or ftruncate)"
        )
        yield Server("pure-ftpd", [endpoint], proc.pid, upload_root, [note])
    finally:
        if proc is not None:
            _stop(proc)
        if old_home is not None:
            with contextlib.suppress(subprocess.CalledProcessError):
                _set_home(VSFTPD_USER, old_home)
        _drop_user(VSFTPD_USER, created)


# --------------------------------------------------------------------------------------------
# Running and reporting


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


@dataclass
class Row:
    phase: Phase
    server: str
    load: LoadResult
    intact: int
    peak_rss_mb: float | None
    sync_s: float
    idle_wait_s: float

    @property
    def frames_per_min(self) -> float:
        return self.load.frames_ok / self.load.wall_s * 60 if self.load.wall_s else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.load.bytes_ok / MB / self.load.wall_s if self.load.wall_s else 0.0

    @property
    def cpu_pct(self) -> float | None:
        cpu = self.load.server_cpu_s
        return None if cpu is None or not self.load.wall_s else cpu / self.load.wall_s * 100

    def to_dict(self) -> dict[str, Any]:
        lat226, stor = self.load.lat_226, self.load.lat_stor
        return {
            "phase": self.phase.name,
            "server": self.server,
            "frames": len(self.phase.frames),
            "frames_ok": self.load.frames_ok,
            "errors": len(self.load.errors),
            # uploads cut short (451 truncated, 426 connection lost): must be 0, TLS or not
            "cuts": sum(1 for e in self.load.errors if e.split(": ", 1)[-1][:3] in {"451", "426"}),
            "error_samples": self.load.errors[:5],
            "stored_intact": self.intact,
            "payload_mb": round(self.load.bytes_ok / MB, 1),
            "wall_s": round(self.load.wall_s, 3),
            "frames_per_min": round(self.frames_per_min, 1),
            "mb_per_s": round(self.mb_per_s, 2),
            "lat_226_ms": {k: _ms(pct(lat226, p)) for k, p in (("p50", 50), ("p99", 99))}
            | {"max": _ms(max(lat226, default=None))},
            "stor_to_226_ms": {k: _ms(pct(stor, p)) for k, p in (("p50", 50), ("p99", 99))},
            "server_cpu_s": round_or_none(self.load.server_cpu_s, 2),
            "server_cpu_pct_of_one_core": round_or_none(self.cpu_pct, 0),
            "client_cpu_s": round(self.load.client_cpu_s, 2),
            "peak_rss_mb": round_or_none(self.peak_rss_mb, 1),
            "sync_after_s": round(self.sync_s, 2),
            "idle_after_s": round(self.idle_wait_s, 2),
        }


@dataclass
class ServerRun:
    name: str
    rows: list[Row] = field(default_factory=list)
    idle_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    busy_before_pct: float = 0.0
    notes: list[str] = field(default_factory=list)


def run_server(
    run: ServerRun,
    server_cm: Callable[[], contextlib.AbstractContextManager[Server]],
    phases: Sequence[Phase],
    clients: int,
    run_id: str,
) -> None:
    """Start the server, run every phase against it, stop it; results accumulate in ``run``."""
    name = run.name
    run.busy_before_pct = psutil.cpu_percent(interval=1.0)  # someone else's load skews figures
    log(f"starting {name} (machine {run.busy_before_pct:.0f}% busy before) ...")
    with server_cm() as server:
        run.notes = server.notes  # the context manager may append on exit
        tree = ProcTree(server.pid)
        try:
            tree.wait_idle()
            run.idle_rss_mb = tree.rss_mb()
            for phase in phases:
                if phase.tls and not server.tls:
                    run.notes.append(f"{name}: the FTPS phase is not run (no TLS set up here)")
                    continue
                run.rows.append(_run_phase(server, tree, phase, clients, run_id))
        finally:
            run.peak_rss_mb = tree.peak_mb()


def _run_phase(server: Server, tree: ProcTree, phase: Phase, clients: int, run_id: str) -> Row:
    name = server.name
    log(f"  {phase.name} -> {name} ({phase.total_bytes / MB:.0f} MB) ...")
    t0 = time.monotonic()
    load = run_load(server.endpoints, phase, clients, tree.cpu_s, tree.sample)
    t_sync = time.monotonic()
    os.sync()  # flush what the server left in the page cache before the next phase
    sync_s = time.monotonic() - t_sync
    idle_s = tree.wait_idle()
    intact = count_intact(server.upload_root, phase, run_id)
    row = Row(phase, name, load, intact, tree.peak_mb(since=t0), sync_s, idle_s)
    log(
        f"    {load.frames_ok}/{len(phase.frames)} frames, {row.mb_per_s:.1f} MB/s,"
        f" {len(load.errors)} errors, {intact} stored intact"
    )
    return row


def build_phases(frames: int, mixed: int, sizes: Sequence[float], run_id: str, ftps: int = 0) -> list[Phase]:
    bases = {}
    for size in sorted(set(sizes)):
        t0 = time.monotonic()
        bases[size] = make_bases(size)
        avg = sum(len(b.data) for b in bases[size]) / len(bases[size]) / MB
        w, h = bases[size][0].width, bases[size][0].height
        took = time.monotonic() - t0
        log(f"corpus: {size:g} MB class: {w}x{h}, avg {avg:.2f} MB ({took:.1f} s)")
    small = min(sizes)
    phases = [
        Phase(
            f"{small:g}MB x{frames}",
            tuple(
                make_frame(f"S{i:05d}.JPG", bases[small][i % len(bases[small])], run_id)
                for i in range(frames)
            ),
        )
    ]
    if mixed and len(set(sizes)) > 1:
        mixed_frames = []
        for i in range(mixed):
            size = sizes[i % len(sizes)]
            base = bases[size][(i // len(sizes)) % len(bases[size])]
            mixed_frames.append(make_frame(f"M{i:05d}.JPG", base, run_id))
        phases.append(Phase(f"mixed {small:g}-{max(sizes):g}MB x{mixed}", tuple(mixed_frames)))
    for style in ("camera", "ftplib") if ftps else ():
        tls_frames = tuple(
            make_frame(f"T{style[0]}{i:05d}.JPG", bases[small][i % len(bases[small])], run_id)
            for i in range(ftps)
        )
        phases.append(Phase(f"FTPS-{style} {small:g}MB x{ftps}", tls_frames, tls=style))
    for size_bases in bases.values():
        for base in size_bases:
            check_frame(make_frame("CHECK.JPG", base, run_id))
    return [p for p in phases if p.frames]


def render(report: dict[str, Any], runs: Sequence[ServerRun]) -> str:
    m, versions = report["machine"], report["versions"]
    lines = [
        f"shutterbox FTP ingest benchmark, {report['date']}",
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM,"
        f" Linux {m['kernel']}, Python {m['python']}",
        f"versions: shutterbox {versions['shutterbox']}, vsftpd {versions['vsftpd']},"
        f" pure-ftpd {versions['pure-ftpd']}",
        f"config: {report['config']['clients']} clients, loopback, server data on"
        f" {report['config']['data_fs']}",
        "",
        f"{'phase':<22}{'server':<12}{'frames':>9}{'frames/min':>12}{'MB/s':>9}"
        f"{'226 p50 ms':>12}{'226 p99 ms':>12}{'errors':>8}{'cuts':>6}{'intact':>8}{'CPU %':>7}"
        f"{'RSS MB':>8}",
    ]
    for run in runs:
        for row in run.rows:
            d = row.to_dict()
            lines.append(
                f"{d['phase']:<22}{d['server']:<12}{d['frames_ok']:>9}"
                f"{d['frames_per_min']:>12.0f}{d['mb_per_s']:>9.1f}"
                f"{fmt(d['lat_226_ms']['p50'], '.2f'):>12}"
                f"{fmt(d['lat_226_ms']['p99'], '.2f'):>12}"
                f"{d['errors']:>8}{d['cuts']:>6}{d['stored_intact']:>8}"
                f"{fmt(d['server_cpu_pct_of_one_core'], '.0f'):>7}"
                f"{fmt(d['peak_rss_mb'], '.0f'):>8}"
            )
    lines.append("")
    for anchor, by_phase in report["ratios_by_anchor"].items():
        if by_phase:
            ratios = ", ".join(f"{k} {v:.2f}" for k, v in by_phase.items())
            lines.append(f"ratio shutterbox/{anchor} MB/s: {ratios}")
    box = report["servers"].get("shutterbox")
    if box:
        lines.append(
            f"peak RSS of shutterbox: {fmt(box['peak_rss_mb'], '.0f')} MB"
            f" (idle {fmt(box['idle_rss_mb'], '.0f')} MB; process tree, sampled every"
            f" {SAMPLE_S} s)"
        )
    t = report["targets"]
    lines.append(
        f"targets: >= {TARGET_FRAMES_PER_MIN} frames/min of {t['frames_per_min_phase']} frames:"
        f" {t['frames_per_min']}; >= {TARGET_MBPS_RATIO}x vsftpd MB/s: {t['mbps_ratio']};"
        f" 0 cut uploads on shutterbox over FTPS: {t['ftps_cuts']}"
    )
    lines.append("")
    lines += [f"note: {n}" for n in report["notes"]]
    for d in report["results"]:
        lines += [f"upload error ({d['server']}, {d['phase']}): {e}" for e in d["error_samples"]]
    lines += [f"error: {e}" for e in report["failures"]]
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[ok]


def build_report(
    args: argparse.Namespace,
    machine: dict[str, Any],
    data_fs: str,
    runs: Sequence[ServerRun],
    notes: list[str],
    failures: list[str],
) -> dict[str, Any]:
    by_key = {(row.server, row.phase.name): row for run in runs for row in run.rows}
    phase_names = list(dict.fromkeys(row.phase.name for run in runs for row in run.rows))
    ratios_by_anchor: dict[str, dict[str, float]] = {anchor: {} for anchor in ANCHORS}
    for anchor in ANCHORS:
        for name in phase_names:
            box, ref = by_key.get(("shutterbox", name)), by_key.get((anchor, name))
            if box and ref and ref.mb_per_s:
                ratios_by_anchor[anchor][name] = round(box.mb_per_s / ref.mb_per_s, 3)
    ratios = ratios_by_anchor["vsftpd"]  # the target is set against vsftpd
    first = phase_names[0] if phase_names else None
    box_first = by_key.get(("shutterbox", first)) if first else None
    fpm_ok = None if box_first is None else box_first.frames_per_min >= TARGET_FRAMES_PER_MIN
    plain_ratios = [r for name, r in ratios.items() if not name.startswith("FTPS")]
    ratio_ok = None if not plain_ratios else all(r >= TARGET_MBPS_RATIO for r in plain_ratios)
    ftps_rows = [row for run in runs for row in run.rows if row.server == "shutterbox" and row.phase.tls]
    all_notes = list(notes)
    for run in runs:
        all_notes += run.notes
        if run.busy_before_pct > BUSY_WARN_PCT:
            all_notes.append(
                f"WARNING: the machine was {run.busy_before_pct:.0f}% busy just before the"
                f" {run.name} run; other load skews its figures"
            )
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine,
        "versions": {
            "shutterbox": shutterbox_version(),
            "vsftpd": _deb_version("vsftpd"),
            "pure-ftpd": _pureftpd_version(),
        },
        "config": {
            "clients": args.clients,
            "frames": args.frames,
            "mixed_frames": args.mixed_frames,
            "ftps_frames": args.ftps_frames,
            "sizes_mb": args.sizes,
            "data_fs": data_fs,
        },
        "results": [row.to_dict() for run in runs for row in run.rows],
        "ratios": ratios,
        "ratios_by_anchor": ratios_by_anchor,
        "servers": {
            run.name: {
                "idle_rss_mb": round_or_none(run.idle_rss_mb, 1),
                "peak_rss_mb": round_or_none(run.peak_rss_mb, 1),
                "machine_busy_before_pct": run.busy_before_pct,
            }
            for run in runs
        },
        "targets": {
            "frames_per_min_phase": first.split(" ")[0] if first else "-",
            "frames_per_min": _verdict(fpm_ok),
            "mbps_ratio": _verdict(ratio_ok),
            "ftps_cuts": _verdict(
                None if not ftps_rows else all(r.to_dict()["cuts"] == 0 for r in ftps_rows)
            ),
        },
        "notes": all_notes,
        "failures": failures,
    }


def _sizes(text: str) -> list[float]:
    try:
        sizes = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of MB sizes: {text!r}") from None
    if not sizes or any(s <= 0 or s > 100 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be in (0, 100] MB")
    return sizes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames in the small-frame phase")
    parser.add_argument(
        "--mixed-frames", type=int, default=80, help="frames in the mixed-size phase (0: skip)"
    )
    parser.add_argument(
        "--ftps-frames",
        type=int,
        default=None,
        help="frames in the explicit-FTPS phase (protected data; default: as --frames; 0: skip)",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent FTP sessions")
    parser.add_argument(
        "--sizes", type=_sizes, default=[2.0, 25.0], help="frame sizes in MB, comma-separated"
    )
    parser.add_argument("--skip-vsftpd", action="store_true", help="leave vsftpd out")
    parser.add_argument("--skip-pureftpd", action="store_true", help="leave pure-ftpd out")
    parser.add_argument("--skip-shutterbox", action="store_true", help="benchmark the anchors only")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    if args.ftps_frames is None:
        args.ftps_frames = args.frames
    if args.frames < 1 or args.clients < 1 or args.mixed_frames < 0 or args.ftps_frames < 0:
        parser.error("--frames and --clients must be >= 1, --mixed-frames and --ftps-frames >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminate)
    machine = machine_info()
    run_id = secrets.token_hex(4)
    notes = [
        "MB = 10^6 bytes; MB/s and frames/min over wall time from first STOR to last 226",
        "226 latency: data connection closed after the last byte -> 226 reply received",
        "CPU % = server process tree CPU time / wall time (100 = one core);"
        " RSS = sum over the server's process tree",
        f"clients and servers share this machine's {machine['cpus']} CPUs",
    ]
    failures: list[str] = []
    runs: list[ServerRun] = []
    with tempfile.TemporaryDirectory(prefix="sbbench-", dir=work_base()) as tmp:
        work = Path(tmp)
        device, fstype = filesystem(work.resolve())
        fsync_ms = fsync_probe(work)
        data_fs = f"{work} ({fstype} on {device}; 2 MB write+fsync p50 {fsync_ms:.1f} ms)"
        log(f"work dir {data_fs}; generating corpus ...")
        phases = build_phases(args.frames, args.mixed_frames, args.sizes, run_id, args.ftps_frames)
        taken: list[tuple[int, int]] = []
        servers: list[tuple[str, Callable[[], contextlib.AbstractContextManager[Server]]]] = []
        if not args.skip_shutterbox:
            box_ports = free_range(PASSIVE_PORTS, taken)
            taken.append(box_ports)
            servers.append(("shutterbox", lambda: shutterbox_server(work, box_ports, args.clients)))
        if not args.skip_vsftpd:
            ftpd_ports = free_range(PASSIVE_PORTS, taken)
            taken.append(ftpd_ports)
            servers.append(("vsftpd", lambda: vsftpd_server(work, ftpd_ports)))
        if not args.skip_pureftpd:
            pure_ports = free_range(PASSIVE_PORTS, taken)
            taken.append(pure_ports)
            servers.append(("pure-ftpd", lambda: pureftpd_server(work, pure_ports)))
        for name, server_cm in servers:
            run = ServerRun(name)
            runs.append(run)  # kept on failure: the phases that completed still count
            try:
                run_server(run, server_cm, phases, args.clients, run_id)
            except Skipped as exc:
                runs.remove(run)
                notes.append(str(exc))
                log(str(exc))
            except Exception as exc:  # report it and carry on with the other server
                failures.append(f"{name}: {exc}")
                log(f"{name} failed: {exc}")
    report = build_report(args, machine, data_fs, runs, notes, failures)
    print(json.dumps(report, indent=2) if args.json else render(report, runs))
    errors = sum(len(row.load.errors) for run in runs for row in run.rows)
    return 1 if failures or errors else 0


if __name__ == "__main__":
    run_script(main)
