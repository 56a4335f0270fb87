"""The report's section for bench/ingest.py: shutterbox against vsftpd and pure-ftpd."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from _report_table import Section, at_path, cell, column, limit_verdict, numbers, ratio_cell, table, verdicts


def ingest_section(sec: Section, consts: dict[str, Any]) -> None:
    datas = sec.datas
    fpm_target, ratio_target = consts.get("TARGET_FRAMES_PER_MIN"), consts.get("TARGET_MBPS_RATIO")
    anchors = [a for a in ("vsftpd", "pure-ftpd") if any(_rows_of(d, a) for d in datas)]
    phases = list(dict.fromkeys(r["phase"] for d in datas for r in d.get("results", [])))
    cfg = datas[0].get("config", {})
    versions = ", ".join(f"{a} {at_path(datas[0], 'versions', a) or '?'}" for a in anchors)
    sec.lines += [
        f"{cfg.get('clients')} concurrent FTP clients (ftplib, PASV, binary) upload the same distinct JPEGs"
        " over loopback to shutterbox (verify, fsync, hash and queue before each 226) and then to each"
        f" anchor in the same run ({versions or 'none'}; neither fsyncs). Server data:"
        f" {cfg.get('data_fs')}.",
    ]
    for name in ("vsftpd", "pure-ftpd"):
        if name not in anchors:
            why = [n for d in datas for n in d.get("notes", []) if name in n and "skipped" in n]
            sec.lines += ["", f"*{name} not measured: {why[0] if why else 'no figures in any run'}.*"]
    header = ["figure", "shutterbox"]
    for a in anchors:
        header += [a, f"shutterbox / {a}"]
    header.append("target (ingest.py)")
    figures: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        ("frames/min", lambda r: r.get("frames_per_min")),
        ("MB/s", lambda r: r.get("mb_per_s")),
        ("226 latency p50, ms", lambda r: at_path(r, "lat_226_ms", "p50")),
        ("226 latency p99, ms", lambda r: at_path(r, "lat_226_ms", "p99")),
        ("server CPU, % of one core", lambda r: r.get("server_cpu_pct_of_one_core")),
        ("server peak RSS, MB", lambda r: r.get("peak_rss_mb")),
    ]
    for i, phase in enumerate(phases):
        rows = []
        for label, fn in figures:
            box = [fn(_row(d, "shutterbox", phase)) for d in datas]
            row = [label, cell(box)]
            for a in anchors:
                ref = [fn(_row(d, a, phase)) for d in datas]
                row += [cell(ref), ratio_cell(list(zip(box, ref, strict=True)))]
            target = ""
            if i == 0 and label == "frames/min" and fpm_target:
                text = f">= {fpm_target:g} frames/min of {phase.split(' ')[0]} frames"
                target = sec.target(text, verdicts(column(datas, "targets", "frames_per_min")))
            elif i == 0 and label == "MB/s" and ratio_target and "vsftpd" in anchors:
                text = f">= {ratio_target:g}x vsftpd MB/s in every phase"
                target = sec.target(text, verdicts(column(datas, "targets", "mbps_ratio")))
            elif label == "MB/s" and ratio_target and "vsftpd" in anchors:
                ok = [limit_verdict(at_path(d, "ratios", phase), ratio_target) for d in datas]
                target = f">= {ratio_target:g}x vsftpd: {verdicts(ok)}"
            rows.append([*row, target])
        row = ["frames stored byte-for-byte, all runs", _intact(datas, "shutterbox", phase)]
        for a in anchors:
            row += [_intact(datas, a, phase), ""]
        rows.append([*row, ""])
        sec.lines += ["", f"**Phase {phase}**", "", *table(header, rows)]
    sec.lines += [
        "",
        "Ratios are shutterbox / anchor within each run (median and range over the runs): above 1 is"
        " better for frames/min and MB/s, below 1 for latency, CPU and RSS.",
    ]


def _rows_of(d: dict[str, Any], server: str) -> list[dict[str, Any]]:
    return [r for r in d.get("results", []) if r.get("server") == server]


def _row(d: dict[str, Any], server: str, phase: str) -> dict[str, Any]:
    return next((r for r in _rows_of(d, server) if r.get("phase") == phase), {})


def _intact(datas: Sequence[dict[str, Any]], server: str, phase: str) -> str:
    rows = [_row(d, server, phase) for d in datas]
    if not any(rows):
        return "\u2014"
    got, frames = (int(sum(numbers([r.get(k) for r in rows]))) for k in ("stored_intact", "frames"))
    errors = int(sum(numbers([r.get("errors") for r in rows])))
    return f"{got}/{frames}" + (f", {errors} upload errors" if errors else "")
