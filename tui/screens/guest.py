"""Guest QR: the guest page of an event (its address and whether a PIN is set) with the QR code
drawn in the terminal, for guests to scan off the operator's screen. Up/down picks the event.

Runs on the console's asyncio thread; reloads ``GET /api/events`` on every poll while visible and
``GET /api/events/{code}/guest`` when the highlighted event changes. ``p`` fetches the event's
table card (``GET /api/events/{code}/card``, a PDF) and writes it to the current folder (the data
folder when that cannot be written), on a worker thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tui.qr import qr_text
from tui.screens.base import BoxScreen
from tui.status import DASH, text


class GuestScreen(BoxScreen):
    MODE = "guest"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("p", "card", "Table card (PDF)")]

    DEFAULT_CSS = """
    GuestScreen Horizontal { height: 1fr; }
    GuestScreen OptionList { width: 30; height: 1fr; }
    GuestScreen #guest-side { width: 1fr; padding: 0 1; }
    GuestScreen #guest-url { height: auto; }
    GuestScreen #guest-qr { height: auto; width: auto; margin: 0 0; }
    GuestScreen #guest-note { height: auto; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[str] = []
        self.event: str | None = None
        self.guest: dict[str, Any] | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal():
            yield OptionList(id="guest-events")
            with Vertical(id="guest-side"):
                yield Static(id="guest-url")
                yield Static(id="guest-qr")
                yield Static(id="guest-note")

    async def load(self) -> str | None:
        events = await self.client.events()
        codes = [str(e.get("code")) for e in events]
        options = self.query_one(OptionList)
        if codes != self.codes:
            self.codes = codes
            options.clear_options()
            options.add_options(
                [
                    Option(Text(f"{text(e, 'code')}  {text(e, 'name') or DASH}"), id=text(e, "code"))
                    for e in events
                ]
            )
            if self.event not in codes:
                self.event = codes[-1] if codes else None  # the newest event
            if self.event is not None:
                options.highlighted = codes.index(self.event)
        if self.event is not None and (self.guest is None or self.guest.get("event") != self.event):
            self.show_guest(await self.client.guest(self.event))
        elif self.event is None:
            self.show_guest(None)
        return None

    async def set_event(self, code: str) -> None:
        self.event = code
        self.guest = None
        await self.reload()
        if code in self.codes:
            self.query_one(OptionList).highlighted = self.codes.index(code)

    async def on_option_list_option_highlighted(self, message: OptionList.OptionHighlighted) -> None:
        code = message.option.id
        if code is not None and code != self.event:
            self.event = code
            self.guest = None
            await self.reload()

    def show_guest(self, guest: dict[str, Any] | None) -> None:
        """Show one event's guest page (tests call it with a fixed address)."""
        self.guest = guest
        url = text(guest, "url")
        if guest is None or url is None:
            self.query_one("#guest-url", Static).update(Text("No event yet: create one on the Events screen"))
            self.query_one("#guest-qr", Static).update("")
            self.query_one("#guest-note", Static).update("")
            return
        self.query_one("#guest-url", Static).update(Text(url, "bold", no_wrap=True, overflow="fold"))
        self.query_one("#guest-qr", Static).update(qr_text(url))
        code = text(guest, "event") or DASH
        pin = "a PIN is set: guests type it first" if guest.get("pin") else "no PIN"
        self.query_one("#guest-note", Static).update(
            Text(
                f"event {code} · {pin}\ntable card: press p for a PDF here, or\n"
                f"  shutterbox event guest {code} --out card.pdf"
            )
        )

    async def action_card(self) -> None:
        """Write the highlighted event's table card as a PDF and say where."""
        code = self.event
        if code is None:
            self.notify("no event yet: create one on the Events screen", severity="warning", markup=False)
            return
        card = await self.act("table card", self.client.card(code, "pdf"))
        if card is None:
            return
        try:
            path = await asyncio.to_thread(write_card, f"card-{code}.pdf", card, self.console_app.data_dir)
        except OSError as exc:
            self.notify(f"table card: cannot write it: {exc}", severity="error", timeout=8, markup=False)
            return
        self.notify(f"table card for {code} written to {path}", timeout=10, markup=False)


def write_card(name: str, card: bytes, data_dir: Path) -> Path:
    """``card`` written as ``name`` in the current folder, else in the data folder; its path."""
    try:
        path = Path.cwd() / name
        path.write_bytes(card)
    except OSError:
        path = data_dir.resolve() / name
        path.write_bytes(card)
    return path
