"""The one address guests are given for the box when no request says which name they used: in
QR codes, on the table card, in the links the CLI and the console print, in ``shutterbox
status`` and in the start banner. (An answer to a guest's own request names the box as that
guest reached it: ``appliance.guest.access.link_base``.)

In order: ``guest.public_url`` when the operator set it; else ``http://<mdns name>.local[:port]``
only while mDNS advertises that name (a ``.local`` name nobody answers for resolves nowhere);
else the web listener's own address when it is bound to one; else the box's LAN IPv4 address
(the interface of the default route, else the first non-loopback one, ``127.0.0.1`` last). The
port is left out when it is 80.

Pure functions but for one socket probe (no packet is sent); run on whichever thread calls them
(the asyncio thread for the admin API and the status, the main thread at start).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

import psutil

from appliance.mdns import box_name

if TYPE_CHECKING:
    from appliance.config import Settings

WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names of "every address", compared only


def guest_address(settings: Settings, port: int) -> str:
    """The base URL guests open (no path, no trailing slash); ``port`` is the web listener's."""
    configured = settings.guest.public_url
    if configured:
        return configured.rstrip("/")
    if settings.mdns.enabled:
        host = f"{box_name(settings.mdns)}.local"
    elif settings.web.host not in WILDCARDS:
        host = settings.web.host  # a listener bound to one address answers on that one only
    else:
        host = lan_address()
    return base_url(host, port)


def base_url(host: str, port: int) -> str:
    """``http://host[:port]``, an IPv6 address in brackets, the port left out when it is 80."""
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}" + ("" if port == 80 else f":{port}")


def lan_address() -> str:
    """The box's IPv4 address on the LAN: the default route's interface, else the first
    non-loopback address, else ``127.0.0.1``."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: a UDP connect only picks the route
        address = str(probe.getsockname()[0])
        if not ipaddress.ip_address(address).is_loopback and address != "0.0.0.0":  # noqa: S104
            return address
    except OSError:
        pass  # no default route (a box on an isolated switch without DHCP)
    finally:
        probe.close()
    return first_address()


def first_address() -> str:
    """The first non-loopback IPv4 address of any interface (by interface name), else loopback."""
    for _name, addresses in sorted(psutil.net_if_addrs().items()):
        for addr in addresses:
            if addr.family == socket.AF_INET and not ipaddress.ip_address(addr.address).is_loopback:
                return str(addr.address)
    return "127.0.0.1"
