"""The event-day checklist (``c``): each line of docs/operator-guide.md's checklist with its live
state as the box sees it (``GET /api/checklist``): done, not yet (with what is missing), off
(no cloud) or by hand (the box cannot know). Under it, what ``shutterbox doctor`` finds
(``GET /api/doctor``: a few seconds, so at most once a minute, in the background). Read-only.

Runs on the console's asyncio thread; reloads on every poll while visible.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Static

from appliance.control.client import ApiError
from tui.screens.base import BoxScreen
from tui.status import DASH, text
from tui.widgets import BoxTable

DOCTOR_EVERY_S = 60.0
LEVEL_STYLES = {"OK": "green", "WARN": "yellow", "FAIL": "bold red", "SKIP": "dim"}
MARKS = {
    "done": ("[x]", "green"),
    "not yet": ("[ ]", "yellow"),
    "off": ("off", "dim"),
    "by hand": ("hand", "dim"),
}


def _row(i: int, line: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    mark, style = MARKS.get(text(line, "state") or "", ("?", ""))
    return (
        str(i),
        (
            Text(mark, style=style),
            Text(text(line, "text") or DASH, no_wrap=True, overflow="ellipsis"),
            Text(text(line, "detail") or DASH, no_wrap=True, overflow="ellipsis"),
        ),
    )


class ChecklistScreen(BoxScreen):
    MODE = "checklist"
    DEFAULT_CSS = """
    ChecklistScreen #doctor { height: auto; max-height: 6; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []
        self.doctor_at = 0.0

    def compose_body(self) -> ComposeResult:
        yield BoxTable("", "Event day", "The box sees", squeeze=("Event day", "The box sees"))
        yield Static(classes="detail", id="checklist-detail")
        yield Static("Checking what commonly breaks at a venue ...", id="doctor")

    async def load(self) -> str | None:
        try:
            self.lines = await self.client.checklist()
        except ApiError as exc:
            if exc.status != 503:
                raise
            self.lines = []  # "the box is starting": nothing to show yet
        self.query_one(BoxTable).fill([_row(i, line) for i, line in enumerate(self.lines)])
        self.show_detail()
        if time.monotonic() - self.doctor_at > DOCTOR_EVERY_S:
            self.doctor_at = time.monotonic()
            self.run_worker(self.run_doctor(), group="doctor", exit_on_error=False)
        return None

    async def run_doctor(self) -> None:
        try:
            result = await self.client.doctor()
        except ApiError as exc:
            self.query_one("#doctor", Static).update(f"shutterbox doctor could not run: {exc}")
            return
        checks = result.get("checks", [])
        trouble = [c for c in checks if c.get("level") in ("FAIL", "WARN")]
        shown = Text("shutterbox doctor: ", style="bold")
        shown.append(
            f"{len(checks) - len(trouble)} of {len(checks)} checks fine"
            + (": every check fine" if not trouble else "; the others:")
        )
        for check in trouble:
            level = str(check.get("level", "?"))
            shown.append(f"\n{level:<5}", style=LEVEL_STYLES.get(level, ""))
            shown.append(f"{check.get('check', '')}: ", style="bold")
            shown.append(str(check.get("text", "")))
        self.query_one("#doctor", Static).update(shown)

    def on_data_table_row_highlighted(self) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        """The highlighted line whole: its detail can be longer than the column."""
        selected = self.query_one(BoxTable).selected
        line = self.lines[int(selected)] if selected is not None and selected.isdecimal() else None
        shown = Text()
        if line is not None and int(selected or 0) < len(self.lines):
            shown.append(f"{text(line, 'text')}: ", style="bold")
            shown.append(text(line, "detail") or DASH)
        self.query_one("#checklist-detail", Static).update(shown)
