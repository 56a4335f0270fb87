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
import errno
import json
import logging
import os
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx

from appliance import __version__, process
from appliance.bridge import Bridge, cancel_and_wait
from appliance.config import Settings, load_settings
from appliance.control.api import make_admin_app
from appliance.control.guard import ConnectionGate
from appliance.control.httpserver import HttpServer
from appliance.control.logring import LogRing
from appliance.control.operations import Operations
from appliance.control.status import StatusReport
from appliance.control.token import TokenCheck
from appliance.control.web import make_web_app
from appliance.errors import ConfigError, NotFoundError
from appliance.faces.service import FaceService
from appliance.ftp import FtpService
from appliance.guest.access import GuestAccess
from appliance.guest.address import WILDCARDS, base_url, guest_address, lan_address
from appliance.health import Health, every, sd_notify, watchdog, watchdog_interval
from appliance.ingest.hotfolder import HotFolder
from appliance.ingest.janitor import Janitor
from appliance.ingest.landing import Lander
from appliance.layout import Layout
from appliance.loghygiene import LogHygiene
from appliance.mdns import Mdns
from appliance.pki import CertPaths, ensure_certificates
from appliance.services import Ports, Services
from appliance.store import Store
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
        self.certs: CertPaths | None = None
        self.ports = Ports()
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
        check_ports(self.settings)  # before anything starts: a taken port changes nothing
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
            services = Services(
                settings=self.settings,
                layout=self.layout,
                store=self.store,
                reader=self.reader,
                ftp=self.ftp,
                sync=self.sync,
                faces=self.faces,
                guest=GuestAccess(self.settings.guest, self.layout),
                health=self.health,
                logs=self.logs,
                token=self.token,
                started=self.started,
                ports=self.ports,
            )
            self.report, self.operations = StatusReport(services), Operations(services)
            web_app = make_web_app(services)
            admin_app = make_admin_app(services, self.report, self.operations, web_app)
            servers = [await stack.enter_async_context(HttpServer(admin_app, uds=self.layout.control_socket))]
            admin = self.settings.admin
            if admin.port is not None:
                lan_app = make_admin_app(services, self.report, self.operations, web_app, lan=True)
                listener = await stack.enter_async_context(
                    HttpServer(lan_app, host=admin.host, port=admin.port)
                )
                self.ports.admin = listener.port
                servers.append(listener)
            w = self.settings.web
            self.web_gate = ConnectionGate(w.max_connections, w.max_connections_per_ip)
            web = await stack.enter_async_context(
                HttpServer(
                    web_app,
                    host=w.host,
                    port=w.port,
                    gate=self.web_gate,
                    header_timeout=w.header_timeout,
                    body_timeout=w.body_timeout,
                )
            )
            self.ports.web = web.port
            servers.append(web)
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
            self._print_addresses()
            self._start_heartbeats()
            stack.push_async_callback(cancel_and_wait, self._tasks)
            self._write_box_json()  # last: tests and tools take it as "ready"
            sd_notify("READY=1", f"STATUS={await self.report.status_line()}")
            logger.info("shutterbox %s ready (data in %s)", __version__, self.layout.root)
            await self.stopping.wait()
            sd_notify("STOPPING=1", "STATUS=shutting down: finishing uploads in flight")
            logger.info("shutting down")
            await self.ftp.drain(self.settings.ftp.drain_seconds)
            for server in servers:  # all at once; the stack then waits for each
                server.begin_stop()
        return 0

    def _start_heartbeats(self) -> None:
        """Probes for the parts that have no loop of their own to beat from, and the systemd
        watchdog (only when systemd asked for one)."""
        web_host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
            self.settings.web.host, self.settings.web.host
        )
        web_url = f"http://{'[' + web_host + ']' if ':' in web_host else web_host}:{self.ports.web}/healthz"

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
                asyncio.create_task(watchdog(self.health, interval, self.report.status_line), name="watchdog")
            )
            logger.info("systemd watchdog: pinging every %.1f s while every part beats", interval)

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
            "web_port": self.ports.web,
            "admin_port": self.ports.admin,
            "passive_ports": self.settings.ftp.passive_ports,
        }
        tmp = self.layout.box_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(self.layout.box_json)

    def _print_addresses(self) -> None:
        lines = address_lines(
            self.settings,
            self.operations.connect_info(),
            web_port=self.ports.web or self.settings.web.port,
            admin_port=self.ports.admin,
            control_socket=self.layout.control_socket,
        )
        say(lines)

    async def _first_start(self) -> None:
        if await self.store.list_events():
            return
        event = await self.store.create_event("Demo event", demo=True)
        key, secret = await self.operations.create_key(event.code, "main", "demo camera")
        info = self.operations.connect_info()
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
        say(lines)


