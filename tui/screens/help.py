"""The help screen (``?`` or F1): every key of every screen, read from the screens' own
``BINDINGS`` when it opens, so the list cannot drift from what the keys do.

Runs on the console's asyncio thread. The app hands over the sections (a title and the bindings
of one screen or form); this module imports no screen, so ``app`` -> ``screens`` stays one way.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

Section = tuple[str, Sequence[BindingType]]

KEY_NAMES = {
    "question_mark": "?",
    "escape": "Esc",
    "enter": "Enter",
    "f1": "F1",
    "up": "↑",
    "down": "↓",
    "home": "Home",
    "end": "End",
    "tab": "Tab",
}


def key_name(key: str) -> str:
    return KEY_NAMES.get(key, key)


def entries(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """(keys, what they do) per action: keys bound to the same action share one line."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for binding in Binding.make_bindings(bindings):
        description = binding.description or binding.action.replace("_", " ")
        keys = grouped.setdefault((binding.action, description), [])
        if key_name(binding.key) not in keys:
            keys.append(key_name(binding.key))
    return [("/".join(keys), description) for (_, description), keys in grouped.items()]


def section_text(title: str, bindings: Iterable[BindingType], width: int) -> Text:
    """One screen's keys under its title, the keys in a column ``width`` cells wide."""
    text = Text(title, "bold underline")
    for keys, description in entries(bindings):
        text.append("\n")
        text.append(f" {keys:<{width - 1}}", "bold cyan")
        text.append(f" {description}")
    return text


def columns(sections: Sequence[Section], count: int = 2) -> list[list[Section]]:
    """The sections in at most ``count`` columns, in their order, split where the tallest column
    is the shortest it can be (a dozen sections: every split is tried)."""
    heights = [1 + len(entries(bindings)) for _, bindings in sections]

    def best(start: int, left: int) -> tuple[int, list[int]]:
        """(tallest column, where the columns after the first start) for sections[start:]."""
        rest = sum(heights[start:])
        if left == 1 or len(heights) - start <= 1:
            return rest, []
        choice: tuple[int, list[int]] = (rest, [])
        for cut in range(start + 1, len(heights)):
            tallest, cuts = best(cut, left - 1)
            tallest = max(sum(heights[start:cut]), tallest)
            if tallest < choice[0]:
                choice = (tallest, [cut, *cuts])
        return choice

    _, cuts = best(0, count)
    bounds = [0, *cuts, len(sections)]
    return [list(sections[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


class HelpScreen(ModalScreen[None]):
    """Every key of the console, per screen; any of Esc, ?, F1 or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,f1,q", "close", "Close help"),
    ]
    DEFAULT_CSS = """
    HelpScreen { background: $surface; }
    HelpScreen #help-title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    HelpScreen VerticalScroll { height: 1fr; padding: 0 1; }
    HelpScreen Horizontal { height: auto; }
    HelpScreen .help-column { width: 1fr; height: auto; }
    HelpScreen #help-close { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, sections: Sequence[Section]) -> None:
        super().__init__()
        self.sections = list(sections)

    def compose(self) -> ComposeResult:
        width = 2 + max((len(keys) for _, b in self.sections for keys, _ in entries(b)), default=1)
        yield Static("Keys of every screen", id="help-title")
        with VerticalScroll(), Horizontal():
            for column in columns(self.sections):
                yield Static(
                    Text("\n").join(section_text(title, bindings, width) for title, bindings in column),
                    classes="help-column",
                )
        yield Static("Esc, ? or F1 closes this help", id="help-close")

    def action_close(self) -> None:
        self.dismiss(None)
