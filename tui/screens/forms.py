"""The console's forms: new event, add a camera (then its setup steps), and yes/no confirmation;
plus the flows that chain them. Modal screens; Escape cancels, Enter in a field submits.

Runs on the console's asyncio thread. Each form calls the admin API itself when submitted and
stays open with the box's reason when the box refuses, so the operator can correct and retry.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from appliance.control.client import ApiError, NotRunningError
from tui.camera_setup import BRAND_NAMES, BRANDS, Brand
from tui.console import Console
from tui.screens.setup import CameraSetupScreen

if TYPE_CHECKING:
    from tui.screens.base import BoxScreen

T = TypeVar("T")

FORM_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 66; height: auto; border: round $accent; padding: 1 2 0 2; background: $surface;
}}
{name} .note {{ color: $text-muted; margin-bottom: 1; }}
{name} .row {{ height: 1; margin-bottom: 1; }}
{name} .row Label {{ width: 11; }}
{name} .row Input, {name} .row Select {{ width: 1fr; }}
{name} .buttons {{ height: 1; }}
{name} .buttons Button {{ margin-right: 2; }}
{name} .error {{ color: $error; height: auto; min-height: 1; }}
"""


def field(label: str, widget: Input | Select[Any]) -> Horizontal:
    """One line of a form: a label and its (compact) field."""
    widget.compact = True
    return Horizontal(Label(label), widget, classes="row")


def buttons(submit: str) -> Horizontal:
    return Horizontal(
        Button(submit, variant="primary", id="submit", compact=True),
        Button("Cancel", id="cancel", compact=True),
        classes="buttons",
    )


class _Form(ModalScreen[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    @property
    def console_app(self) -> Console:
        return cast(Console, self.app)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def show_error(self, message: str) -> None:
        self.query_one(".error", Static).update(Text(message))

    async def call(self, request: Awaitable[T]) -> T | None:
        """Send one request; on refusal show why and return None (the form stays open)."""
        try:
            return await request
        except NotRunningError:
            self.show_error("box not reachable; try again when it is back")
        except ApiError as exc:
            self.show_error(f"refused: {exc.detail}")
        return None


class NewEventForm(_Form):
    """Create an event: ``POST /api/events``; dismissed with the new event."""

    DEFAULT_CSS = FORM_CSS.format(name="NewEventForm")

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "New event"
            yield Static(
                "Functions are parts of the event (ceremony, reception): comma-separated.", classes="note"
            )
            yield field("Name", Input(placeholder="e.g. Smith wedding", id="name"))
            yield field("Functions", Input(placeholder="main", id="functions"))
            yield field(
                "Originals",
                Select(
                    [("all go to S3", "all"), ("JPEG only", "jpeg"), ("none (proxies only)", "none")],
                    value="all",
                    allow_blank=False,
                    id="originals",
                ),
            )
            yield buttons("Create")
            yield Static(classes="error")

    @on(Button.Pressed, "#cancel")
    def cancelled(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    async def submit(self) -> None:
        name = self.query_one("#name", Input).value.strip()
        if not name:
            self.show_error("an event needs a name")
            self.query_one("#name", Input).focus()
            return
        raw = self.query_one("#functions", Input).value
        functions = [f.strip() for f in raw.split(",") if f.strip()]
        originals = str(self.query_one("#originals", Select).value)
        event = await self.call(self.console_app.client.create_event(name, functions, originals))
        if event is not None:
            self.dismiss(event)


class AddCameraForm(_Form):
    """Create an upload key (``POST /api/keys``); dismissed with ``(key, brand)``."""

    DEFAULT_CSS = FORM_CSS.format(name="AddCameraForm")

    def __init__(self, events: list[dict[str, Any]], event: str | None) -> None:
        super().__init__()
        self.events = {str(e.get("code")): e for e in events}
        self.event = event if event in self.events else next(iter(self.events), None)

    def compose(self) -> ComposeResult:
        options = [(Text(f"{code}  {e.get('name', '')}"), code) for code, e in self.events.items()]
        with Vertical() as box:
            box.border_title = "Add a camera"
            yield Static(
                "One key per body or transmitter. Its frames go to this event and function.", classes="note"
            )
            yield field(
                "Event", Select(options, value=self.event or Select.NULL, allow_blank=False, id="event")
            )
            yield field("Camera", Input(placeholder="a label, e.g. Canon R5 #1", id="camera"))
            yield field("Function", Input(value=self._first_function(self.event), id="function"))
            yield field(
                "Brand",
                Select([(BRAND_NAMES[b], b) for b in BRANDS], value="canon", allow_blank=False, id="brand"),
            )
            yield buttons("Create key")
            yield Static(classes="error")

    def on_mount(self) -> None:
        self.query_one("#camera", Input).focus()

    def _first_function(self, code: str | None) -> str:
        functions = self.events.get(code or "", {}).get("functions")
        return str(functions[0]) if isinstance(functions, list) and functions else "main"

    @on(Select.Changed, "#event")
    def event_changed(self, message: Select.Changed) -> None:
        self.query_one("#function", Input).value = self._first_function(str(message.value))

    @on(Button.Pressed, "#cancel")
    def cancelled(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    async def submit(self) -> None:
        event = self.query_one("#event", Select).value
        camera = self.query_one("#camera", Input).value.strip()
        function = self.query_one("#function", Input).value.strip() or "main"
        if not isinstance(event, str):
            self.show_error("create an event first (Events screen, n)")
            return
        if not camera:
            self.show_error("give the camera a label, e.g. Canon R5 #1")
            self.query_one("#camera", Input).focus()
            return
        key = await self.call(self.console_app.client.create_key(event, camera, function))
        if key is not None:
            self.dismiss((key, cast(Brand, self.query_one("#brand", Select).value)))


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 60; height: auto; border: round $warning; padding: 1 2; background: $surface;
    }
    ConfirmScreen .buttons { height: 1; margin-top: 1; }
    ConfirmScreen .buttons Button { margin-right: 2; }
    """

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text(self.question))
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes", compact=True)
                yield Button("No (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, message: Button.Pressed) -> None:
        self.dismiss(message.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


async def add_camera(screen: BoxScreen, event: str | None) -> None:
    """Add a camera: pick event, label and brand; create its key; show its setup steps."""
    events = await screen.act("list events", screen.client.events())
    if events is None:
        return
    if not events:
        screen.notify("create an event first (Events screen, n)", severity="warning", markup=False)
        return

    def created(result: tuple[dict[str, Any], Brand] | None) -> None:
        if result is not None:
            key, brand = result
            screen.app.push_screen(CameraSetupScreen(key, brand))

    screen.app.push_screen(AddCameraForm(events, event), created)


async def revoke(screen: BoxScreen, username: str) -> None:
    """Ask, then revoke a key: its sessions end at once and it never logs in again."""

    async def answered(yes: bool | None) -> None:
        if not yes:
            return
        result = await screen.act("revoke", screen.client.revoke_key(username))
        if result is not None:
            screen.notify(
                f"revoked {username} ({result.get('sessions_cut', 0)} live sessions cut)", markup=False
            )
            await screen.reload()

    question = (
        f"Revoke key {username}?\n\nIts live sessions end at once and it can never log in again "
        "(photos already uploaded stay). A revoked key cannot be reinstated."
    )
    screen.app.push_screen(ConfirmScreen(question, yes="Revoke"), answered)