def say(lines: list[str]) -> None:
    """Print the start banner to the operator's terminal. A terminal that is gone (an SSH
    session that dropped: EIO or EPIPE) never stops the box from serving; it is logged, without
    the banner, which may hold a password."""
    try:
        print("\n".join(lines), flush=True)  # noqa: T201
    except OSError as exc:
        logger.warning("the terminal is gone (%s); the start banner was not shown", exc.strerror or exc)
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the rest of the run


def address_lines(
    settings: Settings,
    connect: dict[str, Any],
    *,
    web_port: int,
    admin_port: int | None,
    control_socket: Path,
) -> list[str]:
    """The start banner: every address the box serves, as a person reads it (``connect`` is
    ``Operations.connect_info()``). No secret in it: under systemd it goes to the journal."""
    host, passive = connect["host"], f"passive ports {connect['passive_ports']}"
    guests = guest_address(settings, web_port)
    lines = [
        f"shutterbox {__version__} is serving:",
        f"  cameras, FTP    {host}:{connect['port']}  (plain FTP and explicit FTPS, AUTH TLS; {passive})",
    ]
    if connect["implicit_tls_port"]:
        lines.append(f"  cameras, FTPS   {host}:{connect['implicit_tls_port']}  (implicit TLS; {passive})")
    lines.append(f"  guest page      {guests}  (what phones open; each event at /e/CODE)")
    if admin_port is not None:
        admin = settings.admin.host
        admin_host = lan_address() if admin in WILDCARDS else admin
        lines.append(f"  admin API       {base_url(admin_host, admin_port)}  (needs the admin token)")
    else:
        lines.append("  admin API       no HTTP listener (admin.port is unset)")
    lines.append(f"  control socket  {control_socket}  (the shutterbox command and console)")
    return lines


def listeners(settings: Settings) -> list[tuple[str, str, int]]:
    """(setting, host, port) of every listener with a fixed port (0 takes any free one)."""
    wanted = [
        ("ftp.port", settings.ftp.host, settings.ftp.port),
        ("ftp.implicit_tls_port", settings.ftp.host, settings.ftp.implicit_tls_port),
        ("web.port", settings.web.host, settings.web.port),
        ("admin.port", settings.admin.host, settings.admin.port),
    ]
    return [(name, host, port) for name, host, port in wanted if port]


def check_ports(settings: Settings) -> None:
    """Every fixed port the box will listen on is free, or a ConfigError names the listener, the
    setting and the variable that move it (all of them at once). Bound as the listeners bind
    (SO_REUSEADDR), then let go: another program could still take one in between, rarely."""
    taken = []
    for name, host, port in listeners(settings):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                reason = "in use by another program" if exc.errno == errno.EADDRINUSE else exc.strerror
                variable = "SHUTTERBOX_" + name.upper().replace(".", "__")
                taken.append(
                    f"{name} = {port} on {host or 'every address'} is {reason}"
                    f" (move it with {name} in shutterbox.toml or {variable})"
                )
    if taken:
        raise ConfigError("cannot start: " + "; ".join(taken))


def run_box(settings: Settings, data_dir: Path) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(Box(settings, Layout(data_dir.resolve())).run())
    return 0
