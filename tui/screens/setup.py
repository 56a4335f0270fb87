"""A camera's setup, right after its key was created: the values to enter and the steps for a
Canon, Nikon or Sony body (``b`` switches brand), the password (shown this once) and the box's
CA certificate to import where the body needs it (``v`` shows the PEM).

Runs on the console's asyncio thread. A full screen (not a modal), so it fits 80x24 and the
password is not shown over a live dashboard; it scrolls when the steps are longer than the screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, cast

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

from appliance.control.client import ApiError, NotRunningError
from tui.camera_setup import BRAND_NAMES, BRANDS, Brand, fingerprint, setup
from tui.console import Console
from tui.status import DASH, text


class CameraSetupScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("b", "next_brand", "Other brand"),
        Binding("v", "view_ca", "View CA cert"),
        Binding("escape,enter", "close", "Done"),
    ]
    DEFAULT_CSS = """
    CameraSetupScreen #setup-title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    CameraSetupScreen #setup-warning { height: 1; background: $warning-darken-3; padding: 0 1; }
    CameraSetupScreen VerticalScroll { height: 1fr; padding: 0 1; }
    """

    def __init__(self, key: dict[str, Any], brand: Brand) -> None:
        super().__init__()
        self.key = key
        self.brand = brand
        self.ca_pem: str | None = None
        self.ca_fingerprint: str | None = None
        self.data_dir = Path("DIR")

    @property
    def console_app(self) -> Console:
        return cast(Console, self.app)

    def compose(self) -> ComposeResult:
        yield Static(id="setup-title")
        yield Static(
            "The password is shown only now: enter it on the camera or write it down.", id="setup-warning"
        )
        with VerticalScroll():
            yield Static(id="setup-body")
        yield Footer()

    async def on_mount(self) -> None:
        self.data_dir = self.console_app.data_dir
        self.render_setup()
        self.query_one(VerticalScroll).focus()
        try:
            self.ca_pem = await self.console_app.client.ca_certificate()
        except (NotRunningError, ApiError):
            self.ca_pem = None
        self.ca_fingerprint = fingerprint(self.ca_pem) if self.ca_pem else None
        self.render_setup()

    def render_setup(self) -> None:
        """Show the key for the current brand (tests call it again after masking the key)."""
        steps = setup(self.brand, self.key, str(self.data_dir))
        camera = text(self.key, "camera") or DASH
        where = f"{text(self.key, 'event') or DASH}/{text(self.key, 'function') or DASH}"
        self.query_one("#setup-title", Static).update(
            Text(f"Camera {camera} ({where}) · {steps.title}", no_wrap=True, overflow="ellipsis")
        )
        values = Table.grid(padding=(0, 2))
        values.add_column(style="dim", no_wrap=True)
        values.add_column()
        for label, value in steps.values:
            values.add_row(label, Text(value, "bold") if label in ("User name", "Password") else value)
        numbered = Table.grid(padding=(0, 1))
        numbered.add_column(no_wrap=True, justify="right")
        numbered.add_column()
        for index, step in enumerate(steps.steps, 1):
            numbered.add_row(f"{index}.", step)
        ca = Text()
        ca.append("CA certificate: ", "bold")
        ca.append("import it (required)" if steps.ca == "required" else "import it only if the body asks")
        ca.append(f"\nthe file {self.data_dir}/tls/ca.crt, or press v to show it here")
        ca.append("\nSHA-256 fingerprint, to check the file you import:\n")
        digest = self.ca_fingerprint or DASH
        ca.append(f"{digest[:47]}\n{digest[48:]}" if len(digest) > 48 else digest)
        others = ", ".join(BRAND_NAMES[b] for b in BRANDS if b != self.brand)
        body = Group(
            values,
            Text(f"\n{steps.title}, step by step (b: {others}):", "bold"),
            numbered,
            Text(),
            ca,
        )
        self.query_one("#setup-body", Static).update(body)

    def action_next_brand(self) -> None:
        self.brand = BRANDS[(BRANDS.index(self.brand) + 1) % len(BRANDS)]
        self.render_setup()

    def action_view_ca(self) -> None:
        if self.ca_pem is None:
            self.notify(
                "the CA certificate could not be fetched from the box", severity="error", markup=False
            )
            return
        self.app.push_screen(CertificateScreen(self.ca_pem))

    def action_close(self) -> None:
        self.dismiss(None)


class CertificateScreen(ModalScreen[None]):
    """The box's CA certificate (PEM), to copy to a card for the camera to import."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,v", "close", "Close")]
    DEFAULT_CSS = """
    CertificateScreen { align: center middle; }
    CertificateScreen VerticalScroll {
        width: 72; height: 1fr; border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, pem: str) -> None:
        super().__init__()
        self.pem = pem

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "shutterbox CA certificate (save as shutterbox-ca.crt)"
            yield Static(Text(self.pem.strip()))
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
