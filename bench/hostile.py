"""Hostile-LAN benchmark: what the box holds and how it serves while a neighbour attacks it.

What it measures
    A real ``shutterbox up`` on loopback at a low file limit (``--file-limit``, set on its process
    with prlimit, as a small board's unit might), and three attacks from emulated LAN hosts
    (addresses 127.0.x.y: each its own source address):

    * web flood: ``--web-sockets`` idle sockets to the guest port from 20 hosts. Reported: how
      many the box holds (its own count of open web connections), how many it refused at once,
      a camera's upload (STOR to 226) and an admin ``/api/status`` round trip during the flood,
      and the box's open file handles against its limit;
    * pre-login FTP: ``--ftp-sockets`` sockets to the FTP port that never log in, from 20 hosts.
      Reported: a camera's login-to-226 time while they are held;
    * search burst: ``--phones`` phones at once, each posting a ``--selfie-mb`` MB picture.
      Reported: searches answered per second over the burst, how many were told "busy", the
      box's peak RSS (process tree, sampled every 0.1 s) against its idle RSS, and its RSS
      a minute after.
    The figures are measured, not judged: the script prints them and never fails on timing.

How to reproduce
    .venv/bin/python bench/hostile.py            # or as part of: make bench
    .venv/bin/python bench/hostile.py --quick --json
"""

from __future__ import annotations

import argparse
import contextlib
import ftplib
import io
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import log
from PIL import Image

