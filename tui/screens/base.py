"""What every top-level console screen shares: the navigation and alert lines, a message line
for the box's refusals, the Footer of keys, and ``reload()``, which the app calls on every poll
while the screen is visible (and once when it becomes visible).

Runs on the console's asyncio thread. ``reload`` never raises: a box that cannot be reached is
shown by the alert line (the app keeps polling), a refusal by the message line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, ClassVar, TypeVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static

from appliance.control.client import ApiError, AsyncControlClient, NotRunningError
from tui.console import Console
from tui.widgets import AlertBar, NavBar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BoxScreen(Screen[None]):
    MODE: ClassVar[str] = ""

    DEFAULT_CSS = """
    BoxScreen #message { height: auto; padding: 0 1; color: $warning; display: none; }
    BoxScreen #message.-shown { display: block; }
    BoxScreen .empty { padding: 1 2; color: $text-muted; display: none; }
    BoxScreen .empty.-shown { display: block; }
    BoxScreen DataTable { height: 1fr; }
    BoxScreen DataTable.-empty { display: none; }
    BoxScreen .detail { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._reloading = asyncio.Lock()

    @property
    def console_app(self) -> Console:
        return cast(Console, self.app)

    @property
    def client(self) -> AsyncControlClient:
        return self.console_app.client

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield AlertBar()
        yield Static(id="message")
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_screen_resume(self) -> None:
        self.show_status()
        self.run_worker(self.reload(), group="reload", exit_on_error=False)

    def show_status(self) -> None:
        """Show the app's latest status (called after each poll, and on resume)."""
        app = self.console_app
        self.query_one(AlertBar).show(app.status, app.unreachable, app.unreachable_since)
        if app.status is not None and app.unreachable is None:
            self.on_status(app.status)

    def on_status(self, status: dict[str, Any]) -> None:
        """Screens that show status fields update them here."""

    async def reload(self) -> None:
        """Fetch this screen's data again; skipped if a reload is already running."""
        if self._reloading.locked() or self.console_app.unreachable is not None:
            return
        async with self._reloading:
            try:
                notice = await self.load()
            except NotRunningError:
                pass  # the alert line says so; the next poll tries again
            except ApiError as exc:
                self.set_message(f"the box refused: {exc.detail}")
            except Exception:
                logger.exception("reloading %s failed", type(self).__name__)
                self.set_message("internal error while reloading (see the console log)")
            else:
                self.set_message(notice)

    async def load(self) -> str | None:
        """Fetch and show this screen's data; return a notice for the message line, if any.
        Raises NotRunningError or ApiError (``reload`` shows them)."""
        return None

    def set_message(self, message: str | None) -> None:
        widget = self.query_one("#message", Static)
        widget.set_class(message is not None, "-shown")
        widget.update(Text(message or ""))

    async def act(self, what: str, call: Awaitable[T]) -> T | None:
        """Run one operator action against the box; a refusal becomes a notification (None)."""
        try:
            return await call
        except NotRunningError:
            self.notify(f"{what}: box not reachable", severity="error", markup=False)
        except ApiError as exc:
            self.notify(f"{what}: {exc.detail}", severity="error", timeout=8, markup=False)
        return None
