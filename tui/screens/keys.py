"""Keys: upload keys (all events, or one: ``f`` cycles the event filter), with add a camera
(``a``: creates the key and shows its setup steps) and revoke (``r``, after a confirmation).

Runs on the console's asyncio thread; reloads ``GET /api/keys`` on every poll while visible.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from tui.screens.base import BoxScreen
from tui.screens.forms import add_camera, revoke
from tui.status import DASH, fmt_clock, fmt_date, text
from tui.widgets import BoxTable


def _row(key: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    revoked = key.get("revoked_at")
    style = "dim" if revoked else ""
    return (
        str(key.get("username")),
        (
            Text(str(key.get("username")), style),
            Text(text(key, "camera") or DASH, style, no_wrap=True, overflow="ellipsis"),
            Text(text(key, "function") or DASH, style),
            fmt_date(key.get("created_at")),
            Text(f"revoked {fmt_clock(revoked)}", "red") if revoked else Text("active", "green"),
        ),
    )


class KeysScreen(BoxScreen):
    MODE = "keys"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_camera", "Add camera"),
        Binding("r", "revoke", "Revoke"),
        Binding("f", "filter", "Event filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.event: str | None = None
        self.events: list[str] = []
        self.keys: list[dict[str, Any]] = []

    def compose_body(self) -> ComposeResult:
        yield Static(id="keys-filter", classes="detail")
        yield BoxTable("User", "Camera", "Function", "Created", "State")
        yield Static("No keys: press a to add a camera.", classes="empty")

    async def load(self) -> str | None:
        self.events = [str(e.get("code")) for e in await self.client.events()]
        if self.event is not None and self.event not in self.events:
            self.event = None  # purged meanwhile
        self.keys = await self.client.keys(self.event)
        # oldest first, like the events: a key just made is the last row (usernames start with
        # the event's random code, so their order says nothing)
        self.keys.sort(key=lambda k: (str(k.get("created_at") or ""), str(k.get("username"))))
        self.query_one(BoxTable).fill([_row(k) for k in self.keys])
        self.query_one(".empty").set_class(not self.keys, "-shown")
        active = sum(1 for k in self.keys if not k.get("revoked_at"))
        scope = f"event {self.event}" if self.event else "all events"
        self.query_one("#keys-filter", Static).update(
            Text(f"Keys of {scope}: {active} active, {len(self.keys) - active} revoked  (f: filter)")
        )
        return None

    async def set_event(self, event: str | None) -> None:
        self.event = event
        await self.reload()

    async def action_filter(self) -> None:
        choices: list[str | None] = [None, *self.events]
        index = choices.index(self.event) if self.event in choices else 0
        await self.set_event(choices[(index + 1) % len(choices)])

    async def action_add_camera(self) -> None:
        # the event of the filter, else the newest event (not the highlighted key's: the cursor
        # starts on the demo camera's key)
        await add_camera(self, self.event)

    async def action_revoke(self) -> None:
        username = self.query_one(BoxTable).selected
        if username is None:
            return
        key = next((k for k in self.keys if k.get("username") == username), {})
        if key.get("revoked_at"):
            self.notify(f"{username} is already revoked", severity="warning", markup=False)
            return
        await revoke(self, username)
