"""mDNS (Bonjour/Avahi-style) advertising: cameras and phones find the box by name.

Advertises ``_ftp._tcp`` (the camera port, with the FTPS modes in TXT) and ``_http._tcp`` (the
guest page) under ``<name>.local``. A service-name clash with another box on the LAN is
resolved by zeroconf itself (``allow_name_change``: the second box's service becomes
"<name> (2)"); the host names of two boxes differ from their first boot on
(``shutterbox-<id>``). Addresses are re-read every 30 s and the records updated when an
interface changes (a WiFi reconnect, a new DHCP lease). Everything is withdrawn at shutdown.

Runs on the asyncio loop (python-zeroconf's asyncio API; it keeps its own thread for I/O).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from types import TracebackType
from typing import TYPE_CHECKING, Self

import psutil
from zeroconf import InterfaceChoice, IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from appliance import __version__

if TYPE_CHECKING:
    from appliance.config import MdnsSettings

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0


def box_name(settings: MdnsSettings) -> str:
    """The advertised host label: the setting, else this machine's host name."""
    name = settings.name or socket.gethostname().split(".")[0] or "shutterbox"
    return name.lower()


def local_addresses(interfaces: list[str] | None) -> list[bytes]:
    """Packed IPv4 addresses to advertise: the configured ones, else every non-loopback one."""
    if interfaces:
        return [ipaddress.ip_address(a).packed for a in interfaces]
    found = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family == socket.AF_INET and not addr.address.startswith("127."):
                found.append(ipaddress.ip_address(addr.address).packed)
    return sorted(set(found)) or [ipaddress.ip_address("127.0.0.1").packed]


class Mdns:
    def __init__(
        self, settings: MdnsSettings, *, ftp_port: int, web_port: int, implicit_tls_port: int | None
    ) -> None:
        self.settings = settings
        self.name = box_name(settings)
        self.ftp_port = ftp_port
        self.web_port = web_port
        self.implicit_tls_port = implicit_tls_port
        self._zc: AsyncZeroconf | None = None
        self._services: list[ServiceInfo] = []
        self._task: asyncio.Task[None] | None = None

    def _infos(self, addresses: list[bytes]) -> list[ServiceInfo]:
        server = f"{self.name}.local."
        ftp_txt = {"path": "/", "tls": "explicit", "version": __version__}
        if self.implicit_tls_port:
            ftp_txt["implicit_tls_port"] = str(self.implicit_tls_port)
        return [
            ServiceInfo(
                "_ftp._tcp.local.",
                f"{self.name}._ftp._tcp.local.",
                port=self.ftp_port,
                properties=ftp_txt,
                server=server,
                addresses=addresses,
            ),
            ServiceInfo(
                "_http._tcp.local.",
                f"{self.name}._http._tcp.local.",
                port=self.web_port,
                properties={"path": "/", "purpose": "guest photo search", "version": __version__},
                server=server,
                addresses=addresses,
            ),
        ]

    async def __aenter__(self) -> Self:
        if not self.settings.enabled:
            return self
        self._zc = AsyncZeroconf(
            interfaces=self.settings.interfaces or InterfaceChoice.All, ip_version=IPVersion.V4Only
        )
        addresses = local_addresses(self.settings.interfaces)
        self._services = self._infos(addresses)
        for info in self._services:
            await self._zc.async_register_service(info, allow_name_change=True)
        logger.info(
            "mDNS: %s on %s (FTP %d, web %d)",
            ", ".join(i.name for i in self._services),
            ", ".join(str(ipaddress.ip_address(a)) for a in addresses),
            self.ftp_port,
            self.web_port,
        )
        self._task = asyncio.create_task(self._follow_addresses(addresses), name="mdns-refresh")
        return self

    async def _follow_addresses(self, current: list[bytes]) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            fresh = local_addresses(self.settings.interfaces)
            if fresh != current and self._zc is not None:
                for info in self._services:
                    info.addresses = fresh
                    await self._zc.async_update_service(info)
                logger.info("mDNS: addresses now %s", ", ".join(str(ipaddress.ip_address(a)) for a in fresh))
                current = fresh

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._zc is not None:
            await self._zc.async_unregister_all_services()  # goodbye packets: withdrawn at once
            await self._zc.async_close()
            self._zc = None
