"""Dead letters: sync jobs that failed for good (access denied, an image Rekognition refuses),
with the reason; ``r`` retries the highlighted job from scratch, ``d`` discards it (after a
confirmation). An empty list says so.

Runs on the console's asyncio thread; reloads ``GET /api/deadletters`` on every poll while visible.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from appliance.control.client import ApiError
from tui.screens.base import BoxScreen
from tui.screens.forms import ConfirmScreen
from tui.status import DASH, fmt_age, integer, text
from tui.widgets import BoxTable

EMPTY = "No dead letters: no sync job has failed for good."


def job_id(letter: dict[str, Any]) -> int | None:
    return integer(letter, "job_id") if "job_id" in letter else integer(letter, "id")


def _row(letter: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    return (
        str(job_id(letter)),
        (
            str(job_id(letter)),
            text(letter, "kind") or DASH,
            text(letter, "event") or DASH,
            Text(text(letter, "original_name") or DASH, no_wrap=True, overflow="ellipsis"),
            str(integer(letter, "attempts") or 0),
            Text(text(letter, "reason") or DASH, no_wrap=True, overflow="ellipsis"),
        ),
    )


class DeadLettersScreen(BoxScreen):
    MODE = "deadletters"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry"),
        Binding("d", "discard", "Discard"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.letters: dict[str, dict[str, Any]] = {}

    def compose_body(self) -> ComposeResult:
        yield BoxTable("Job", "Kind", "Event", "File", "Tries", "Reason")
        yield Static(EMPTY, classes="empty", id="deadletters-empty")
        yield Static(classes="detail", id="deadletter-detail")

    async def load(self) -> str | None:
        try:
            letters = await self.client.dead_letters()
        except ApiError as exc:
            if exc.status != 503:
                raise
            letters = []  # "the box is starting": nothing to show yet
        self.letters = {str(job_id(d)): d for d in letters}
        self.query_one(BoxTable).fill([_row(d) for d in letters])
        self.query_one("#deadletters-empty").set_class(not letters, "-shown")
        self.show_detail()
        return None

    def on_data_table_row_highlighted(self) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        letter = self.letters.get(self.query_one(BoxTable).selected or "")
        line = Text()
        if letter is not None:
            failed = fmt_age(letter.get("updated_at"))
            line.append(f"photo {letter.get('photo_id', DASH)} · failed {failed}: ")
            line.append(text(letter, "reason") or DASH, "red")
        self.query_one("#deadletter-detail", Static).update(line)

    def _selected(self) -> int | None:
        selected = self.query_one(BoxTable).selected
        if selected is None or selected not in self.letters:
            self.notify("no dead letter selected", severity="warning", markup=False)
            return None
        return job_id(self.letters[selected])

    async def action_retry(self) -> None:
        job = self._selected()
        if job is None:
            return
        if await self.act("retry", self.client.retry_dead_letter(job)) is not None:
            self.notify(f"job {job} queued again", markup=False)
            await self.reload()

    async def action_discard(self) -> None:
        job = self._selected()
        if job is None:
            return

        async def answered(yes: bool | None) -> None:
            if yes and await self.act("discard", self.client.discard_dead_letter(job)) is not None:
                self.notify(f"job {job} discarded", markup=False)
                await self.reload()

        question = (
            f"Discard sync job {job}?\n\nIts photo stays on the box, but this job will not reach the cloud."
        )
        self.app.push_screen(ConfirmScreen(question, yes="Discard"), answered)
