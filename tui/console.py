"""What a screen may ask of the console app: the ``Console`` protocol. Screens depend on this
small module, never on ``tui.app`` (which imports every screen for its modes), so the package's
imports run one way: ``app`` -> ``screens`` -> ``console``.

Runs on the console's asyncio thread (the only thread it has). ``tui.app.ConsoleApp`` is the one
implementation; mypy checks it against this protocol there.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Protocol

from appliance.control.client import AsyncControlClient


class Console(Protocol):
    """The app as its screens see it: the client, the latest poll, and the two jumps between
    screens (events -> keys, events -> guest QR)."""

    data_dir: Path
    client: AsyncControlClient
    status: dict[str, Any] | None
    """The latest ``/api/status``; None before the first answer."""
    unreachable: str | None
    """Why the box cannot be reached now; None while it answers."""
    unreachable_since: float | None
    pending_history: deque[float]
    frames_history: deque[float]

    async def poll(self) -> None:
        """Fetch the status now (after an action that changes it), then reload the screen."""

    async def open_keys(self, event: str | None) -> None:
        """Show the keys screen, with one event's keys."""

    async def open_guest(self, event: str) -> None:
        """Show the guest QR screen, with one event's code."""
