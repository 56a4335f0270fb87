"""What the operator sees: the box's status, its cameras and its alerts, computed from the running
services (``appliance.services.Services``). Runs on the asyncio thread; reads through the admin
API's read-only connection, so a status poll never queues behind ingest's commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import shutil
import time
from typing import TYPE_CHECKING, Any

import psutil

from appliance import __version__, metrics
from appliance.guest.address import guest_address
from appliance.store.syncqueue import SyncQueue

if TYPE_CHECKING:
    from appliance.services import Services


class StatusReport:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def status_line(self) -> str:
        """One line for systemd's STATUS= (shown by ``systemctl status``)."""
        s = self.services
        counts = await s.store.counts()
        parts = [f"{counts['photos_total']} photos"]
        if s.faces.enabled:
            pending = (await s.faces.index_db.counts())["photos_pending"]
            parts.append(f"{pending} waiting for face index")
        if s.sync.enabled:
            jobs = await s.sync.queue.counts()
            parts.append(
                f"{jobs.get('pending', 0) + jobs.get('leased', 0)} sync jobs, uplink {s.sync.uplink.state}"
            )
        parts.append(f"{len(s.ftp.sessions.snapshot())} camera sessions")
        return ", ".join(parts)

    async def status(self) -> dict[str, Any]:
        s = self.services
        disk = shutil.disk_usage(s.layout.root)
        reserve = s.settings.storage.reserve_mb << 20
        frames, frame_bytes = metrics.INGEST_MINUTE.total()
        uploads, upload_bytes = metrics.SYNC_MINUTE.total()
        _, recent_bytes = metrics.INGEST_TEN_MINUTES.total()
        rate = recent_bytes / min(metrics.INGEST_TEN_MINUTES.seconds, max(1.0, time.time() - s.started))
        cloud = await s.sync.status(s.reader)
        status: dict[str, Any] = {
            "version": __version__,
            "versions": versions(),
            "pid": os.getpid(),
            "uptime_s": round(time.time() - s.started, 1),
            "data": str(s.layout.root),
            "queue": await s.reader.counts(),
            "queue_summary": await self._queue_summary(cloud),
            "throughput": {
                "frames_per_min": float(frames),
                "bytes_in_per_s": frame_bytes / 60.0,
                "uploads_per_min": float(uploads),
                "bytes_out_per_s": upload_bytes / 60.0,
            },
            "ftp": s.ftp.status(),
            "cloud": cloud,
            "faces": await s.faces.status(s.reader),
            "health": s.health.snapshot(),
            "stalled": s.health.stale(),
            # the address a phone opens (each event's page under /e/<code>)
            "guest_url": guest_address(s.settings, s.ports.web or s.settings.web.port),
            "web_port": s.ports.web,
            "admin_port": s.ports.admin,
            "system": await asyncio.to_thread(system_figures),
            "disk": {
                "free_bytes": disk.free,
                "total_bytes": disk.total,
                "reserve_bytes": reserve,
                "accepting_uploads": disk.free >= reserve,
                "evict_below_bytes": s.settings.storage.evict_below_mb << 20,
                # at the last ten minutes' ingest rate, until uploads are refused
                "time_to_full_s": max(0.0, disk.free - reserve) / rate if rate > 0 else None,
                **await SyncQueue(s.reader).evicted(),
            },
        }
        status["alerts"] = await self.alerts(status)
        return status

    async def _queue_summary(self, cloud: dict[str, Any] | None) -> dict[str, Any]:
        """The cloud queue at a glance: what waits, what runs, what failed for good."""
        s = self.services
        jobs = cloud["jobs"] if cloud else await SyncQueue(s.reader).counts()
        oldest = await SyncQueue(s.reader).oldest_waiting()
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
        s = self.services
        midnight = dt.datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        rows = await s.reader.camera_stats(midnight.astimezone(dt.UTC).isoformat(timespec="milliseconds"))
        live = s.ftp.sessions.snapshot()
        session_errors = s.ftp.sessions.errors()
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
        s = self.services
        limits = s.settings.alerts
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
