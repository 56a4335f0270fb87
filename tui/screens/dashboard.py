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


PORT_NAMES = {"ftp": "FTP port", "ftps_implicit": "implicit FTPS"}
FTP_WIDTH = 78  # the line under the panels at 80 columns, less its padding


def sync_off(status: dict[str, Any] | None) -> bool:
    """No cloud is configured: nothing is uploaded, photos stay on the box."""
    return dig(status, "cloud", "enabled") is False or dig(status, "queue_summary", "cloud_enabled") is False


def queue_off(status: dict[str, Any]) -> Text:
    """The queue panel with sync off: what its pending jobs mean when there is no cloud."""
    pending = integer(status, "queue_summary", "pending") or 0
    failed = integer(status, "queue_summary", "failed") or 0
    line = Text.assemble(("Cloud sync off", "bold"), ": photos stay\non the box, nothing is uploaded\n")
    line.append(f"{fmt_int(pending)} jobs held for a cloud" if pending else "nothing held for a cloud", "dim")
    if failed:
        line.append(f", {fmt_int(failed)} failed", "bold red")
    return line


def fit(segments: list[Text], width: int, lead: str = "") -> list[Text]:
    """``segments`` on as few lines of ``width`` cells as it takes, two spaces apart, each line
    starting with ``lead`` (dim); a line breaks between segments, never inside one."""
    lines: list[Text] = []
    line = Text(lead, "dim")
    for segment in segments:
        gap = 2 if line.cell_len > len(lead) else 0
        if line.cell_len > len(lead) and line.cell_len + gap + segment.cell_len > width:
            lines.append(line)
            line = Text(lead, "dim")
            gap = 0
        line.append(" " * gap)
        line.append_text(segment)
    if line.cell_len > len(lead):
        lines.append(line)
    for done in lines:
        done.truncate(width, overflow="ellipsis")
    return lines


def online_line(sessions: dict[str, Any], width: int) -> Text:
    """``Online user (sessions), ...`` on one line; the keys that do not fit are counted."""
    parts = [f"{user} ({n})" for user, n in sorted(sessions.items(), key=lambda item: str(item[0]))]
    line = Text("Online ", "dim")
    for index, part in enumerate(parts):
        left = len(parts) - index - 1
        room = len(f"  +{left} more") if left else 0
        if index and line.cell_len + 2 + len(part) + room > width:
            line.append(f"  +{left + 1} more", "dim")
            break
        line.append(f", {part}" if index else part)
    line.truncate(width, overflow="ellipsis")
    return line


def footer_line(status: dict[str, Any], width: int = FTP_WIDTH) -> Text:
    """The FTP listeners, logins, faces, version and who is online, in lines of ``width`` cells
    (broken between figures, never inside one), at most four lines."""
    segments: list[Text] = []
    ports = dig(status, "ftp", "ports")
    if isinstance(ports, dict):
        for name, port in ports.items():
            segments.append(Text.assemble((f"{PORT_NAMES.get(str(name), str(name))} ", "dim"), str(port)))
    else:
        segments.append(Text.assemble(("FTP port ", "dim"), DASH))
    sessions = dig(status, "ftp", "sessions")
    keys = len(sessions) if isinstance(sessions, dict) else None
    banned = dig(status, "ftp", "banned_ips")
    counters = dig(status, "ftp", "counters")
    if isinstance(counters, dict):  # a counter not yet bumped is absent: it is zero
        counters = {"login_ok": 0, "login_failed": 0, **counters}
    segments += [
        Text.assemble(("keys online ", "dim"), fmt_int(keys)),
        Text.assemble(("banned IPs ", "dim"), fmt_int(len(banned) if isinstance(banned, dict) else None)),
        Text.assemble(
            ("logins ", "dim"),
            f"{fmt_int(num(counters, 'login_ok'))} ok / {fmt_int(num(counters, 'login_failed'))} failed",
        ),
    ]
    lines = fit(segments, width)
    segments = []
    pending = num(status, "faces", "photos_pending")
    if pending is not None:
        segments.append(
            Text.assemble(
                ("Faces ", "dim"),
                f"{fmt_int(pending)} waiting · {fmt_int(num(status, 'faces', 'photos_indexed'))} indexed",
            )
        )
    version = text(status, "versions", "shutterbox") or text(status, "version")
    if version:
        segments.append(Text.assemble(("shutterbox ", "dim"), version))
    uptime = num(status, "uptime_s")
    if uptime is not None:  # to the minute, so the line does not redraw on every poll
        segments.append(
            Text.assemble(("up ", "dim"), fmt_duration(uptime) if uptime >= 3600 else f"{int(uptime // 60)}m")
        )
    lines += fit(segments, width)
    if isinstance(sessions, dict) and sessions:
        lines.append(online_line(sessions, width))
    return Text("\n").join(lines)


class DashboardScreen(BoxScreen):
    MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("s", "toggle_sync", "Pause/resume sync")]

    DEFAULT_CSS = """
    DashboardScreen Grid { grid-size: 2; grid-rows: 7 6; height: 13; }
    DashboardScreen Grid Panel { height: 100%; }
    DashboardScreen #ftp { padding: 0 1; height: auto; max-height: 4; }
    DashboardScreen .caption { color: $text-muted; height: 1; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._sync_off = True  # until the first status says otherwise

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
        off = sync_off(status)
        self.query_one("#ingest", Figures).show_rows(ingest(status))
        if off:
            self.query_one("#queue", Figures).show_text(queue_off(status))
        else:
            self.query_one("#queue", Figures).show_rows(queue(status))
        self.query_one("#uplink", Figures).show_text(uplink(status))
        self.query_one("#box", Figures).show_rows(box(status))
        self.query_one("#ftp", Figures).show_text(footer_line(status, max(20, self.app.size.width - 2)))
        self.query_one("#frames-spark", Spark).show(list(self.console_app.frames_history))
        self.query_one("#queue-spark", Spark).show(list(self.console_app.pending_history))
        caption = "held for a cloud, last 3 min" if off else "pending, last 3 min"
        self.query_one("#queue-caption", Figures).show_text(Text(caption))
        if off != self._sync_off:
            self._sync_off = off
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # s is hidden from the footer (and does nothing) until there is a sync to pause
        status = self.console_app.status
        return not (action == "toggle_sync" and (status is None or sync_off(status)))

    async def action_toggle_sync(self) -> None:
        status = self.console_app.status
        if dig(status, "cloud", "paused"):
            result = await self.act("resume sync", self.client.resume_sync())
        else:
            result = await self.act("pause sync", self.client.pause_sync())
        if result is not None:
            self.notify("sync paused" if result.get("paused") else "sync running", markup=False)
            await self.console_app.poll()
