"""The event-day checklist (``c``): each line of docs/operator-guide.md's checklist with its live
state as the box sees it (``GET /api/checklist``): done, not yet (with what is missing), off
(no cloud) or by hand (the box cannot know). Read-only.

Runs on the console's asyncio thread; reloads on every poll while visible.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.widgets import Static

from appliance.control.client import ApiError
from tui.screens.base import BoxScreen
from tui.status import DASH, text
from tui.widgets import BoxTable

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
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def compose_body(self) -> ComposeResult:
        yield BoxTable("", "Event day", "The box sees", squeeze=("The box sees",))
        yield Static(classes="detail", id="checklist-detail")

    async def load(self) -> str | None:
        try:
            self.lines = await self.client.checklist()
        except ApiError as exc:
            if exc.status != 503:
                raise
            self.lines = []  # "the box is starting": nothing to show yet
        self.query_one(BoxTable).fill([_row(i, line) for i, line in enumerate(self.lines)])
        self.show_detail()
        return None

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