HOST = "127.0.0.1"
SHUTTERBOX = Path(sys.executable).parent / "shutterbox"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _cli(data: Path, env: dict[str, str], *args: str) -> Any:
    out = subprocess.run(
        [str(SHUTTERBOX), *args, "--data", str(data), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@contextlib.contextmanager
def box(work: Path, file_limit: int) -> Iterator[dict[str, Any]]:
    data = work / "data"
    low = random.Random(os.getpid()).randrange(20000, 30000)
    env = {
        **os.environ,
        "SHUTTERBOX_FTP__HOST": HOST,
        "SHUTTERBOX_FTP__PORT": "0",
        "SHUTTERBOX_FTP__PASSIVE_PORTS": f"{low}-{low + 39}",
        "SHUTTERBOX_WEB__HOST": HOST,
        "SHUTTERBOX_WEB__PORT": "0",
        "SHUTTERBOX_ADMIN__PORT": "0",
        "SHUTTERBOX_MDNS__ENABLED": "false",
        "SHUTTERBOX_STORAGE__RESERVE_MB": "64",
        "SHUTTERBOX_GUEST__SEARCHES_PER_MINUTE": "1000",
    }
    data.mkdir(parents=True)
    log = (work / "box.log").open("wb")
    proc = subprocess.Popen([str(SHUTTERBOX), "up", "--data", str(data)], env=env, stdout=log, stderr=log)
    try:
        info_file = data / "run" / "box.json"
        deadline = time.monotonic() + 90
        while not info_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the box did not start: {(work / 'box.log').read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(0.5)
        info = json.loads(info_file.read_text())
        subprocess.run(["prlimit", f"--pid={proc.pid}", f"--nofile={file_limit}:{file_limit}"], check=True)
        event = _cli(data, env, "event", "create", "Hostile bench")["code"]
        key = _cli(data, env, "key", "create", "--event", event, "--camera", "bench")
        token = _cli(data, env, "admin-token", "rotate")["token"]
        yield {
            **info,
            "pid": proc.pid,
            "event": event,
            "user": key["username"],
            "password": key["password"],
            "token": token,
            "data": data,
        }
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if proc.poll() is None:
            proc.kill()
        log.close()


def _jpeg(size: int, seed: int) -> bytes:
    """A valid JPEG of about ``size`` bytes (a small picture padded with comment segments)."""
    out = io.BytesIO()
    Image.effect_noise((320, 240), 40).convert("RGB").save(out, "JPEG", quality=85)
    body = out.getvalue()
    rng = random.Random(seed)
    pad = b"".join(
        b"\xff\xfe" + (65533 + 2).to_bytes(2, "big") + rng.randbytes(65533)
        for _ in range(max(0, size - len(body)) // 65537)
    )
    return body[:2] + pad + body[2:]


def _sockets(port: int, count: int, prefix: str) -> list[socket.socket]:
    held = []
    for i in range(count):
        sock = socket.socket()
        sock.settimeout(5)
        try:
            sock.bind((f"{prefix}.{10 + i % 20}", 0))
            sock.connect((HOST, port))
        except OSError:
            sock.close()
            continue
        held.append(sock)
    return held


def _upload_s(info: dict[str, Any], seed: int) -> float:
    started = time.perf_counter()
    with ftplib.FTP(timeout=30) as ftp:
        ftp.connect(HOST, int(info["ftp_port"]))
        ftp.login(info["user"], info["password"])
        reply = ftp.storbinary(f"STOR H{seed:05d}.JPG", io.BytesIO(_jpeg(400_000, seed)))
    assert reply.startswith("226"), reply
    return time.perf_counter() - started


def _admin_s(info: dict[str, Any]) -> float:
    started = time.perf_counter()
    reply = httpx.get(
        f"http://{HOST}:{info['admin_port']}/api/status",
        headers={"Authorization": f"Bearer {info['token']}"},
        timeout=30,
    )
    reply.raise_for_status()
    return time.perf_counter() - started


def _connections_on(pid: int, port: int) -> int:
    conns = psutil.Process(pid).net_connections(kind="tcp")
    return sum(1 for c in conns if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def _rss_mb(pid: int) -> float:
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / 1e6


def web_flood(info: dict[str, Any], sockets: int, limit: int) -> dict[str, Any]:
    port = int(info["web_port"])
    held = _sockets(port, sockets, "127.0.9")
    try:
        time.sleep(1.0)
        figures = {
            "sockets_opened": len(held),
            "held_by_box": _connections_on(info["pid"], port),
            "box_open_files": psutil.Process(info["pid"]).num_fds(),
            "box_file_limit": limit,
            "camera_upload_s": round(_upload_s(info, 1), 3),
            "admin_status_s": round(_admin_s(info), 3),
        }
    finally:
        for sock in held:
            sock.close()
    figures["camera_upload_after_s"] = round(_upload_s(info, 2), 3)
    return figures


def prelogin_ftp(info: dict[str, Any], sockets: int) -> dict[str, Any]:
    held = _sockets(int(info["ftp_port"]), sockets, "127.0.6")
    try:
        time.sleep(1.0)
        return {
            "sockets_opened": len(held),
            "held_by_box": _connections_on(info["pid"], int(info["ftp_port"])),
            "camera_login_to_226_s": round(_upload_s(info, 3), 3),
        }
    finally:
        for sock in held:
            sock.close()


def search_burst(info: dict[str, Any], phones: int, selfie_mb: float) -> dict[str, Any]:
    selfie = _jpeg(int(selfie_mb * 1e6), 77)
    url = f"http://{HOST}:{info['web_port']}/api/events/{info['event']}/search"
    time.sleep(3)
    idle = _rss_mb(info["pid"])
    codes: list[int] = []
    lock = threading.Lock()

    def phone(i: int) -> None:
        transport = httpx.HTTPTransport(local_address=f"127.0.7.{10 + i}")
        with httpx.Client(transport=transport, timeout=180) as client:
            code = client.post(
                url, files={"selfie": ("me.jpg", io.BytesIO(selfie), "image/jpeg")}
            ).status_code
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=phone, args=(i,)) for i in range(phones)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    peak = idle
    while any(t.is_alive() for t in threads):
        peak = max(peak, _rss_mb(info["pid"]))
        time.sleep(0.1)
    wall = time.perf_counter() - started
    time.sleep(60)
    return {
        "phones": phones,
        "selfie_mb": selfie_mb,
        "answered_per_s": round(len(codes) / wall, 2),
        "searched": sum(1 for c in codes if c in (200, 422)),
        "busy": codes.count(503),
        "other": sorted(c for c in codes if c not in (200, 422, 503)),
        "wall_s": round(wall, 1),
        "rss_idle_mb": round(idle),
        "rss_peak_mb": round(peak),
        "rss_after_60s_mb": round(_rss_mb(info["pid"])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file-limit", type=int, default=1024)
    parser.add_argument("--web-sockets", type=int, default=1100)
    parser.add_argument("--ftp-sockets", type=int, default=300)
    parser.add_argument("--phones", type=int, default=30)
    parser.add_argument("--selfie-mb", type=float, default=19.9)
    parser.add_argument("--quick", action="store_true", help="fewer phones (10)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("prlimit") is None:
        log("prlimit (util-linux) is needed")
        return 2
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    report: dict[str, Any] = {"file_limit": args.file_limit}
    with tempfile.TemporaryDirectory(prefix="sbhostile-") as tmp, box(Path(tmp), args.file_limit) as info:
        log("web flood ...")
        report["web_flood"] = web_flood(info, args.web_sockets, args.file_limit)
        log("pre-login FTP sockets ...")
        report["prelogin_ftp"] = prelogin_ftp(info, args.ftp_sockets)
        log("search burst ...")
        report["search_burst"] = search_burst(info, 10 if args.quick else args.phones, args.selfie_mb)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        w, f, s = report["web_flood"], report["prelogin_ftp"], report["search_burst"]
        print(
            f"web flood: {w['sockets_opened']} idle sockets, box holds {w['held_by_box']};"
            f" {w['box_open_files']} of {w['box_file_limit']} file handles in use;"
            f" camera upload {w['camera_upload_s']} s during, {w['camera_upload_after_s']} s after;"
            f" admin /api/status {w['admin_status_s']} s"
        )
        print(
            f"pre-login FTP: {f['sockets_opened']} sockets opened, the box holds {f['held_by_box']};"
            f" camera login to 226 {f['camera_login_to_226_s']} s"
        )
        print(
            f"search burst: {s['phones']} phones x {s['selfie_mb']} MB: {s['answered_per_s']} answers/s"
            f" ({s['searched']} searched, {s['busy']} told busy, other {s['other']}) in {s['wall_s']} s;"
            f" RSS idle {s['rss_idle_mb']} MB, peak {s['rss_peak_mb']} MB,"
            f" a minute after {s['rss_after_60s_mb']} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
