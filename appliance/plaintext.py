"""Plain text for a person from what the admin API answers: tables whose columns line up (long
cells cut with an ellipsis) and nested mappings as aligned ``label  value`` lines with indented
sections. Used by the CLI when ``--json`` is not given; the JSON itself is never changed here.
Pure functions; run on whichever thread calls them (the CLI's main thread).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.loghygiene import escape_controls

ELLIPSIS = "…"
GAP = "  "  # between columns, and between a label and its value
INDENT = "  "


@dataclass(frozen=True)
class Column:
    """One column of a table: its header, how a row shows in it, alignment and widest cell."""

    header: str
    cell: Callable[[Any], str]
    right: bool = False
    width: int | None = None  # cells wider than this are cut, ending in an ellipsis


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters; a longer one ends in an ellipsis."""
    return text if len(text) <= width else text[: max(0, width - 1)] + ELLIPSIS


def table(rows: Sequence[Any], columns: Sequence[Column]) -> list[str]:
    """A header line and one line per row, each column as wide as its widest cell (at most its
    ``width``); the last column is not padded, so no line ends in spaces."""
    cells = [[cut(escape_controls(c.cell(row)), c.width or 10**9) for c in columns] for row in rows]
    widths = [max([len(c.header), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    lines = []
    for line in [[c.header for c in columns], *cells]:
        parts = [
            text.rjust(width) if column.right else text.ljust(width)
            for text, width, column in zip(line, widths, columns, strict=True)
        ]
        lines.append(GAP.join(parts).rstrip())
    return lines


def sections(mapping: Mapping[str, Any], depth: int = 0) -> list[str]:
    """``mapping`` as ``label  value`` lines, values of one level in one column; a nested mapping
    is a section: its label alone, then its lines indented. Labels are the keys in words (``_``
    as spaces, unit suffixes such as ``_bytes`` and ``_s`` dropped into the value's unit)."""
    pad = INDENT * depth
    plain = {key: value for key, value in mapping.items() if not isinstance(value, Mapping) or not value}
    width = max((len(label(key)) for key in plain), default=0)
    lines = []
    for key, value in mapping.items():
        if key in plain:
            lines.append(f"{pad}{label(key).ljust(width)}{GAP}{show(key, value)}".rstrip())
        else:
            lines.append(f"{pad}{label(key)}")
            lines.extend(sections(value, depth + 1))
    return lines


def label(key: str) -> str:
    """``photos_by_state`` -> ``photos by state``; ``free_bytes`` -> ``free``; ``uptime_s`` -> ``uptime``."""
    if key.startswith("bytes_") and key.endswith("_per_s"):  # bytes_in_per_s -> "in"
        key = key.removeprefix("bytes_").removesuffix("_per_s")
    elif key.endswith("_bytes") or (key.endswith("_s") and not key.endswith("_per_s")):
        key = key.rpartition("_")[0] or key
    return escape_controls(key.replace("_", " "))


def show(key: str, value: Any) -> str:
    """One value in words: yes/no, ``-`` for nothing, sizes and durations by the key's unit."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping | list | tuple) and not value:
        return "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{label(k)} {show(k, v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(
            GAP.join(show("", v) for v in item.values()) if isinstance(item, Mapping) else show(key, item)
            for item in value
        )
    if isinstance(value, int | float):
        if key.startswith("bytes_") and key.endswith("_per_s"):
            return f"{size(value)}/s"
        if key.endswith("_bytes"):
            return size(value)
        if key.endswith("_s") and not key.endswith("_per_s"):
            return duration(value)
        if key.endswith("_since") and value > 1e9:
            return dt.datetime.fromtimestamp(value).astimezone().isoformat(timespec="seconds")
        return number(value)
    return escape_controls(str(value))


def number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}".rstrip("0").rstrip(".")


def size(count: float) -> str:
    """Bytes as B, KB, MB, GB or TB (powers of 1024, as ``storage.reserve_mb`` counts)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"


def duration(seconds: float) -> str:
    """``14.8`` -> ``15 s``; ``4000`` -> ``66 min``; ``9000`` -> ``2 h 30 min``."""
    whole = round(seconds)
    if whole < 120:
        return f"{whole} s"
    if whole < 2 * 3600:
        return f"{whole // 60} min"
    if whole < 2 * 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"
