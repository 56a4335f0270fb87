"""Widgets every console screen shares: the navigation line, the alert line and a titled panel.

Runs on the console's asyncio thread (Textual's); widgets only render what the app hands them.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Static

from tui.status import dig, fmt_clock, text

NAV: tuple[tuple[str, str, str], ...] = (
    ("1", "dashboard", "Dashboard"),
    ("2", "cameras", "Cameras"),
    ("3", "events", "Events"),
    ("4", "keys", "Keys"),
    ("5", "deadletters", "Dead letters"),
    ("6", "guest", "Guest QR"),
    ("7", "logs", "Log"),
)


class NavBar(Static):
    """One line of screens and their number keys; the current one is highlighted."""

    DEFAULT_CSS = """
    NavBar { height: 1; background: $panel; color: $text-muted; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def on_mount(self) -> None:
        line = Text(no_wrap=True, overflow="crop")
        for key, mode, label in NAV:
            style = "bold reverse" if mode == self.current else ""
            line.append(f" {key} {label} ", style)
        self.update(line)


class AlertBar(Static):
    """The line that says whether something needs a human: the box's alerts, or that the box
    cannot be reached (the console keeps retrying)."""

    DEFAULT_CSS = """
    AlertBar { height: auto; max-height: 2; padding: 0 1; background: $success-darken-3; }
    AlertBar.-warning { background: $warning-darken-3; }
    AlertBar.-critical, AlertBar.-unreachable { background: $error-darken-2; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown: tuple[str, Text] | None = None

    def show(self, status: dict[str, Any] | None, unreachable: str | None, since: float | None) -> None:
        level, line = self.line(status, unreachable, since)
        if (level, line) == self._shown:
            return
        self._shown = (level, line)
        self.set_class(False, "-warning", "-critical", "-unreachable")
        if level:
            self.add_class(f"-{level}")
        self.update(line)

    @staticmethod
    def line(status: dict[str, Any] | None, unreachable: str | None, since: float | None) -> tuple[str, Text]:
        """(level, text): level is "", "warning", "critical" or "unreachable"."""
        if unreachable is not None:
            when = f" (since {fmt_clock(since)})" if since is not None else ""
            return "unreachable", Text(f"✖ box not reachable, retrying…{when}", "bold")
        if status is None:
            return "", Text("… connecting to the box")
        alerts = [a for a in dig(status, "alerts") or [] if isinstance(a, dict)]
        if not alerts:
            version = text(status, "version") or "?"
            known = isinstance(dig(status, "alerts"), list)
            return "", Text(f"✔ {'no alerts' if known else 'box running'} · shutterbox {version}")
        alerts.sort(key=lambda a: a.get("level") != "critical")
        level = "critical" if alerts[0].get("level") == "critical" else "warning"
        line = Text(f"{'▲' if level == 'critical' else '⚠'} {alerts[0].get('text', '?')}", "bold")
        if len(alerts) > 1:
            line.append(f"  (+{len(alerts) - 1} more: {alerts[1].get('text', '?')})", "not bold")
        return level, line


Row = tuple[Any, Any, Any, Any]


class Figures(Static):
    """Figures that redraw only when they change: the dashboard polls every 2 s, and an idle box
    should cost the console (and the box it runs on) next to nothing."""

    def __init__(self, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._shown: Any = None

    def show_text(self, text: Text) -> None:
        if text != self._shown:
            self._shown = text
            self.update(text)

    def show_rows(self, rows: list[Row]) -> None:
        """Label/value pairs, two per line. Only a change in the number of lines needs a new
        layout; new figures in the same lines just redraw this widget."""
        if rows != self._shown:
            same_height = isinstance(self._shown, list) and len(self._shown) == len(rows)
            self._shown = rows
            self.update(figures(rows), layout=not same_height)


def figures(rows: list[Row]) -> Table:
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


BARS = "▁▂▃▄▅▆▇█"
SPARK_STYLE, SPARK_IDLE = "#4ea8de", "#3a506b"


def spark_text(values: list[float], width: int) -> Text:
    """A one-line sparkline of ``values`` (oldest first), scaled from zero to their maximum, so
    a steady non-zero rate is not drawn as a flat full bar."""
    if width <= 0:
        return Text()
    values = values[-width * 4 :] if values else [0.0]
    size = max(1, -(-len(values) // width))  # samples per column, rounded up
    columns = [max(values[i : i + size]) for i in range(0, len(values), size)]
    top = max(columns)
    line = Text(" " * (width - len(columns)), no_wrap=True)  # the newest sample at the right edge
    for value in columns:
        level = 0 if top <= 0 else round(value / top * (len(BARS) - 1))
        line.append(BARS[level], SPARK_STYLE if level else SPARK_IDLE)
    return line


class Spark(Widget):
    """One line of sparkline, redrawn only when its samples change."""

    DEFAULT_CSS = """
    Spark { height: 1; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: list[float] = []

    def show(self, values: list[float]) -> None:
        if values != self.values:
            self.values = values
            self.refresh()

    def render(self) -> Text:
        return spark_text(self.values, self.size.width)


class Panel(Vertical):
    """A bordered box with a title, for the dashboard's groups of figures."""

    DEFAULT_CSS = """
    Panel { border: round $primary-darken-1; height: auto; padding: 0 1; }
    """

    def __init__(self, title: str, *children: Any, id: str | None = None) -> None:
        super().__init__(*children, id=id)
        self.border_title = title


def _width(cell: Any) -> int:
    plain = cell.plain if isinstance(cell, Text) else str(cell)
    return max((cell_len(line) for line in plain.splitlines()), default=0)


class BoxTable(DataTable[Any]):
    """A row-cursor table refilled on every poll without losing the operator's place.

    ``squeeze`` names the columns that give up width (their cells end in ``…``) when the rows
    are wider than the screen, so the columns after them are never cut off at the edge. The
    screen shows a squeezed cell in full elsewhere (its detail line)."""

    MIN_SQUEEZED = 8

    def __init__(self, *columns: str, id: str | None = None, squeeze: tuple[str, ...] = ()) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._columns = columns
        self._squeeze = [columns.index(name) for name in squeeze]
        self._rows: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def on_mount(self) -> None:
        self.add_columns(*self._columns)

    @property
    def selected(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return None if row_key.value is None else str(row_key.value)

    def fill(self, rows: list[tuple[str, tuple[Any, ...]]]) -> bool:
        """Replace the rows by ``rows`` (key, cells), keeping the cursor on the same key. Does
        nothing (returns False) when nothing changed, so an idle poll costs no redraw."""
        fresh = tuple(rows)
        self.set_class(not fresh, "-empty")
        if fresh == self._rows:
            return False
        current = self.selected
        self.clear()
        widths = [
            max([column.label.cell_len, *(_width(cells[index]) for _, cells in fresh if index < len(cells))])
            for index, column in enumerate(self.ordered_columns)
        ]
        fitted = self._fitted(widths)
        for key, cells in fresh:
            self.add_row(*(_cell(c, fitted.get(i)) for i, c in enumerate(cells)), key=key)
        # Size the columns now, not on the next idle as DataTable does: a table refilled while
        # another screen is on top would otherwise be drawn (and cached) with its old widths.
        for index, column in enumerate(self.ordered_columns):
            column.content_width = fitted[index]
        self._rows = fresh
        keys = [key for key, _ in fresh]
        if current in keys:
            self.move_cursor(row=keys.index(current), animate=False)
        return True

    def _fitted(self, widths: list[int]) -> dict[int, int]:
        """Column widths that fit the screen: the squeezed columns shrink (widest first, down
        to ``MIN_SQUEEZED``), the others keep their content's width."""
        room = (self.size.width or self.app.size.width) - 1  # a vertical scrollbar may appear
        fitted = dict(enumerate(widths))
        excess = sum(widths) + 2 * self.cell_padding * len(widths) - room
        while excess > 0:
            shrinkable = [i for i in self._squeeze if fitted[i] > self.MIN_SQUEEZED]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: fitted[i])
            fitted[widest] -= 1
            excess -= 1
        return fitted


def _cell(cell: Any, width: int | None) -> Any:
    """A table cell: a str as plain text (``[R5]`` is a camera label, not markup), on one line
    that ends in ``…`` when it is wider than ``width``."""
    if isinstance(cell, str):
        cell = Text(cell, no_wrap=True, overflow="ellipsis")
    if isinstance(cell, Text) and width is not None and cell.cell_len > width:
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
    return cell
