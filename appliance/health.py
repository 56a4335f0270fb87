"""Liveness of the box's parts, and systemd's notify protocol spoken directly (no libsystemd).

Every long-lived part reports a heartbeat (``Health.beat``): each FTP listener from its own
I/O loop, the database writer by committing a write, the web server by answering its own
``/healthz`` over TCP, the face service and the cloud-sync monitor from their loops. The
watchdog task pings systemd (``WATCHDOG=1``) only while every part's beat is fresh, so a hung
part gets the box restarted by ``WatchdogSec=`` instead of silently stalling the venue.

``sd_notify`` follows systemd's protocol: one datagram per message to the unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Without that variable (not
started by systemd) every call is a no-op.

Beats come from any thread (plain dict writes under a lock); the watchdog runs on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


def sd_notify(*lines: str) -> bool:
    """Send one notify message (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``...). False when not
    under systemd or the socket is gone (never raises: the box runs on either way)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode("utf-8"), address)
    except OSError as exc:
        logger.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of systemd's ``WatchdogSec`` (as the protocol recommends), or None when no watchdog
    was asked for this process."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


class Health:
    """Named heartbeats. A part is stale when its last beat is older than ``max_age`` seconds."""

    def __init__(self, max_age: float = 30.0) -> None:
        self.max_age = max_age
        self._beats: dict[str, float] = {}
        self._lock = threading.Lock()

    def beat(self, part: str) -> None:
        with self._lock:
            self._beats[part] = time.monotonic()

    def forget(self, part: str) -> None:
        with self._lock:
            self._beats.pop(part, None)

    def stale(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        with self._lock:
            return sorted(p for p, at in self._beats.items() if now - at > self.max_age)

    def snapshot(self) -> dict[str, float]:
        """Seconds since each part's last beat."""
        now = time.monotonic()
        with self._lock:
            return {p: round(now - at, 1) for p, at in sorted(self._beats.items())}


async def every(seconds: float, part: str, health: Health, probe: Callable[[], Awaitable[object]]) -> None:
    """Beat for ``part`` each time ``probe()`` succeeds, every ``seconds`` (run as a task)."""
    while True:
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands as the
            # probe finishes (CPython gh-86296), and shutdown would wait for this task for ever
            async with asyncio.timeout(max(seconds, 5.0)):
                await probe()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed probe is exactly what stops the beat
            logger.warning("health probe %s failed: %r", part, exc)
        else:
            health.beat(part)
        await asyncio.sleep(seconds)


async def watchdog(health: Health, interval: float, status: Callable[[], Awaitable[str]]) -> None:
    """Ping systemd every ``interval`` while no part is stale; say which part is when one is."""
    reported: list[str] = []
    while True:
        stale = health.stale()
        if stale:
            if stale != reported:
                logger.error("watchdog: no heartbeat from %s; systemd will restart the box", ", ".join(stale))
                sd_notify(f"STATUS=stalled: {', '.join(stale)}")
            reported = stale
        else:
            if reported:
                logger.warning("watchdog: every part beats again")
                reported = []
            try:
                line = await status()
            except Exception as exc:  # noqa: BLE001 - the status line is informative only
                line = f"status unavailable: {exc!r}"
            sd_notify("WATCHDOG=1", f"STATUS={line}")
        await asyncio.sleep(interval)
