"""The report's sections for bench/faces.py (shutter to searchable, selfie to results),
bench/faces_accuracy.py, and the memory of every script's box."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from _report_runs import Run
from _report_table import (
    FIG_HEADER,
    Section,
    at_path,
    cell,
    column,
    faces_verdicts,
    fig,
    limit_verdict,
    numbers,
    ratio_cell,
    table,
    verdicts,
)


def faces_live_section(sec: Section, consts: dict[str, Any]) -> None:
    datas = sec.datas
    live = [at_path(d, "results", "live") or {} for d in datas]
    cfg = datas[0].get("config", {})
    sec.lines += [
        f"{cfg.get('cameras')} cameras shoot 24 MP frames (0-30 real faces) at {cfg.get('fps_per_camera')}"
        f" frame/s each plus bursts for {cfg.get('duration')} s into a local `shutterbox up` (cloud sync"
        " off) that finds and embeds the faces (dlib); then the box gets up to"
        f" {cfg.get('drain_timeout')} s for its backlog. Shutter to searchable = the box's"
        " `searchable_local_at - received_at`; over 'all frames' a frame not searchable by the end counts"
        " as never, so a percentile may not be reached. No anchor runs here: indexing is compared with"
        " the rate the cameras offered in the same run and with the rate the targets need.",
        "",
    ]

    def v(*path: Any) -> list[Any]:
        return column(live, *path)

    def tv(text: str, prefix: str) -> str:
        return sec.target(text, faces_verdicts(datas, prefix))

    p50, p95 = consts.get("TARGET_P50_S", 0), consts.get("TARGET_P95_S", 0)
    cams, fps = consts.get("TARGET_CAMERAS", 0), consts.get("TARGET_FPS", 0)
    never = cell(v("latency", "all_frames", "not_searchable_in_time"))
    indexed, offered = v("index_rate_during_shoot_per_min"), v("frames", "offered_per_min")
    rows = [
        fig("shutter -> searchable p50, s (all frames)", _reached(v("latency", "all_frames", "p50_s"), never),
            target=tv(f"p50 < {p50:g} s", "shutter to searchable p50")),
        fig("shutter -> searchable p95, s (all frames)", _reached(v("latency", "all_frames", "p95_s"), never),
            target=tv(f"p95 < {p95:g} s", "shutter to searchable p95")),
        fig("frames not searchable by the end", never),
        fig("p50, s (photos indexed by the end)", v("latency", "indexed", "p50_s")),
        fig("p95, s (photos indexed by the end)", v("latency", "indexed", "p95_s")),
        fig("photos indexed per min while shooting", indexed, f"{cell(offered)} offered per min",
            ratio_cell(list(zip(indexed, offered, strict=True)))),
        fig("backlog growth while shooting, photos/min", v("growth_per_min"),
            target=tv(f"no growing backlog at {cams} cameras x {fps:g} frame/s", "no growing backlog")),
        fig("backlog drained in, s", v("drain", "took_s")),
        fig("photos left after the drain limit", v("drain", "left")),
        fig("faces per indexed photo", v("faces", "faces_per_photo")),
    ]  # fmt: skip
    need = cams * fps * 60
    for w in sorted({r.get("workers") for d in datas for r in at_path(d, "results", "rate") or []}):
        rate = [rate_row(d, w).get("photos_per_min") for d in datas]
        anchor = f"{need:g} needed ({cams} cameras x {fps:g} frame/s)"
        rows.append(
            fig(
                f"closed loop, faces.workers {w}: photos/min",
                rate,
                anchor,
                ratio_cell([(r, need) for r in rate]),
            )
        )
        rows.append(
            fig(
                f"closed loop, faces.workers {w}: faces/min",
                [rate_row(d, w).get("faces_per_min") for d in datas],
            )
        )
    sec.lines += table([*FIG_HEADER[:-1], "target (faces.py)"], rows)


def _reached(values: Sequence[Any], never: str) -> str:
    text = cell(values)
    return f"not reached ({never} never searchable)" if text == "\u2014" and never != "\u2014" else text


def rate_row(d: dict[str, Any], workers: Any) -> dict[str, Any]:
    return next((r for r in at_path(d, "results", "rate") or [] if r.get("workers") == workers), {})


def faces_search_section(sec: Section, consts: dict[str, Any]) -> None:
    srch = [at_path(d, "results", "search") or {} for d in sec.datas]
    ev = srch[0].get("event") or {}
    conc = at_path(srch[0], "concurrent", "concurrency")
    sec.lines += [
        f"A guest's selfie (`obama-3.jpg`) searched through `POST /api/events/<code>/search` on an event of"
        f" {ev.get('photos')} photos / {ev.get('faces')} faces seeded into the box's database"
        f" ({ev.get('true_photos')} photos show the guest), cloud sync off: one cold search, then"
        f" sequential ones, the same from the guest page (its form posted, the 303 followed to the"
        f" results page's HTML), then {conc} guests at once. No anchor runs here (Rekognition's"
        " SearchFacesByImage cannot be measured offline).",
        "",
    ]

    def v(*path: Any) -> list[Any]:
        return column(srch, *path)

    limit = consts.get("TARGET_SEARCH_P95_S", 0)
    seq, con = (f"selfie to results p95 < {limit:g} s ({k}" for k in ("seq", "con"))
    errors = [sum(numbers([at_path(x, p, "errors") for p in ("sequential", "concurrent")])) for x in srch]
    matches = sorted({m for x in srch for m in at_path(x, "sequential", "match_counts") or []})
    rows = [
        fig("cold search (first after a restart), s", v("cold", "seconds")),
        fig("sequential p50, s", v("sequential", "p50_s")),
        fig("sequential p95, s", v("sequential", "p95_s"), target=sec.target(
            f"p95 < {limit:g} s, sequential", faces_verdicts(sec.datas, seq))),
        fig("sequential max, s", v("sequential", "max_s")),
        fig("guest page, selfie to results page p50, s", v("page", "p50_s")),
        fig("guest page, selfie to results page p95, s", v("page", "p95_s")),
        fig(f"{conc} at once: p50, s", v("concurrent", "p50_s")),
        fig(f"{conc} at once: p95, s", v("concurrent", "p95_s"), target=sec.target(
            f"p95 < {limit:g} s, {conc} at once", faces_verdicts(sec.datas, con))),
        fig(f"{conc} at once: searches per s", v("concurrent", "searches_per_s")),
        fig("failed searches", errors),
        fig("photos returned per search", ", ".join(map(str, matches)) or "\u2014",
            f"{ev.get('expected_matches')} expected"),
    ]  # fmt: skip
    sec.lines += table([*FIG_HEADER[:-1], "target (faces.py)"], rows)


def accuracy_section(sec: Section, consts: dict[str, Any]) -> None:
    run = next((r for r in sec.runs if r.text.strip()), None)
    if run is None:
        return
    lines = run.text.rstrip().splitlines()
    keep = [ln.strip() for ln in lines if ln.startswith("RECOMMENDATION")]
    sec.lines += [
        "Real faces pasted at known sizes into 24 MP frames and indexed by the box's engine; the selfies"
        " and their variants matched against them. Deterministic (same flags, same figures), so it runs"
        " once; not a speed figure. The tables are explained in [faces.md](faces.md).",
        "",
        *[f"- {ln}" for ln in keep],
        "",
        "<details><summary>faces_accuracy.py output</summary>",
        "",
        "```",
        *lines,
        "```",
        "",
        "</details>",
    ]


def memory_section(sec: Section, by_bench: dict[str, list[Run]], consts: dict[str, dict[str, Any]]) -> None:
    limit = consts.get("faces", {}).get("TARGET_RSS_MB", 0)
    sec.lines += [
        "Resident memory summed over the process tree (face and selfie workers included), sampled every"
        " 0.5 s by each script, so a short peak can fall between samples."
        + (
            f" The budget is faces.py's target (box < {limit:g} MB); the report applies it to every"
            " box figure here, per run."
            if limit
            else ""
        ),
        "",
    ]

    def datas(name: str) -> list[dict[str, Any]]:
        return [r.data for r in by_bench.get(name, []) if r.data is not None]

    def budget(values: Sequence[Any], what: str) -> str:
        if not limit or not numbers(values):
            return ""
        return sec.target(
            f"box < {limit:g} MB, {what}", verdicts([limit_verdict(x, limit, True) for x in values])
        )

    rows = []
    if ing := datas("ingest"):
        peak = column(ing, "servers", "shutterbox", "peak_rss_mb")
        for name in ("vsftpd", "pure-ftpd"):
            ref = column(ing, "servers", name, "peak_rss_mb")
            if numbers(ref):
                ratio = ratio_cell(list(zip(peak, ref, strict=True)))
                rows.append(
                    fig(f"ingest.py: FTP server peak, MB, vs {name}", peak, f"{cell(ref)}: {name}", ratio)
                )
        rows.append(fig("ingest.py: box peak, MB", peak, target=budget(peak, "FTP ingest")))
        rows.append(fig("ingest.py: box idle, MB", column(ing, "servers", "shutterbox", "idle_rss_mb")))
    if syn := datas("sync"):
        peak = column(syn, "results", "box", "peak_rss_mb")
        rows.append(fig("sync.py: box peak, MB", peak, target=budget(peak, "cloud sync")))
        rows.append(fig("sync.py: box idle, MB", column(syn, "results", "box", "idle_rss_mb")))
    if fac := datas("faces"):
        rows.append(
            fig("faces.py live: box steady, MB", column(fac, "results", "live", "box", "memory", "steady_mb"))
        )
        peak = column(fac, "results", "live", "box", "memory", "peak_mb")
        rows.append(fig("faces.py live: box peak, MB", peak, target=budget(peak, "live face indexing")))
        for w in sorted({r.get("workers") for d in fac for r in at_path(d, "results", "rate") or []}):
            peak = [at_path(rate_row(d, w), "memory", "peak_mb") for d in fac]
            rows.append(
                fig(
                    f"faces.py rate, {w} face worker(s): box peak, MB",
                    peak,
                    target=budget(peak, f"faces.workers {w}"),
                )
            )
        peak = column(fac, "results", "search", "box", "memory", "peak_mb")
        rows.append(fig("faces.py search: box peak, MB", peak, target=budget(peak, "selfie search")))
        if limit:
            own = sec.target(
                f"box < {limit:g} MB over every part (faces.py's verdict)", faces_verdicts(fac, "box <")
            )
            rows.append(
                fig("faces.py: box peak over every part, MB", [_faces_peak(d) for d in fac], target=own)
            )
    if con := datas("console"):
        peak = [
            max(numbers(column(d.get("summary") or [], "console_peak_rss_mb", "max")), default=None)
            for d in con
        ]
        rows.append(fig("console.py: the console's peak, MB", peak))
    sec.lines += table(FIG_HEADER, rows)


def _faces_peak(d: dict[str, Any]) -> float | None:
    res = d.get("results") or {}
    peaks = [
        at_path(res, "live", "box", "memory", "peak_mb"),
        at_path(res, "search", "box", "memory", "peak_mb"),
    ]
    peaks += column(res.get("rate") or [], "memory", "peak_mb")
    return max(numbers(peaks), default=None)
