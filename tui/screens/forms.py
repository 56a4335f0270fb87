"""The console's forms: new event, the event's guest pages, add a camera (then its setup steps),
and yes/no confirmation;
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
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Select, Static

from appliance.control.client import ApiError, NotRunningError
from tui.camera_setup import BRAND_NAMES, BRANDS, Brand, guess_brand
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
{name} .row Input, {name} .row Select, {name} .row RadioSet {{ width: 1fr; }}
{name} .row.-tall {{ height: auto; }}
{name} RadioSet {{ border: none; padding: 0; height: auto; background: $surface; }}
{name} RadioSet.-across {{ layout: horizontal; }}
{name} RadioSet.-across RadioButton {{ margin-right: 2; }}
{name} Select > SelectOverlay.-textual-compact {{ border: round $accent !important; background: $panel; }}
{name} Choice {{ background: $surface; }}
{name} .buttons {{ height: 1; }}
{name} .buttons Button {{ margin-right: 2; }}
{name} .error {{ color: $error; height: auto; min-height: 1; }}
"""


def field(label: str, widget: Input | Select[Any] | RadioSet) -> Horizontal:
    """One line of a form: a label and its (compact) field. A short list of choices is a
    RadioSet, all choices in view: no dropdown to open over the fields and buttons below."""
    widget.compact = True
    tall = isinstance(widget, RadioSet) and not widget.has_class("-across")
    return Horizontal(Label(label), widget, classes="row -tall" if tall else "row")


class Choice(RadioButton):
    """A radio button that reads in any terminal: ``(●)`` chosen, ``( )`` not (colour aside)."""

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble("(", ("●" if self.value else " ", style), ")")


def choices(options: list[tuple[str, str]], value: str, id: str, across: bool = False) -> RadioSet:
    """One RadioSet of ``(label, value)`` options, ``value`` chosen; each button's id is
    ``{id}-{value}``."""
    return RadioSet(
        *(Choice(label, value == v, id=f"{id}-{v}", compact=True) for label, v in options),
        id=id,
        classes="-across" if across else "",
    )


def chosen(radios: RadioSet) -> str | None:
    """The value of the pressed button of a ``choices`` set."""
    button = radios.pressed_button
    if button is None or button.id is None or radios.id is None:
        return None
    return button.id.removeprefix(f"{radios.id}-")


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

    @on(Button.Pressed, "#cancel")
    def cancelled(self) -> None:
        self.action_cancel()

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
                choices(
                    [("all go to S3", "all"), ("JPEG only", "jpeg"), ("none (proxies only)", "none")],
                    "all",
                    id="originals",
                ),
            )
            yield buttons("Create")
            yield Static(classes="error")

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
        originals = chosen(self.query_one("#originals", RadioSet)) or "all"
        event = await self.call(self.console_app.client.create_event(name, functions, originals))
        if event is not None:
            self.dismiss(event)


class EventLookForm(_Form):
    """The event as its guests see it (``PATCH /api/events/{code}``): its name, day, accent colour
    and cover photo on the pages and the table card, whether photos wait for the host's approval,
    and whether guests may search by selfie. Sends only what changed; dismissed with the event."""

    DEFAULT_CSS = FORM_CSS.format(name="EventLookForm")

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event

    def compose(self) -> ComposeResult:
        e = self.event
        with Vertical() as box:
            box.border_title = f"Guest pages of {e.get('code')}"
            yield Static("On the guest pages and table card. Empty fields clear.", classes="note")
            yield field("Name", Input(value=str(e.get("name") or ""), id="name"))
            yield field("Date", Input(value=str(e.get("date") or ""), placeholder="yyyy-mm-dd", id="date"))
            yield field("Accent", Input(value=str(e.get("accent") or ""), placeholder="#rrggbb", id="accent"))
            cover = e.get("cover_photo_id")
            yield field(
                "Cover",
                Input(value="" if cover is None else str(cover), placeholder="a photo id", id="cover"),
            )
            yield field(
                "Photos",
                choices(
                    [("public at once", "open"), ("after I approve", "approve")],
                    str(e.get("moderation") or "open"),
                    id="moderation",
                    across=True,
                ),
            )
            yield field(
                "Selfies",
                choices(
                    [("search on", "on"), ("off: gallery only", "off")],
                    "off" if e.get("face_search") is False else "on",
                    id="search",
                    across=True,
                ),
            )
            yield buttons("Save")
            yield Static(classes="error")

    def changes(self) -> dict[str, Any] | str:
        """What the operator changed, as the PATCH body; or why it cannot be sent."""
        e = self.event
        out: dict[str, Any] = {}
        name = self.query_one("#name", Input).value.strip()
        if not name:
            return "an event needs a name"
        if name != e.get("name"):
            out["name"] = name
        for key, widget in (("date", "#date"), ("accent", "#accent")):
            value = self.query_one(widget, Input).value.strip() or None
            if value != e.get(key):
                out[key] = value
        cover_text = self.query_one("#cover", Input).value.strip()
        if cover_text and not cover_text.isdecimal():
            return f"the cover is a photo's id (a number), not {cover_text!r}"
        cover = int(cover_text) if cover_text else None
        if cover != e.get("cover_photo_id"):
            out["cover_photo_id"] = cover
        moderation = chosen(self.query_one("#moderation", RadioSet)) or "open"
        if moderation != (e.get("moderation") or "open"):
            out["moderation"] = moderation
        search = chosen(self.query_one("#search", RadioSet)) != "off"
        if search != (e.get("face_search") is not False):
            out["face_search"] = search
        return out

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    async def submit(self) -> None:
        changes = self.changes()
        if isinstance(changes, str):
            self.show_error(changes)
            return
        if not changes:
            self.dismiss(self.event)
            return
        code = str(self.event.get("code"))
        event = await self.call(self.console_app.client.edit_event(code, changes))
        if event is not None:
            self.dismiss(event)


