"""The report's section for bench/sync.py: the cloud sync under the emulated venue link."""

from __future__ import annotations

from typing import Any

from _report_table import FIG_HEADER, Section, cell, column, fig, ratio_cell, table, verdicts


def sync_section(sec: Section, consts: dict[str, Any]) -> None:
    res = [d.get("results") or {} for d in sec.datas]
    cfg = sec.datas[0].get("config", {})
    sec.lines += [
        f"{cfg.get('frames')} frames from {cfg.get('cameras')} cameras at {cfg.get('fps_per_camera')} frame/s"
        " each to a real `shutterbox up` that syncs to moto's S3 and the fake Rekognition through one"
        f" emulated uplink: {cfg.get('link_mbit')} Mbit/s each way, +{cfg.get('latency_ms')} ms each way,"
        f" {cfg.get('blackout_seconds')} s blackouts from {cfg.get('blackout_first')} s, every"
        f" {cfg.get('blackout_every')} s. No competing product runs here: the anchors are what this run's"
        " own link allowed (a proxy PUT is the least a searchable photo can cost; the rate the cameras"
        " shot) and, as a reference not measured here, Clixs in production (sync.py's own figures).",
        "",
    ]

    def v(*path: Any) -> list[Any]:
        return column(res, *path)

    def tv(text: str, key: str) -> str:
        return sec.target(text, verdicts(v("targets", key)))

    p50, p95 = consts.get("TARGET_P50_S", 0), consts.get("TARGET_P95_S", 0)
    mean_ref, tail_ref = consts.get("CLIXS_MEAN_S"), consts.get("CLIXS_TAIL_S")
    all_p95, all_max = consts.get("TARGET_ALL_P95_S", 0), consts.get("TARGET_ALL_MAX_S", 0)
    use_target, quality_target = consts.get("TARGET_LINK_USE", 0), consts.get("TARGET_QUALITY", 0)
    up_rate = v("bytes", "before_last_searchable", "searchable_per_link_up_s")
    backlogged = [_pct(x) for x in v("link", "link_use")]
    quality = [_pct(x) for x in v("quality", "share")]
    per_photo, floor = v("bytes", "before_last_searchable", "per_photo_mb"), v("bytes", "min_per_photo_mb")
    rate, shot = (
        v("bytes", "before_last_searchable", "searchable_per_s"),
        column(sec.datas, "config", "frames_per_s"),
    )
    util = [_pct(x) for x in v("bytes", "before_last_searchable", "link_utilisation")]
    rows = [
        fig("shutter -> searchable in cloud p50, s (all photos)", v("latency", "all", "p50_s")),
        fig("shutter -> searchable in cloud p95, s (all photos)", v("latency", "all", "p95_s"), target=tv(
            f"p95 < {all_p95:g} s (all photos)", "all_p95_under_60s")),
        fig("mean, s (all photos)", v("latency", "all", "mean_s"), f"{mean_ref} s: Clixs mean (reference)"),
        fig("max, s (all photos)", v("latency", "all", "max_s"), f"{tail_ref} s: Clixs tail (reference)",
            target=tv(f"max < {all_max:g} s (all photos)", "all_max_under_90s")),
        fig("p50 outside blackouts, s", v("latency", "outside_blackouts", "p50_s"), target=tv(
            f"p50 < {p50:g} s outside blackouts", "p50_outside_blackouts_under_5s")),
        fig("p95 outside blackouts, s", v("latency", "outside_blackouts", "p95_s"), target=tv(
            f"p95 < {p95:g} s outside blackouts", "p95_outside_blackouts_under_20s")),
        fig("photos whose wait overlapped no blackout", v("latency", "outside_blackouts", "photos")),
        fig("uplink MB per photo until the last was searchable", per_photo,
            f"{cell(floor)}: the cloud proxy PUT (minimum)",
            ratio_cell(list(zip(per_photo, floor, strict=True)))),
        fig("cloud proxy, kB (avg)", v("cloud_proxy", "kb_avg"),
            f"{cell(v('cloud_proxy', 'local_proxy_kb_avg'))}: the local 2048 px proxy"),
        fig("photos made searchable per s", rate, f"{cell(shot)}: photos shot per s",
            ratio_cell(list(zip(rate, shot, strict=True)))),
        fig("photos made searchable per s of link up", up_rate, f"{cell(shot)}: photos shot per s",
            ratio_cell(list(zip(up_rate, shot, strict=True))),
            target=tv("searchable per s >= shot", "searchable_per_s_at_least_shot")),
        fig("link utilisation while the link was up, %", util),
        fig("link use while backlogged, %", backlogged,
            target=tv(f"> {use_target:.0%} while backlogged", "link_use_backlogged_over_85pct")),
        fig("faces indexed in the cloud / searchable locally, %", quality,
            target=tv(f"quality >= {quality_target:.0%}", "quality_at_least_95pct")),
        fig("frames lost", v("frames", "lost"), target=tv("nothing lost", "nothing_lost")),
        fig("duplicate S3 uploads", v("duplicates", "s3_uploads"),
            target=tv("no duplicate uploads", "no_duplicate_uploads")),
        fig("duplicate IndexFaces calls", v("duplicates", "index_faces_duplicate_calls"),
            target=tv("no duplicate IndexFaces calls", "no_duplicate_index_faces")),
        fig("duplicate stored faces", v("duplicates", "duplicate_stored_faces"),
            target=tv("no duplicate stored faces", "no_duplicate_stored_faces")),
        fig("box CPU, % of one core", v("box", "cpu_pct_of_one_core")),
    ]  # fmt: skip
    sec.lines += table([*FIG_HEADER[:-1], "target (sync.py)"], rows)


def _pct(value: Any) -> float | None:
    return value * 100 if isinstance(value, int | float) else None
