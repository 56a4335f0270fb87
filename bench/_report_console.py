"""The report's section for bench/console.py: the console and the admin API."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from _report_table import DASH, FIG_HEADER, Section, at_path, cell, column, fig, num, ratio_cell, table


def console_section(sec: Section, consts: dict[str, Any]) -> None:
    cfg = sec.datas[0].get("config", {})
    sec.lines += [
        f"The operator console (`{cfg.get('console_cmd')}` in a {cfg.get('terminal')} tmux) on a real box"
        f" during {cfg.get('clients')}-client FTP ingest of {cfg.get('size_mb')} MB frames"
        f" ({', '.join(cfg.get('modes') or [])}), {cfg.get('reps')} repetition(s) of every phase with and"
        " without the console, paired within each repetition (order alternating from one repetition to"
        " the next); an API prober does what"
        " the console does. Anchor: the same phase without the console, in the same repetition; for API"
        " latency, the idle box. console.py sets no targets.",
        "",
    ]
    idle = [d.get("idle") or {} for d in sec.datas]
    sums = [d.get("summary") or [] for d in sec.datas]
    cmps = [d.get("comparison") or [] for d in sec.datas]

    def pick(groups: Sequence[Sequence[dict[str, Any]]], mode: Any, console: Any) -> list[dict[str, Any]]:
        return [
            next((s for s in g if s.get("mode") == mode and s.get("console") == console), {}) for g in groups
        ]

    rows = [
        fig("idle box: console CPU, % of one core", column(idle, "cpu_pct_of_one_core", "console")),
        fig("idle box: box CPU with the console, % of one core", column(idle, "cpu_pct_of_one_core", "box"),
            f"{cell(column(idle, 'box_alone_cpu_pct'))}: no console"),
        fig("idle box: console peak RSS, MB", column(idle, "console_rss_mb", "peak")),
    ]  # fmt: skip
    for mode, console in dict.fromkeys((s.get("mode"), s.get("console")) for g in sums for s in g):
        if console == "none":
            continue
        with_c, alone, cmp = pick(sums, mode, console), pick(sums, mode, "none"), pick(cmps, mode, console)
        label = f"{mode}, console on {console}"
        rows += [
            fig(f"{label}: frames/min", _spread(column(with_c, "frames_per_min")),
                f"{_spread(column(alone, 'frames_per_min'))}: no console",
                _spread(column(cmp, "frames_per_min_ratio"), ratio=True)),
            fig(f"{label}: 226 latency p50, ratio to no console", "", "",
                _spread(column(cmp, "lat_226_p50_ratio"), ratio=True)),
            fig(f"{label}: console CPU, % of one core", _spread(column(with_c, "console_cpu_pct"))),
            fig(f"{label}: box CPU, % of one core", _spread(column(with_c, "box_cpu_pct")),
                f"{_spread(column(alone, 'box_cpu_pct'))}: no console"),
        ]  # fmt: skip
        for endpoint in at_path(with_c[0], "api_pooled") or {}:
            busy, quiet = (
                column(with_c, "api_pooled", endpoint, "p95_ms"),
                column(idle, "api", endpoint, "p95_ms"),
            )
            ratio = ratio_cell(list(zip(busy, quiet, strict=True)))
            rows.append(
                fig(f"{label}: admin API {endpoint} p95, ms", busy, f"{cell(quiet)}: idle box", ratio)
            )
    sec.lines += table(FIG_HEADER[:-1], [r[:-1] for r in rows])


def _spread(values: Sequence[Any], ratio: bool = False) -> str:
    """A figure console.py aggregates itself ({median, min, max, n}); from several runs: the
    median and range of their medians."""
    dicts = [v for v in values if isinstance(v, dict) and v.get("median") is not None]
    if not dicts:
        return "\u2014"
    show = (lambda x: f"{x:.2f}x") if ratio else num
    if len(dicts) > 1:
        meds = [d["median"] for d in dicts]
        return f"{show(statistics.median(meds))} ({show(min(meds))}{DASH}{show(max(meds))})"
    s = dicts[0]
    if s.get("n", 1) <= 1 or s["min"] == s["max"]:
        return show(s["median"])
    return f"{show(s['median'])} ({show(s['min'])}{DASH}{show(s['max'])})"