def default_event(events: list[dict[str, Any]]) -> str | None:
    """The event a new camera most likely belongs to: the newest that is not the demo event
    (the demo only while it is the only one)."""
    real = [e for e in events if not e.get("demo")] or events
    newest = max(real, key=lambda e: str(e.get("created_at") or ""), default=None)
    return None if newest is None else str(newest.get("code"))


class AddCameraForm(_Form):
    """Create an upload key (``POST /api/keys``); dismissed with ``(key, brand)``. The function
    is one the event declares; the brand follows the camera label until the operator picks one."""

    DEFAULT_CSS = FORM_CSS.format(name="AddCameraForm")

    def __init__(self, events: list[dict[str, Any]], event: str | None) -> None:
        super().__init__()
        self.events = {str(e.get("code")): e for e in events}
        self.event = event if event in self.events else default_event(events)
        self.guessed: Brand | None = "canon"  # the brand shown until the operator picks one
        """None once the operator picked a brand: the label no longer changes it."""

    def compose(self) -> ComposeResult:
        options = [(Text(f"{code}  {e.get('name', '')}"), code) for code, e in self.events.items()]
        functions = self.functions(self.event)
        with Vertical() as box:
            box.border_title = "Add a camera"
            yield Static(
                "One key per body or transmitter. Its frames go to this event and function.", classes="note"
            )
            yield field(
                "Event", Select(options, value=self.event or Select.NULL, allow_blank=False, id="event")
            )
            yield field("Camera", Input(placeholder="a label, e.g. Canon R5 #1", id="camera"))
            yield field(
                "Function",
                Select([(f, f) for f in functions], value=functions[0], allow_blank=False, id="function"),
            )
            yield field(
                "Brand", choices([(BRAND_NAMES[b], b) for b in BRANDS], "canon", id="brand", across=True)
            )
            yield buttons("Create key")
            yield Static(classes="error")

    def on_mount(self) -> None:
        self.query_one("#camera", Input).focus()

    def functions(self, code: str | None) -> list[str]:
        """The functions ``code`` declares (a camera may only go to one of these)."""
        functions = self.events.get(code or "", {}).get("functions")
        declared = [str(f) for f in functions] if isinstance(functions, list) else []
        return declared or ["main"]

    @on(Select.Changed, "#event")
    def event_changed(self, message: Select.Changed) -> None:
        functions = self.functions(str(message.value))
        select = self.query_one("#function", Select)
        select.set_options([(f, f) for f in functions])
        select.value = functions[0]

    @on(Input.Changed, "#camera")
    def label_changed(self, message: Input.Changed) -> None:
        guess = guess_brand(message.value)
        if self.guessed is None or guess is None or guess == self.guessed:
            return
        self.guessed = guess
        self.query_one(f"#brand-{guess}", RadioButton).value = True

    @on(RadioSet.Changed, "#brand")
    def brand_changed(self) -> None:
        if chosen(self.query_one("#brand", RadioSet)) != self.guessed:
            self.guessed = None  # the operator's pick: typing no longer changes it

    @property
    def brand(self) -> Brand:
        picked = chosen(self.query_one("#brand", RadioSet))
        return next((b for b in BRANDS if b == picked), "canon")

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit")
    async def submit(self) -> None:
        event = self.query_one("#event", Select).value
        camera = self.query_one("#camera", Input).value.strip()
        function = self.query_one("#function", Select).value
        if not isinstance(event, str):
            self.show_error("create an event first (Events screen, n)")
            return
        if not camera:
            self.show_error("give the camera a label, e.g. Canon R5 #1")
            self.query_one("#camera", Input).focus()
            return
        if not isinstance(function, str):
            self.show_error("pick one of the event's functions")
            return
        key = await self.call(self.console_app.client.create_key(event, camera, function))
        if key is not None:
            self.dismiss((key, self.brand))


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
