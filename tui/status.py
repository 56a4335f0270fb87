"""Reading the box's status JSON defensively, and the console's number formats.

The admin API grows over time and the console may face an older or newer box: every reader here
returns ``None`` for a missing or mistyped field and every formatter turns ``None`` into ``—``, so
a missing key shows as a dash instead of crashing a screen. Pure functions; no I/O, no threads.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

DASH = "—"


def dig(data: Any, *path: str | int) -> Any:
    """``data[path[0]][path[1]]...``, or None when any step is missing or of the wrong type."""
    for step in path:
        if isinstance(step, int) and isinstance(data, list) and -len(data) <= step < len(data):
            data = data[step]
        elif isinstance(step, str) and isinstance(data, dict):
            data = data.get(step)
        else:
            return None
    return data


def num(data: Any, *path: str | int) -> float | None:
    value = dig(data, *path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def integer(data: Any, *path: str | int) -> int | None:
    value = num(data, *path)
    return None if value is None else int(value)


def text(data: Any, *path: str | int) -> str | None:
    value = dig(data, *path)
    return value if isinstance(value, str) else None


def fmt_int(value: float | None) -> str:
    return DASH if value is None else f"{int(value):,}"


def fmt_rate(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return DASH
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def fmt_duration(seconds: float | None) -> str:
    """A short human duration: ``45s``, ``12m 5s``, ``3h 20m``, ``2d 4h``."""
    if seconds is None:
        return DASH
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO 8601 string or a Unix timestamp, as an aware datetime (UTC when no zone given)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def fmt_age(value: Any, now: dt.datetime | None = None) -> str:
    """How long ago ``value`` (ISO string or timestamp) was: ``12s ago``; ``—`` if unknown."""
    when = parse_time(value)
    if when is None:
        return DASH
    now = now or dt.datetime.now(dt.UTC)
    return f"{fmt_duration((now - when).total_seconds())} ago"


def fmt_date(value: Any) -> str:
    """Local date and time to the minute, ``11-22 14:03``."""
    when = parse_time(value)
    return DASH if when is None else when.astimezone().strftime("%m-%d %H:%M")


def fmt_clock(value: Any) -> str:
    """Local wall-clock time of day, ``14:03:07``."""
    when = parse_time(value)
    return DASH if when is None else when.astimezone().strftime("%H:%M:%S")


def fmt_when(value: Any, now: dt.datetime | None = None) -> str:
    """When ``value`` was, said in at most 15 cells with nothing cut off: ``just now``,
    ``12 min ago``, ``today 14:03``, ``yesterday 14:03``, ``Mon 14:03``, then ``2026-11-22``."""
    when = parse_time(value)
    if when is None:
        return DASH
    now = (now or dt.datetime.now(dt.UTC)).astimezone()
    local = when.astimezone(now.tzinfo)
    seconds = (now - local).total_seconds()
    if -60 < seconds < 60:
        return "just now"
    if 0 < seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    days = (now.date() - local.date()).days
    if days == 0:
        return f"today {local:%H:%M}"
    if days == 1:
        return f"yesterday {local:%H:%M}"
    if 1 < days < 7:
        return f"{local:%a %H:%M}"
    return f"{local:%Y-%m-%d}"
