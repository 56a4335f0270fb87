"""The operator console (``shutterbox console``): a Textual app that polls the box's admin API
over the control socket and never touches the database.

Runs on the main thread, in Textual's asyncio loop; it has no other thread. One timer polls
``/api/status`` every ``poll_interval`` seconds, keeps a short history for the sparklines, then
asks the visible screen to reload its own data. A box that is down or restarting is a state
(the alert line says "box not reachable, retrying…"), never an exception: polling just goes on.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.logging import TextualHandler

from appliance.control.client import ApiError, AsyncControlClient, NotRunningError
from tui.screens.base import BoxScreen
from tui.screens.cameras import CamerasScreen
from tui.screens.checklist import ChecklistScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.deadletters import DeadLettersScreen
from tui.screens.events import EventsScreen
from tui.screens.firstboot import FIRST_BOOT_TOKEN, FirstBootToken, read_token
from tui.screens.forms import AddCameraForm, ConfirmScreen, EventLookForm, NewEventForm
from tui.screens.guest import GuestScreen
from tui.screens.help import HelpScreen, Section
from tui.screens.keys import KeysScreen
from tui.screens.logs import LogsScreen
from tui.screens.setup import CameraSetupScreen, CertificateScreen
from tui.status import integer, num
from tui.widgets import NAV

if TYPE_CHECKING:
    from tui.console import Console

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0
HISTORY = 90  # samples kept for the sparklines: 3 minutes at one poll every 2 s


class ConsoleApp(App[int]):
    TITLE = "shutterbox console"
    ENABLE_COMMAND_PALETTE = False
    MODES: ClassVar[dict[str, Any]] = {
        "dashboard": DashboardScreen,
        "cameras": CamerasScreen,
        "events": EventsScreen,
        "keys": KeysScreen,
        "deadletters": DeadLettersScreen,
        "guest": GuestScreen,
        "logs": LogsScreen,
        "checklist": ChecklistScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"show('{mode}')", label, show=False) for key, mode, label in NAV),
        Binding("c", "show('checklist')", "Event-day checklist", show=False),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self, data_dir: Path, poll_interval: float = POLL_SECONDS, first_boot_token: Path = FIRST_BOOT_TOKEN
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.first_boot_token = first_boot_token
        self.poll_interval = poll_interval
        self.client = AsyncControlClient(data_dir)
        self.status: dict[str, Any] | None = None
        self.unreachable: str | None = None
        self.unreachable_since: float | None = None
        self.pending_history: deque[float] = deque(maxlen=HISTORY)
        self.frames_history: deque[float] = deque(maxlen=HISTORY)
        self.polls = 0
        self._polling = False

    async def on_mount(self) -> None:
        await self.switch_mode("dashboard")
        token = read_token(self.first_boot_token)
        if token is not None:
            await self.push_screen(FirstBootToken(self.first_boot_token, token))
        self.set_interval(self.poll_interval, self.poll)
        self.run_worker(self.poll(), exit_on_error=False)

    async def on_unmount(self) -> None:
        await self.client.aclose()

    async def poll(self) -> None:
        """Fetch the status, then let the visible screen reload its data. Never raises."""
        if self._polling:
            return
        self._polling = True
        try:
            try:
                status = await self.client.status()
            except NotRunningError as exc:
                self.set_unreachable(_reason(exc))
            except ApiError as exc:
                self.set_unreachable(f"status refused ({exc.status}): {exc.detail}")
            else:
                self.apply_status(status)
            screen = self.screen
            if isinstance(screen, BoxScreen):
                screen.show_status()
                await screen.reload()
        except Exception:
            logger.exception("polling the box failed")
        finally:
            self._polling = False
            self.polls += 1

    def apply_status(self, status: dict[str, Any]) -> None:
        """Take a fresh ``/api/status`` (also used by tests to show fixed figures)."""
        previous = self.status
        if self.unreachable is not None:
            self.notify("the box is reachable again", timeout=4, markup=False)
        elif previous is not None and integer(previous, "pid") != integer(status, "pid"):
            self.notify(f"the box restarted (pid {integer(status, 'pid')})", timeout=6, markup=False)
        self.status = status
        self.unreachable = None
        self.unreachable_since = None
        pending = num(status, "queue_summary", "pending")
        frames = num(status, "throughput", "frames_per_min")
        self.pending_history.append(pending or 0.0)
        self.frames_history.append(frames or 0.0)

    def set_unreachable(self, reason: str) -> None:
        if self.unreachable is None:
            logger.warning("box not reachable: %s", reason)
            self.unreachable_since = time.time()
        self.unreachable = reason

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # while a form or the camera setup is open, finish it first
        return not (action == "show" and len(self.screen_stack) > 1)

    def help_sections(self) -> list[Section]:
        """What the help screen lists: the app's keys, then each screen's and each dialog's,
        straight from their ``BINDINGS``."""
        # the number keys are the titles below ("1 Dashboard" ...): one line for all of them
        numbers = Binding(f"{NAV[0][0]}-{NAV[-1][0]}", "show", "Go to that screen")
        nav = {f"show('{mode}')" for _, mode, _ in NAV}
        others = [b for b in Binding.make_bindings(self.BINDINGS) if b.action not in nav]
        sections: list[Section] = [("Every screen", [numbers, *others])]
        for key, mode, label in NAV:
            screen = self.MODES[mode]
            sections.append((f"{key} {label}", screen.BINDINGS))
        sections += [
            ("Camera setup", [*CameraSetupScreen.BINDINGS, *CertificateScreen.BINDINGS]),
            (
                "Forms",
                [
                    *NewEventForm.BINDINGS,
                    *AddCameraForm.BINDINGS,
                    *EventLookForm.BINDINGS,
                    *ConfirmScreen.BINDINGS,
                ],
            ),
            ("First start", FirstBootToken.BINDINGS),
        ]
        return sections

    async def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            await self.push_screen(HelpScreen(self.help_sections()))

    async def action_show(self, mode: str) -> None:
        if self.current_mode != mode:
            await self.switch_mode(mode)

    async def open_keys(self, event: str | None) -> None:
        """The keys screen, showing one event's keys."""
        await self.action_show("keys")
        if isinstance(self.screen, KeysScreen):
            await self.screen.set_event(event)

    async def open_guest(self, event: str) -> None:
        """The guest QR screen, showing one event's code."""
        await self.action_show("guest")
        if isinstance(self.screen, GuestScreen):
            await self.screen.set_event(event)


if TYPE_CHECKING:
    _: type[Console] = ConsoleApp  # mypy: the app is what its screens take it for


def _reason(exc: NotRunningError) -> str:
    """For the log: the transport's own words (refused, reset, timed out) when there are some."""
    cause = exc.__cause__
    return f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)


def run(data_dir: Path) -> int:
    """Run the console until the operator quits; returns the process exit code."""
    logging.basicConfig(level=logging.WARNING, handlers=[TextualHandler()])
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = ConsoleApp(data_dir)
    app.run()
    return app.return_code or 0
