"""The dashboard: is everything flowing? Ingest rate, queue (with a sparkline), uplink, disk
and time to full, CPU temperature, FTP sessions; the alert line above says what needs a human.

Runs on the console's asyncio thread. It shows only ``/api/status`` (fetched by the app on every
poll), so it costs the box nothing beyond that one call; missing fields show as ``—``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.widgets import Static

from tui.screens.base import BoxScreen
from tui.status import (
    DASH,
    dig,
    fmt_bytes,
    fmt_clock,
    fmt_duration,
    fmt_int,
    fmt_rate,
    integer,
    num,
    text,
)
from tui.widgets import Figures, Panel, Row, Spark

UPLINK_STYLE = {"online": "bold green", "degraded": "bold yellow", "offline": "bold red"}


def ingest(status: dict[str, Any]) -> list[Row]:
    frames = num(status, "throughput", "frames_per_min")
    inbound = num(status, "throughput", "bytes_in_per_s")
    sessions = dig(status, "ftp", "sessions")
    live = sum(v for v in sessions.values() if isinstance(v, int)) if isinstance(sessions, dict) else None
    return [
        ("Frames/min", fmt_rate(frames), "In", DASH if inbound is None else f"{fmt_bytes(inbound)}/s"),
        ("Sessions", fmt_int(live), "Photos", fmt_int(num(status, "queue", "photos_total"))),
        ("Rejected", fmt_int(num(status, "queue", "rejections")), "", ""),
    ]


def queue(status: dict[str, Any]) -> list[Row]:
    failed = integer(status, "queue_summary", "failed")
    return [
        (
            "Pending",
            fmt_int(num(status, "queue_summary", "pending")),
            "In flight",
            fmt_int(num(status, "queue_summary", "in_flight")),
        ),
        (
            "Failed",
            Text(fmt_int(failed), "bold red" if failed else ""),
            "Oldest",
            fmt_duration(num(status, "queue_summary", "oldest_pending_age_s")),
        ),
        ("", "", "", ""),
    ]


def uplink(status: dict[str, Any]) -> Text:
    cloud = dig(status, "cloud")
    if not isinstance(cloud, dict):
        return Text("cloud sync: —", "dim")
    if cloud.get("enabled") is False:
        return Text.assemble(("cloud sync off", "bold"), "\nno cloud.bucket set: photos stay on the box")
    state = text(cloud, "uplink") or DASH
    line = Text.assemble((f"● {state}", UPLINK_STYLE.get(state, "bold")))
    since = dig(cloud, "uplink_since")
    if since is not None:
        line.append(f" since {fmt_clock(since)}")
    paused = cloud.get("paused")
    line.append("\nsync ")
    line.append("PAUSED (s resumes)" if paused else "running", "bold yellow" if paused else "")
    if not paused:
        out = num(status, "throughput", "bytes_out_per_s")
        line.append(f" · ↑ {DASH if out is None else fmt_bytes(out) + '/s'}")
        line.append(f", {fmt_rate(num(status, 'throughput', 'uploads_per_min'))} uploads/min")
    jobs = cloud.get("jobs") if isinstance(cloud.get("jobs"), dict) else {}
    counts = {state: num(jobs, state) or 0 for state in ("pending", "done", "dead")}
    line.append(f"\n{fmt_int(counts['pending'])} pending, {fmt_int(counts['done'])} done, ")
    line.append(f"{fmt_int(counts['dead'])} dead", "bold red" if counts["dead"] else "")
    bucket = text(cloud, "bucket")
    if bucket:
        line.append(f"\ns3://{bucket}", "dim")
    return line


def box(status: dict[str, Any]) -> list[Row]:
    free, total = num(status, "disk", "free_bytes"), num(status, "disk", "total_bytes")
    accepting = dig(status, "disk", "accepting_uploads")
    full = num(status, "disk", "time_to_full_s")
    temp = num(status, "system", "cpu_temp_c")
    load_1m = num(status, "system", "load", 0)
    cpu = num(status, "system", "cpu_percent")
    return [
        ("Disk free", fmt_bytes(free), "of", fmt_bytes(total)),
        (
            "Full in",
            fmt_duration(full),
            "Uploads",
            Text("refused (452)", "bold red") if accepting is False else ("accepted" if accepting else DASH),
        ),
        (
            "CPU temp",
            DASH if temp is None else Text(f"{temp:.1f} °C", "bold red" if temp >= 80 else ""),
            "CPU",
            DASH if cpu is None else f"{cpu:.0f}%",
        ),
        (
            "Load",
            DASH if load_1m is None else f"{load_1m:.2f}",
            "Memory",
            memory(status),
        ),
    ]


def memory(status: dict[str, Any]) -> str:
    used, total = num(status, "system", "memory_used_bytes"), num(status, "system", "memory_total_bytes")
    if used is not None and total:
        return f"{used / total:.0%} used"
    return fmt_bytes(used)


def footer_line(status: dict[str, Any]) -> Text:
    ports = dig(status, "ftp", "ports")
    port_text = ", ".join(f"{k} {v}" for k, v in ports.items()) if isinstance(ports, dict) else DASH
    sessions = dig(status, "ftp", "sessions")
    keys = len(sessions) if isinstance(sessions, dict) else None
    banned = dig(status, "ftp", "banned_ips")
    counters = dig(status, "ftp", "counters")
    if isinstance(counters, dict):  # a counter not yet bumped is absent: it is zero
        counters = {"login_ok": 0, "login_failed": 0, **counters}
    line = Text.assemble(
        ("FTP ", "dim"),
        port_text,
        ("  keys online ", "dim"),
        fmt_int(keys),
        ("  banned IPs ", "dim"),
        fmt_int(len(banned) if isinstance(banned, dict) else None),
        ("  logins ", "dim"),
        f"{fmt_int(num(counters, 'login_ok'))} ok / {fmt_int(num(counters, 'login_failed'))} failed",
    )
    pending = num(status, "faces", "photos_pending")
    if pending is not None:
        line.append("\nFaces ", "dim")
        line.append(f"{fmt_int(pending)} waiting · {fmt_int(num(status, 'faces', 'photos_indexed'))} indexed")
    version = text(status, "versions", "shutterbox") or text(status, "version")
    if version:
        line.append("  shutterbox ", "dim")
        line.append(version)
    uptime = num(status, "uptime_s")
    if uptime is not None:  # to the minute, so the line does not redraw on every poll
        line.append(" up ", "dim")
        line.append(fmt_duration(uptime) if uptime >= 3600 else f"{int(uptime // 60)}m")
    if isinstance(sessions, dict) and sessions:
        online = sorted(sessions.items(), key=lambda item: str(item[0]))
        line.append("\nOnline ", "dim")
        line.append(", ".join(f"{user} ({n})" for user, n in online))
    return line


class DashboardScreen(BoxScreen):
    MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("s", "toggle_sync", "Pause/resume sync")]

    DEFAULT_CSS = """
    DashboardScreen Grid { grid-size: 2; grid-rows: 7 6; height: 13; }
    DashboardScreen Grid Panel { height: 100%; }
    DashboardScreen #ftp { padding: 0 1; height: auto; max-height: 5; }
    DashboardScreen .caption { color: $text-muted; height: 1; }
    """

    def compose_body(self) -> ComposeResult:
        with Grid():
            yield Panel(
                "Ingest",
                Figures(id="ingest"),
                Spark(id="frames-spark"),
                Static("frames/min, last 3 min", classes="caption"),
            )
            yield Panel(
                "Queue",
                Figures(id="queue"),
                Spark(id="queue-spark"),
                Figures(id="queue-caption", classes="caption"),
            )
            yield Panel("Uplink", Figures(id="uplink"))
            yield Panel("Box", Figures(id="box"))
        yield Figures(id="ftp")

    def on_status(self, status: dict[str, Any]) -> None:
        self.query_one("#ingest", Figures).show_rows(ingest(status))
        self.query_one("#queue", Figures).show_rows(queue(status))
        self.query_one("#uplink", Figures).show_text(uplink(status))
        self.query_one("#box", Figures).show_rows(box(status))
        self.query_one("#ftp", Figures).show_text(footer_line(status))
        self.query_one("#frames-spark", Spark).show(list(self.console_app.frames_history))
        self.query_one("#queue-spark", Spark).show(list(self.console_app.pending_history))
        cloud_off = dig(status, "queue_summary", "cloud_enabled") is False
        caption = "pending, last 3 min" + (" · sync off" if cloud_off else "")
        self.query_one("#queue-caption", Figures).show_text(Text(caption))

    async def action_toggle_sync(self) -> None:
        status = self.console_app.status
        if dig(status, "cloud", "enabled") is False:
            self.notify(
                "cloud sync is off on this box (no cloud.bucket set)", severity="warning", markup=False
            )
            return
        if dig(status, "cloud", "paused"):
            result = await self.act("resume sync", self.client.resume_sync())
        else:
            result = await self.act("pause sync", self.client.pause_sync())
        if result is not None:
            self.notify("sync paused" if result.get("paused") else "sync running", markup=False)
            await self.console_app.poll()
