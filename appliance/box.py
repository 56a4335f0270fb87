"""The composition root: builds every service from Settings and runs them until a signal.

Runs on the main thread's asyncio loop. Services are async context managers entered into one
AsyncExitStack in dependency order, so shutdown runs in reverse by construction:
store -> certificates -> janitor (reconcile) -> FTP listeners -> control socket -> web -> hot folder.

Thread map (see docs/architecture.md):
- main thread: asyncio loop (Store via aiosqlite's own thread, admin API, web, janitor timer)
- ftp-ftp / ftp-ftps_implicit: pyftpdlib acceptor loops; one thread per camera session
- watchdog observer + hot-folder worker thread (when configured)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import psutil
from fastapi import FastAPI

from appliance import __version__, credentials, metrics, process
from appliance.bridge import Bridge, cancel_and_wait
from appliance.config import Settings, load_settings
from appliance.control.api import make_admin_app
from appliance.control.guard import ConnectionGate
from appliance.control.httpserver import HttpServer
from appliance.control.logring import LogRing
from appliance.control.token import TokenCheck
from appliance.control.web import make_web_app
from appliance.errors import ConfigError, NotFoundError
from appliance.faces.service import FaceService
from appliance.ftp import FtpService
from appliance.ftp.server import local_address
from appliance.guest.access import GuestAccess
from appliance.health import Health, every, sd_notify, watchdog, watchdog_interval
from appliance.ingest.hotfolder import HotFolder
from appliance.ingest.janitor import Janitor
from appliance.ingest.landing import Lander
from appliance.layout import Layout
from appliance.loghygiene import LogHygiene
from appliance.mdns import Mdns
from appliance.pki import CertPaths, ensure_certificates
from appliance.store import Store, UploadKey
from appliance.store.syncqueue import SyncQueue
from appliance.sync import SyncService

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = 2.0  # seconds between probes of the database writer, the web server, the selfie process


class Box:
    def __init__(self, settings: Settings, layout: Layout) -> None:
        self.settings = settings
        self.layout = layout
        self.store: Store = Store(layout.database)
        # the admin API's own read-only connection (its own thread): a status poll or a scrape
        # reads a WAL snapshot instead of queueing behind ingest's commits on the writer's
        self.reader: Store = Store(layout.database, readonly=True)
        self.ftp: FtpService | None = None
        self.sync: SyncService | None = None
        self.faces: FaceService | None = None
        self.guest: GuestAccess | None = None
        self.certs: CertPaths | None = None
        self.web_port: int | None = None
        self.web_app: FastAPI | None = None  # the guest listener's app (its schema: admin API)
        self.admin_port: int | None = None
        self.web_gate: ConnectionGate | None = None
        self.logs = LogRing()
        self.token = TokenCheck(layout.admin_token)
        self.started = time.time()
        self.stopping = asyncio.Event()
        self.health = Health(max_age=settings.heartbeat_max_age)
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        # Sync jobs block a thread each for as long as a blackout lasts (up to the 90 s read
        # timeout); thumbnails, scrypt and file walks must still find a free one.
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=8 + self.settings.cloud.workers, thread_name_prefix="box-io")
        )
        self.layout.create()
        files = process.raise_file_limit()
        process.release_memory_promptly()
        logger.info("file-handle limit %d", files)
        async with AsyncExitStack() as stack:
            self.logs.addFilter(LogHygiene())
            logging.getLogger().addHandler(self.logs)
            stack.callback(logging.getLogger().removeHandler, self.logs)
            await stack.enter_async_context(self.store)
            await stack.enter_async_context(self.reader)  # after the writer has migrated
            await self._check_hotfolder_event()
            bridge = Bridge(loop)
            self.certs = await asyncio.to_thread(self._certificates)
            lander = Lander(
                self.layout,
                self.store,
                bridge,
                reserve_mb=self.settings.storage.reserve_mb,
                max_file_size_mb=self.settings.ftp.max_file_size_mb,
            )
            await stack.enter_async_context(Janitor(self.layout, self.store, self.settings.storage))
            self.ftp = await stack.enter_async_context(
                FtpService(
                    self.settings.ftp,
                    store=self.store,
                    bridge=bridge,
                    lander=lander,
                    jails=self.layout.ftp,
                    cert_file=self.certs.cert,
                    key_file=self.certs.key,
                    health=self.health,
                )
            )
            self.sync = await stack.enter_async_context(
                SyncService(
                    self.settings.cloud,
                    self.store,
                    self.layout,
                    bridge,
                    self.health,
                    min_face_px=self.settings.faces.min_face_px,
                )
            )
            self.faces = await stack.enter_async_context(
                FaceService(
                    self.settings.faces,
                    self.store,
                    self.layout,
                    proxy_long_edge=self.settings.cloud.proxy_long_edge,
                )
            )
            self.guest = GuestAccess(self.settings.guest, self.layout)
            self.web_app = make_web_app(self)
            await stack.enter_async_context(HttpServer(make_admin_app(self), uds=self.layout.control_socket))
            admin = self.settings.admin
            if admin.port is not None:
                listener = await stack.enter_async_context(
                    HttpServer(make_admin_app(self, lan=True), host=admin.host, port=admin.port)
                )
                self.admin_port = listener.port
            w = self.settings.web
            self.web_gate = ConnectionGate(w.max_connections, w.max_connections_per_ip)
            web = await stack.enter_async_context(
                HttpServer(
                    self.web_app,
                    host=w.host,
                    port=w.port,
                    gate=self.web_gate,
                    header_timeout=w.header_timeout,
                    body_timeout=w.body_timeout,
                )
            )
            self.web_port = web.port
            assert self.ftp is not None
            ports = self.ftp.ports
            await stack.enter_async_context(
                Mdns(
                    self.settings.mdns,
                    ftp_port=ports["ftp"],
                    web_port=web.port or self.settings.web.port,
                    implicit_tls_port=ports.get("ftps_implicit"),
                )
            )
            if self.settings.hotfolder.path is not None:
                await stack.enter_async_context(
                    HotFolder(self.settings.hotfolder, self.store, lander, bridge)
                )
            stack.callback(self.layout.box_json.unlink, missing_ok=True)
            await self._first_start()
            self._start_heartbeats()
            stack.push_async_callback(cancel_and_wait, self._tasks)
            self._write_box_json()  # last: tests and tools take it as "ready"
            sd_notify("READY=1", f"STATUS={await self.status_line()}")
            logger.info("shutterbox %s ready (data in %s)", __version__, self.layout.root)
            await self.stopping.wait()
            sd_notify("STOPPING=1", "STATUS=shutting down: finishing uploads in flight")
            logger.info("shutting down")
            await self.ftp.drain(self.settings.ftp.drain_seconds)
        return 0

    def _start_heartbeats(self) -> None:
        """Probes for the parts that have no loop of their own to beat from, and the systemd
        watchdog (only when systemd asked for one)."""
        web_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
            self.settings.web.host, self.settings.web.host
        )
        web_url = f"http://{'[' + web_host + ']' if ':' in web_host else web_host}:{self.web_port}/healthz"

        async def database() -> None:
            async with self.store.transaction():  # the single writer can take the write lock
                pass

        async def web() -> None:
            # verify=False: plain HTTP on loopback; a TLS context loads the CA bundle (~5 ms CPU)
            async with httpx.AsyncClient(timeout=5.0, verify=False) as client:  # noqa: S501
                (await client.get(web_url)).raise_for_status()

        async def faces() -> None:
            if self.faces is not None:
                await self.faces.ping()

        ftp_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
            self.settings.ftp.host, self.settings.ftp.host
        )

        async def ftp() -> None:
            """A real connection gets the banner: the listener accepts (its loop beating is not
            enough: a listener closed by an accept error kept beating)."""
            if self.ftp is None:
                return
            reader, writer = await asyncio.open_connection(ftp_host, self.ftp.ports["ftp"])
            try:
                banner = await reader.readline()
                if banner[:3] not in (b"220", b"421"):  # 421: a ban or a cap, still accepting
                    raise ConnectionError(f"FTP answered {banner[:60]!r}, not 220")
                writer.write(b"QUIT\r\n")
                await writer.drain()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

        probes = {"database": database, "web": web, "faces": faces, "ftp": ftp}
        self._tasks += [
            asyncio.create_task(every(HEARTBEAT_EVERY, name, self.health, probe), name=f"health-{name}")
            for name, probe in probes.items()
        ]
        interval = watchdog_interval()
        if interval is not None:
            self._tasks.append(
                asyncio.create_task(watchdog(self.health, interval, self.status_line), name="watchdog")
            )
            logger.info("systemd watchdog: pinging every %.1f s while every part beats", interval)

    async def status_line(self) -> str:
        """One line for systemd's STATUS= (shown by ``systemctl status``)."""
        counts = await self.store.counts()
        parts = [f"{counts['photos_total']} photos"]
        if self.faces is not None and self.faces.enabled:
            pending = (await self.faces.faces.counts())["photos_pending"]
            parts.append(f"{pending} waiting for face index")
        if self.sync is not None and self.sync.enabled:
            jobs = await self.sync.queue.counts()
            parts.append(
                f"{jobs.get('pending', 0) + jobs.get('leased', 0)} sync jobs, uplink {self.sync.uplink.state}"
            )
        if self.ftp is not None:
            parts.append(f"{len(self.ftp.sessions.snapshot())} camera sessions")
        return ", ".join(parts)

    def reload(self) -> None:
        """SIGHUP: re-read the settings and apply what can change while running (the log level);
        everything else is reported as needing a restart. A broken file changes nothing."""
        sd_notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            fresh = load_settings(self.layout.root)
        except ConfigError as exc:
            logger.error("reload refused, settings unchanged: %s", exc)
        else:
            if fresh.log_level != self.settings.log_level:
                logging.getLogger().setLevel(fresh.log_level)
                logging.getLogger("pyftpdlib").setLevel("DEBUG" if fresh.log_level == "DEBUG" else "WARNING")
                logger.warning("log level %s -> %s", self.settings.log_level, fresh.log_level)
            changed = [
                name
                for name in type(fresh).model_fields
                if name != "log_level" and getattr(fresh, name) != getattr(self.settings, name)
            ]
            if changed:
                logger.warning("reload: [%s] changed; restart the box to apply", "], [".join(changed))
            self.settings = self.settings.model_copy(update={"log_level": fresh.log_level})
        sd_notify("READY=1")

    async def _check_hotfolder_event(self) -> None:
        code = self.settings.hotfolder.event
        if self.settings.hotfolder.path is not None and code is not None:
            try:
                await self.store.get_event(code)
            except NotFoundError as exc:
                raise ConfigError(f"hotfolder.event {code!r} is not an event on this box") from exc

    def _certificates(self) -> CertPaths:
        tls = self.settings.tls
        own = ensure_certificates(self.layout.tls, tls.hostnames)
        if tls.cert_file is not None:
            return CertPaths(own.ca_cert, tls.cert_file, tls.key_file or tls.cert_file)
        return own

    def _write_box_json(self) -> None:
        assert self.ftp is not None
        data = {
            "pid": os.getpid(),
            "version": __version__,
            "ftp_port": self.ftp.ports.get("ftp"),
            "ftps_implicit_port": self.ftp.ports.get("ftps_implicit"),
            "web_port": self.web_port,
            "admin_port": self.admin_port,
            "passive_ports": self.settings.ftp.passive_ports,
        }
        tmp = self.layout.box_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(self.layout.box_json)

    async def _first_start(self) -> None:
        if await self.store.list_events():
            return
        event = await self.store.create_event("Demo event", demo=True)
        key, secret = await self.create_key(event.code, "main", "demo camera")
        info = self.connect_info()
        # The password goes only to a terminal: under systemd stdout is the journal, and a secret
        # never enters a log. Without a terminal the operator makes a key with the CLI instead.
        if sys.stdout.isatty():
            credentials_line = f"  user {key.username}  password {secret}   (shown once)"
        else:
            credentials_line = (
                f"  user {key.username}; its password is shown only on a terminal. Make a key with:\n"
                f"  shutterbox key create --event {event.code} --camera NAME --data {self.layout.root}"
            )
        implicit = info["implicit_tls_port"]
        lines = [
            "",
            "=" * 64,
            f"First start: created demo event {event.code} with one camera key.",
            f"  Camera FTP settings: host {info['host']}  port {info['port']}  passive mode",
            credentials_line,
            f"  passive ports {info['passive_ports']}; FTPS: explicit (AUTH TLS) on the same port"
            + (f", implicit on port {implicit}" if implicit else ""),
            f"  CA certificate for FTPS (Sony: import as root): shutterbox ca-cert --data {self.layout.root}",
            "=" * 64,
        ]
        print("\n".join(lines), flush=True)  # noqa: T201

    async def create_key(self, event: str, function: str, camera: str) -> tuple[UploadKey, str]:
        secret = credentials.new_secret()
        digest = await asyncio.to_thread(credentials.hash_secret, secret)
        key = await self.store.create_key(event=event, function=function, camera=camera, secret_hash=digest)
        return key, secret

    def connect_info(self) -> dict[str, Any]:
        ftp = self.settings.ftp
        host = ftp.masquerade_address or (ftp.host if ftp.host not in ("0.0.0.0", "::") else local_address())  # noqa: S104
        ports = self.ftp.ports if self.ftp else {}
        return {
            "host": host,
            "port": ports.get("ftp", ftp.port),
            "implicit_tls_port": ports.get("ftps_implicit"),
            "passive_ports": ftp.passive_ports,
            "tls": "explicit (AUTH TLS) on the same port"
            + (", implicit on its own port" if ftp.implicit_tls_port else ""),
        }

    async def purge_event(self, code: str) -> dict[str, Any]:
        """The right to be forgotten, in one call: keys revoked and sessions cut, the S3 prefix
        and Rekognition collection deleted (first, so a cloud failure leaves everything to retry),
        then every local row and file of the event."""
        assert self.sync is not None
        assert self.ftp is not None
        await self.store.get_event(code)
        for key in await self.store.list_keys(code):
            await self.store.revoke_key(key.username)
            self.ftp.revoke(key.username)
        async with self.sync.paused_for(f"purging event {code}"):
            cloud = await self.sync.purge_cloud(code)
            paths = await self.store.purge_event(code)
        if self.faces is not None:
            self.faces.forget(code)
        removed = await asyncio.to_thread(self._remove_event_files, code, paths)
        logger.warning("purged event %s: %s, %d local files", code, cloud, removed)
        return {"event": code, **cloud, "local_files_removed": removed}

    def _remove_event_files(self, code: str, paths: list[str]) -> int:
        removed = 0
        for path in paths:
            target = self.layout.ftp / path.removeprefix("jail:") if path.startswith("jail:") else Path(path)
            if target.is_dir():
                removed += sum(1 for p in target.rglob("*") if p.is_file())
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink()
                removed += 1
        for folder in (self.layout.photos / code, self.layout.proxies / code, self.layout.thumbs / code):
            if folder.exists():
                removed += sum(1 for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder, ignore_errors=True)
        return removed

    def ca_certificate_pem(self) -> str:
        """The root cameras should trust: the box's own CA, or the operator's chain file."""
        if self.settings.tls.cert_file is not None:
            return self.settings.tls.cert_file.read_text(encoding="ascii")
        return (self.layout.tls / "ca.crt").read_text(encoding="ascii")

    async def status(self) -> dict[str, Any]:
        disk = shutil.disk_usage(self.layout.root)
        reserve = self.settings.storage.reserve_mb << 20
        frames, frame_bytes = metrics.INGEST_MINUTE.total()
        uploads, upload_bytes = metrics.SYNC_MINUTE.total()
        _, recent_bytes = metrics.INGEST_TEN_MINUTES.total()
        rate = recent_bytes / min(metrics.INGEST_TEN_MINUTES.seconds, max(1.0, time.time() - self.started))
        cloud = await self.sync.status(self.reader) if self.sync else None
        status: dict[str, Any] = {
            "version": __version__,
            "versions": versions(),
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "data": str(self.layout.root),
            "queue": await self.reader.counts(),
            "queue_summary": await self._queue_summary(cloud),
            "throughput": {
                "frames_per_min": float(frames),
                "bytes_in_per_s": frame_bytes / 60.0,
                "uploads_per_min": float(uploads),
                "bytes_out_per_s": upload_bytes / 60.0,
            },
            "ftp": self.ftp.status() if self.ftp else None,
            "cloud": cloud,
            "faces": await self.faces.status(self.reader) if self.faces else None,
            "health": self.health.snapshot(),
            "stalled": self.health.stale(),
            "web_port": self.web_port,
            "admin_port": self.admin_port,
            "system": await asyncio.to_thread(system_figures),
            "disk": {
                "free_bytes": disk.free,
                "total_bytes": disk.total,
                "reserve_bytes": reserve,
                "accepting_uploads": disk.free >= reserve,
                "evict_below_bytes": self.settings.storage.evict_below_mb << 20,
                # at the last ten minutes' ingest rate, until uploads are refused
                "time_to_full_s": max(0.0, disk.free - reserve) / rate if rate > 0 else None,
                **await SyncQueue(self.reader).evicted(),
            },
        }
        status["alerts"] = await self.alerts(status)
        return status

    async def _queue_summary(self, cloud: dict[str, Any] | None) -> dict[str, Any]:
        """The cloud queue at a glance: what waits, what runs, what failed for good."""
        jobs = cloud["jobs"] if cloud else await SyncQueue(self.reader).counts()
        oldest = await SyncQueue(self.reader).oldest_waiting()
        return {
            "cloud_enabled": bool(cloud and cloud["enabled"]),
            "pending": jobs.get("pending", 0) + jobs.get("blocked", 0),
            "in_flight": jobs.get("leased", 0),
            "failed": jobs.get("dead", 0),
            "oldest_pending_age_s": age_seconds(oldest) if oldest else None,
        }

    async def cameras(self) -> list[dict[str, Any]]:
        """Per upload key: live sessions, frames today and in total, the last frame, and errors
        (rejected uploads from the database plus failed logins and refusals since the start)."""
        midnight = dt.datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        rows = await self.reader.camera_stats(midnight.astimezone(dt.UTC).isoformat(timespec="milliseconds"))
        live = self.ftp.sessions.snapshot() if self.ftp else {}
        session_errors = self.ftp.sessions.errors() if self.ftp else {}
        cameras = []
        for row in rows:
            last_error, last_error_at = None, None
            if row["last_rejection"]:
                last_error_at, last_error = row["last_rejection"].split("\x1f", 1)
            trouble = session_errors.get(row["username"])
            if trouble is not None and trouble.last_at is not None:
                at = dt.datetime.fromtimestamp(trouble.last_at, dt.UTC).isoformat(timespec="milliseconds")
                if last_error_at is None or at > last_error_at:
                    last_error, last_error_at = trouble.last, at
            cameras.append(
                {
                    "username": row["username"],
                    "event": row["event"],
                    "camera": row["camera"],
                    "function": row["function"],
                    "revoked": row["revoked_at"] is not None,
                    "connected": live.get(row["username"], 0),
                    "last_frame_at": row["last_frame_at"],
                    "frames_today": row["frames_today"],
                    "frames_total": row["frames_total"],
                    "errors": row["rejected"] + (trouble.count if trouble else 0),
                    "last_error": last_error,
                    "last_error_at": last_error_at,
                }
            )
        return cameras

    async def alerts(self, status: dict[str, Any]) -> list[dict[str, str]]:
        """What needs a human now, worst first."""
        limits = self.settings.alerts
        alerts: list[dict[str, str]] = []
        for part in status["stalled"]:
            alerts.append({"level": "critical", "text": f"{part} has stopped responding"})
        disk = status["disk"]
        if not disk["accepting_uploads"]:
            alerts.append({"level": "critical", "text": "disk reserve reached: cameras are refused (452)"})
        elif disk["free_bytes"] - disk["reserve_bytes"] < limits.disk_warning_mb << 20:
            left = (disk["free_bytes"] - disk["reserve_bytes"]) >> 20
            alerts.append({"level": "warning", "text": f"disk nearly at its reserve: {left} MB left"})
        cloud = status["cloud"]
        if cloud and cloud["enabled"] and cloud["uplink"] == "offline":
            down = time.time() - cloud["uplink_since"]
            if down >= limits.uplink_down_minutes * 60:
                alerts.append({"level": "warning", "text": f"uplink down for {down / 60:.0f} min"})
        failed = status["queue_summary"]["failed"]
        if failed:
            alerts.append({"level": "warning", "text": f"{failed} sync jobs dead-lettered: retry or discard"})
        now = dt.datetime.now(dt.UTC)
        for camera in await self.cameras():
            if camera["revoked"] or not camera["last_frame_at"]:
                continue
            silent = (now - dt.datetime.fromisoformat(camera["last_frame_at"])).total_seconds() / 60
            if limits.camera_silent_minutes <= silent <= 120:
                alerts.append(
                    {"level": "warning", "text": f"camera {camera['camera']} silent for {silent:.0f} min"}
                )
        return alerts


def age_seconds(iso: str) -> float:
    return max(0.0, (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(iso)).total_seconds())


def versions() -> dict[str, str]:
    found = {"shutterbox": __version__, "python": platform.python_version()}
    for package in ("pyftpdlib", "fastapi", "uvicorn", "boto3", "dlib-bin", "textual"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


def system_figures() -> dict[str, Any]:
    """CPU temperature (the Pi's ``cpu_thermal``, else the first sensor), load, CPU and memory."""
    temperature = None
    with contextlib.suppress(AttributeError, OSError):
        sensors = psutil.sensors_temperatures()
        for name in ("cpu_thermal", "coretemp", "k10temp", "soc_thermal", *sensors):
            if sensors.get(name):
                temperature = float(sensors[name][0].current)
                break
    memory = psutil.virtual_memory()
    return {
        "cpu_temp_c": temperature,
        "load": list(os.getloadavg()),
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpu_count": os.cpu_count(),
        "memory_used_bytes": memory.total - memory.available,
        "memory_total_bytes": memory.total,
        "box_rss_bytes": psutil.Process().memory_info().rss,
    }


def run_box(settings: Settings, data_dir: Path) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(Box(settings, Layout(data_dir.resolve())).run())
    return 0
