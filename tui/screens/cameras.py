"""Cameras: every upload key with its live sessions, last frame, frames today and in total, and
errors, refreshed on every poll (``GET /api/cameras``). Add a camera or revoke one from here.

Runs on the console's asyncio thread. A box without ``/api/cameras`` (older than the console)
still gets a table, built from ``/api/keys`` and the live sessions in the status, with ``—`` for
the frame counts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from appliance.control.client import ApiError
from tui.screens.base import BoxScreen
from tui.screens.forms import add_camera, revoke
from tui.status import DASH, dig, fmt_age, fmt_int, integer, text
from tui.widgets import BoxTable


def _row(camera: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    revoked = bool(camera.get("revoked"))
    live = integer(camera, "connected")
    errors = integer(camera, "errors")
    if revoked:
        live_cell = Text("revoked", "dim")
    elif live:
        live_cell = Text(f"● {live}", "bold green")
    else:
        live_cell = Text("○ 0" if live == 0 else DASH, "dim")
    style = "dim" if revoked else ""
    return (
        str(camera.get("username", "?")),
        (
            Text(text(camera, "camera") or DASH, style),
            Text(f"{text(camera, 'event') or DASH}/{text(camera, 'function') or DASH}", style),
            live_cell,
            fmt_age(camera.get("last_frame_at")),
            fmt_int(integer(camera, "frames_today")),
            fmt_int(integer(camera, "frames_total")),
            Text(fmt_int(errors), "bold red" if errors else ""),
        ),
    )


def cameras_from_keys(keys: list[dict[str, Any]], status: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The camera rows an older box can give: its keys and live sessions, no frame counts."""
    sessions = dig(status, "ftp", "sessions")
    sessions = sessions if isinstance(sessions, dict) else {}
    return [
        {
            **key,
            "connected": sessions.get(key.get("username"), 0),
            "revoked": key.get("revoked_at") is not None,
        }
        for key in keys
    ]


class CamerasScreen(BoxScreen):
    MODE = "cameras"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_camera", "Add camera"),
        Binding("r", "revoke", "Revoke"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.cameras: dict[str, dict[str, Any]] = {}
        self.fallback = False

    def compose_body(self) -> ComposeResult:
        yield BoxTable("Camera", "Event/function", "Live", "Last frame", "Today", "Total", "Err")
        yield Static("No cameras yet: press a to add one.", classes="empty")
        yield Static(classes="detail", id="camera-detail")

    async def load(self) -> str | None:
        try:
            cameras = await self.client.cameras()
            self.fallback = False
        except ApiError as exc:
            if exc.status != 404:
                raise
            cameras = cameras_from_keys(await self.client.keys(), self.console_app.status)
            self.fallback = True
        # by label, as the operator names them (``Canon R5 #1``, ``Canon R5 #2``), not by username,
        # which starts with the event's random code
        cameras.sort(key=lambda c: ((text(c, "camera") or "").casefold(), str(c.get("username"))))
        self.cameras = {str(c.get("username")): c for c in cameras}
        table = self.query_one(BoxTable)
        table.fill([_row(c) for c in cameras])
        self.query_one(".empty").set_class(not cameras, "-shown")
        self.show_detail()
        return None

    def on_data_table_row_highlighted(self) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        camera = self.cameras.get(self.query_one(BoxTable).selected or "")
        line = Text()
        if camera is not None:
            line.append(f"user {camera.get('username')}")
            if camera.get("last_error"):
                line.append(f"  last error {fmt_age(camera.get('last_error_at'))}: ", "dim")
                line.append(str(camera.get("last_error")), "red")
        if self.fallback:
            line.append("\nthis box has no /api/cameras yet: frame counts unavailable", "dim")
        self.query_one("#camera-detail", Static).update(line)

    async def action_add_camera(self) -> None:
        # no event is chosen here (the cursor is on a camera, at first the demo's): the form
        # offers the newest event, most likely the one just made for this shoot
        await add_camera(self, event=None)

    async def action_revoke(self) -> None:
        username = self.query_one(BoxTable).selected
        if username is not None:
            await revoke(self, username)
