"""Events: the list of events with their functions and guest settings (and, for an event whose
host approves each photo, how many await approval); create one (``n``), add a camera to the
highlighted one (``a``), set what its guests see (``e``: name, date, accent colour, cover photo,
approval, face search), open its keys (Enter) or its guest QR code (``g``).

Runs on the console's asyncio thread; reloads ``GET /api/events`` on every poll while visible.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from tui.screens.base import BoxScreen
from tui.screens.forms import EventLookForm, NewEventForm, add_camera
from tui.status import DASH, fmt_date, fmt_when, text
from tui.widgets import BoxTable


def _name(event: dict[str, Any]) -> str:
    suffix = " (demo)" if event.get("demo") else ""
    awaiting = event.get("awaiting_approval")  # a number only when the host approves each photo
    if isinstance(awaiting, int):
        suffix += f" ({awaiting} awaiting approval)"
    return f"{text(event, 'name') or DASH}{suffix}"


def _functions(event: dict[str, Any]) -> str:
    functions = event.get("functions")
    return ", ".join(str(f) for f in functions) if isinstance(functions, list) else DASH


def _row(event: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    return (
        str(event.get("code")),
        (
            str(event.get("code")),
            _name(event),
            _functions(event),
            text(event, "originals_policy") or DASH,
            "yes" if event.get("pin") else "no",
            fmt_when(event.get("created_at")),
        ),
    )


def detail(event: dict[str, Any] | None) -> Text:
    """The highlighted event in full (the table may shorten its name and functions)."""
    line = Text()
    if event is not None:
        line.append(f"{event.get('code')} ", "bold")
        line.append(f"{_name(event)} · functions {_functions(event)} · created ")
        line.append(fmt_date(event.get("created_at")))
        line.append("\n")
    line.append("Enter: the event's keys", "dim")
    return line


class EventsScreen(BoxScreen):
    MODE = "events"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_event", "New event"),
        Binding("a", "add_camera", "Add camera"),
        Binding("e", "look", "Guest pages"),
        Binding("g", "guest", "Guest QR"),
        Binding("enter", "keys", "The event's keys", show=False),  # the table's Enter, for the help
    ]

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def compose_body(self) -> ComposeResult:
        yield BoxTable(
            "Code", "Name", "Functions", "Originals", "PIN", "Created", squeeze=("Name", "Functions")
        )
        yield Static("No events yet: press n to create one.", classes="empty")
        yield Static(detail(None), classes="detail", id="event-detail")

    async def load(self) -> str | None:
        self.events = await self.client.events()
        self.query_one(BoxTable).fill([_row(e) for e in self.events])
        self.query_one(".empty").set_class(not self.events, "-shown")
        self.show_detail()
        return None

    def on_data_table_row_highlighted(self) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        event = next((e for e in self.events if str(e.get("code")) == self.selected), None)
        self.query_one("#event-detail", Static).update(detail(event))

    @property
    def selected(self) -> str | None:
        return self.query_one(BoxTable).selected

    def action_new_event(self) -> None:
        async def created(event: dict[str, Any] | None) -> None:
            if event is None:
                return
            self.notify(f"created event {event.get('code')} ({event.get('name')})", markup=False)
            await self.reload()
            table = self.query_one(BoxTable)
            codes = [str(e.get("code")) for e in self.events]
            if event.get("code") in codes:
                table.move_cursor(row=codes.index(str(event.get("code"))), animate=False)

        self.app.push_screen(NewEventForm(), created)

    async def action_add_camera(self) -> None:
        await add_camera(self, self.selected)

    def action_look(self) -> None:
        event = next((e for e in self.events if str(e.get("code")) == self.selected), None)
        if event is None:
            return

        async def saved(changed: dict[str, Any] | None) -> None:
            if changed is not None and changed is not event:
                self.notify(f"saved the guest pages of {changed.get('code')}", markup=False)
                await self.reload()

        self.app.push_screen(EventLookForm(event), saved)

    async def action_guest(self) -> None:
        code = self.selected
        if code is None:
            return
        await self.console_app.open_guest(code)

    async def action_keys(self) -> None:
        code = self.selected
        if code is None:
            return
        await self.console_app.open_keys(code)

    async def on_data_table_row_selected(self, message: DataTable.RowSelected) -> None:
        await self.action_keys()
