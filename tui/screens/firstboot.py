"""The admin token a new box made at its first boot, shown once on the box's own screen.

First boot (image-build/firstboot.sh) leaves the token in a RAM-only file the box's account can
read; the console shows it until the operator confirms it is copied, then deletes the file. The
box keeps only the token's hash, so after that it can be replaced (``admin-token rotate``) but
never shown again.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

FIRST_BOOT_TOKEN = Path("/run/shutterbox/first-boot-token")


def read_token(path: Path) -> str | None:
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token or None


class FirstBootToken(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "done", "Copied: hide it for good")]
    DEFAULT_CSS = """
    FirstBootToken { align: center middle; }
    FirstBootToken > Vertical {
        width: 76; height: auto; border: round $warning; padding: 1 2; background: $surface;
    }
    FirstBootToken #token { margin: 1 0; text-style: bold; }
    """

    def __init__(self, path: Path, token: str) -> None:
        super().__init__()
        self.path = path
        self.token = token

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("First boot: the admin API token", style="bold"))
            yield Static(Text(self.token), id="token")
            yield Static(
                Text(
                    "For the cloud backend or a Prometheus server on the LAN (docs/admin-api.md). "
                    "The box keeps only its hash: copy it now. Enter hides it for good; "
                    "`shutterbox admin-token rotate` makes a new one."
                )
            )

    def action_done(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.dismiss(None)
