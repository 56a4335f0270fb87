"""The report's cells and tables: a figure over several runs as median (min-max), ratios,
verdicts, and a Section collecting one area's lines and targets."""

from __future__ import annotations

import collections
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _report_runs import Run

DASH = "\u2013"  # en dash: ranges


def at_path(d: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(d, dict):
            d = d.get(key)
        elif isinstance(d, list) and isinstance(key, int) and -len(d) <= key < len(d):
            d = d[key]
        else:
            return None
    return d


def num(value: float) -> str:
    size = abs(value)
    if size >= 100 or value == int(value):
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def numbers(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def column(datas: Sequence[Any], *path: Any) -> list[Any]:
    return [at_path(d, *path) for d in datas]


def cell(values: Sequence[Any], unit: str = "") -> str:
    """median (min-max) over the runs that have the figure."""
    vals = numbers(values)
    if not vals:
        return "\u2014"
    med = num(statistics.median(vals)) + unit
    if len(vals) == 1:
        return med
    return f"{med} ({num(min(vals))}{DASH}{num(max(vals))})"


def ratio_cell(pairs: Sequence[tuple[Any, Any]]) -> str:
    """Median (min-max) of the per-run ratios a/b."""
    ratios = [
        float(a) / float(b)
        for a, b in pairs
        if isinstance(a, int | float) and isinstance(b, int | float) and b
    ]
    if not ratios:
        return "\u2014"
    med = f"{statistics.median(ratios):.2f}x"
    if len(ratios) == 1:
        return med
    return f"{med} ({min(ratios):.2f}{DASH}{max(ratios):.2f})"


def verdicts(values: Sequence[str | None]) -> str:
    """'PASS 3/3', 'FAIL 1/3, PASS 2/3' over the runs' own verdicts."""
    vals = [v for v in values if v]
    if not vals:
        return "n/a"
    counts = collections.Counter(vals)
    return ", ".join(f"**{v}** {n}/{len(vals)}" for v, n in sorted(counts.items()))


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def faces_verdicts(datas: Sequence[dict[str, Any]], prefix: str) -> str:
    """Verdicts of faces.py's own target rows starting with ``prefix``."""
    found = []
    for d in datas:
        rows = [r for r in d.get("targets") or [] if str(r.get("target", "")).startswith(prefix)]
        found.append(rows[0].get("verdict") if rows else None)
    return verdicts(found)


def limit_verdict(value: Any, limit: float, below: bool = False) -> str | None:
    if not isinstance(value, int | float):
        return None
    return "PASS" if (value < limit if below else value >= limit) else "FAIL"


class Section:
    """One area of the report; collects its targets for the summary at the top."""

    def __init__(self, title: str, runs: Sequence[Run]) -> None:
        self.title = title
        self.runs = list(runs)
        self.datas = [r.data for r in runs if r.data is not None]
        self.lines: list[str] = []
        self.targets: list[tuple[str, str, str]] = []  # (area, target, verdicts)

    def target(self, text: str, verdict: str) -> str:
        self.targets.append((self.title, text, verdict))
        return f"{text}: {verdict}"


def fig(
    label: str, box: str | Sequence[Any], anchor: str = "", ratio: str = "", target: str = ""
) -> list[str]:
    """A table row: figure | shutterbox | anchor | ratio | target."""
    return [label, box if isinstance(box, str) else cell(box), anchor, ratio, target]


FIG_HEADER = ["figure", "shutterbox", "anchor", "ratio", "target"]


def generic_section(sec: Section) -> None:
    """Every number in the JSON, by path, median (min-max) over the runs: for a script whose
    output changed shape under its section."""
    flat: dict[str, list[Any]] = {}

    def walk(prefix: str, value: Any, acc: dict[str, Any]) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v, acc)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            acc[prefix] = value

    for d in sec.datas:
        acc: dict[str, Any] = {}
        walk("", {k: v for k, v in d.items() if k not in ("machine", "config")}, acc)
        for k, v in acc.items():
            flat.setdefault(k, []).append(v)
    sec.lines += table(
        ["figure (JSON path)", "median (min-max)"], [[k, cell(v)] for k, v in list(flat.items())[:80]]
    )
