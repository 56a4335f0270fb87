"""Log: the box's recent log lines (``GET /api/logs?after=SEQ``), followed while visible; ``w``
shows only warnings and errors.

Runs on the console's asyncio thread. Lines are fetched from where the last fetch stopped (the
newest page of them if more are waiting), from the start again after the box restarted (its pid
changed), and the view keeps the last ``MAX_LINES``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import RichLog

from appliance.control.client import ApiError
from tui.screens.base import BoxScreen
from tui.status import fmt_clock, integer, text

MAX_LINES = 2000
PAGE = 500
LEVEL_STYLE = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red"}
QUIET = {"DEBUG", "INFO"}


def log_line(line: dict[str, Any]) -> Text:
    level = (text(line, "level") or "?").upper()
    return Text.assemble(
        (fmt_clock(line.get("time")), "dim"),
        " ",
        (f"{level:<7.7}", LEVEL_STYLE.get(level, "")),
        " ",
        (f"{text(line, 'logger') or '?'}: ", "dim"),
        text(line, "message") or "",
    )


class LogsScreen(BoxScreen):
    MODE = "logs"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("w", "warnings", "Warnings only")]

    DEFAULT_CSS = """
    LogsScreen RichLog { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.next = 0
        self.pid: int | None = None
        self.lines: list[dict[str, Any]] = []
        self.warnings_only = False

    def compose_body(self) -> ComposeResult:
        yield RichLog(max_lines=MAX_LINES, wrap=True, markup=False, auto_scroll=True)

    async def load(self) -> str | None:
        pid = integer(self.console_app.status, "pid")
        if pid != self.pid:  # another box process: its log starts a new sequence
            if self.pid is not None:
                self.next = 0
                self.query_one(RichLog).write(Text(f"— the box restarted (pid {pid}) —", "bold"))
            self.pid = pid
        try:
            page = await self.client.logs(after=self.next, limit=PAGE)
        except ApiError as exc:
            if exc.status == 404:
                return "this box does not serve its log yet: use journalctl -u shutterbox -f"
            raise
        lines = [line for line in page.get("lines") or [] if isinstance(line, dict)]
        following = integer(page, "next")
        self.next = following if following is not None else self.next
        self.lines = (self.lines + lines)[-MAX_LINES:]
        log = self.query_one(RichLog)
        for line in lines:
            if self.shown(line):
                log.write(log_line(line))
        return None

    def shown(self, line: dict[str, Any]) -> bool:
        return not self.warnings_only or (text(line, "level") or "").upper() not in QUIET

    def action_warnings(self) -> None:
        self.warnings_only = not self.warnings_only
        log = self.query_one(RichLog)
        log.clear()
        for line in self.lines:
            if self.shown(line):
                log.write(log_line(line))
        self.notify(
            "warnings and errors only" if self.warnings_only else "all log lines", timeout=2, markup=False
        )
