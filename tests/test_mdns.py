"""mDNS: a zeroconf browser in the test finds the box's camera and guest services on loopback,
with the right ports, name, address and TXT records, and sees them withdrawn at shutdown.
(Two boxes get distinct names from their host names, unique from first boot; zeroconf's own
probing for a clash cannot be exercised on loopback, where every peer shares 127.0.0.1.)"""

from __future__ import annotations

import time
from pathlib import Path

from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

from tests.boxproc import BoxProcess, make_box


class Seen(ServiceListener):
    def __init__(self) -> None:
        self.added: set[str] = set()
        self.removed: set[str] = set()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.added.add(name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.removed.add(name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        pass


def mdns_box(tmp: Path) -> BoxProcess:
    return make_box(
        tmp,
        mdns__enabled="true",
        mdns__name="venuebox",
        mdns__interfaces='["127.0.0.1"]',
        faces__enabled="false",
        ftp__implicit_tls_port="0",
    )


def wait(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_cameras_and_phones_find_the_box_by_name(tmp_path: Path) -> None:
    zc = Zeroconf(interfaces=["127.0.0.1"])
    ftp_seen, http_seen = Seen(), Seen()
    browsers = [
        ServiceBrowser(zc, "_ftp._tcp.local.", ftp_seen),
        ServiceBrowser(zc, "_http._tcp.local.", http_seen),
    ]
    first = mdns_box(tmp_path / "one").start(timeout=60)
    try:
        wait(lambda: "venuebox._ftp._tcp.local." in ftp_seen.added)
        wait(lambda: "venuebox._http._tcp.local." in http_seen.added)
        info = zc.get_service_info("_ftp._tcp.local.", "venuebox._ftp._tcp.local.", timeout=3000)
        assert info is not None
        assert info.port == first.ftp_port and info.server == "venuebox.local."
        assert info.parsed_addresses() == ["127.0.0.1"]
        assert info.properties[b"tls"] == b"explicit"
        assert int(info.properties[b"implicit_tls_port"]) == first.info["ftps_implicit_port"]
        web = zc.get_service_info("_http._tcp.local.", "venuebox._http._tcp.local.", timeout=3000)
        assert web is not None and web.port == first.info["web_port"]

        first.stop()
        wait(lambda: "venuebox._ftp._tcp.local." in ftp_seen.removed)
    finally:
        first.stop()
        for browser in browsers:
            browser.cancel()
        zc.close()
