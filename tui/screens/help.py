"""The help screen (``?`` or F1): every key of every screen, read from the screens' own
``BINDINGS`` when it opens, so the list cannot drift from what the keys do.

Runs on the console's asyncio thread. The app hands over the sections (a title and the bindings
of one screen or form); this module imports no screen, so ``app`` -> ``screens`` stays one way.
"""

from __future__ import annotations

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
    """The sections in ``count`` columns of about the same height, in their order."""
    heights = [1 + len(entries(bindings)) for _, bindings in sections]
    target = sum(heights) / count
    result: list[list[Section]] = [[]]
    height = 0
    for section, lines in zip(sections, heights, strict=True):
        if result[-1] and height + lines / 2 > target and len(result) < count:
            result.append([])
            height = 0
        result[-1].append(section)
        height += lines
    return result


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
