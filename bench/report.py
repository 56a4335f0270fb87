"""The benchmark report: run every bench/ script several times, write docs/benchmarks.md.

What it does
    Runs bench/ingest.py, sync.py, faces.py, faces_accuracy.py, hostile.py and, when it exists,
    bench/console.py, each ``--runs`` times (default 3) with ``--json``, round-robin (run 1 of
    every script, then run 2, ...) so that a burst of someone else's load spreads over the
    scripts instead of landing on one. It then writes one Markdown report: the machine, the
    date, the exact command, the load before and after, how much CPU other processes took while
    the benchmarks ran (and a plain statement when that makes the figures noisy), then one
    section per area with figure | shutterbox | anchor | ratio | target, every figure a median
    with its min-max over the runs, every ratio the median of the per-run ratios (shutterbox
    and its anchor measured in the same run, under the same load). Targets are read from each
    script's own ``TARGET_*`` constants and verdicts, never invented here.

    faces_accuracy.py is deterministic and prints text: it runs once, its recommendation is
    quoted. console.py repeats itself (its ``--reps``, paired with/without the console and
    alternating order), so it runs once with ``--reps`` = ``--runs``.

    The report never fails on timing. It exits 1 only when a script crashed, timed out or
    reported that a part could not run; the report is still written, with that part marked.

How to reproduce
    make bench                                         # --runs 3, the scripts' own defaults
    .venv/bin/python bench/report.py --quick --runs 1  # smoke run of the whole report
    .venv/bin/python bench/report.py --benches ingest,sync --runs 5 --output /tmp/b.md

Runs on the main thread; while a script runs, one helper thread copies its progress (stderr)
through and another samples its process tree's CPU time.
"""

from __future__ import annotations

import argparse
import ast
import collections
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _common import filesystem as _filesystem
from _common import machine_info
from _common import work_base as _work_base

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
NOISY_LOAD_PER_CPU = 0.5  # 1-min load average per CPU before the first run above which: "busy"
NOISY_OTHER_CORES = 0.2  # others' CPU while a script ran (cores) above which: "busy" (faces.py's)
NOISY_BUSY_PCT = 10.0  # median CPU % the scripts saw in the second before they started (ingest.py's)
STOP_GRACE_S = 60.0  # a script that overran its time limit gets this long to clean up
STDERR_TAIL = 25
DASH = "\u2013"  # en dash: ranges


@dataclass(frozen=True)
class Spec:
    """One bench script and how the report runs it."""

    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    timeout_s: tuple[float, float]  # (full, quick)
    json: bool = True
    once: bool = False  # deterministic: one run whatever --runs says
    repeats_itself: bool = False  # takes --reps: run once with --reps = --runs


SPECS = (
    Spec("ingest", "ingest.py", (), ("--frames", "100", "--mixed-frames", "8"), (3600, 900)),
    Spec("sync", "sync.py", (), ("--quick",), (5400, 900)),
    Spec("faces", "faces.py", (), ("--quick",), (5400, 900)),
    Spec("faces_accuracy", "faces_accuracy.py", (), ("--quick",), (1800, 600), json=False, once=True),
    Spec("hostile", "hostile.py", (), ("--quick",), (900, 600)),
)
# bench/ scripts this report leaves out, and why (any other one is listed as unknown)
LEFT_OUT = {
    "soak.py": "the whole-event soak, a pass/fail check of every frame under every fault (~21 min,"
    " root); not a figure beside an anchor. Run it with `make soak`",
}
# console.py (bench/console.py) is optional; its quick settings, used for the flags it has
CONSOLE_QUICK = {
    "--frames": "150",
    "--unpaced-frames": "150",
    "--idle-seconds": "10",
    "--baseline-seconds": "5",
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _rel(path: str | Path) -> str:
    """``path`` relative to the repository root when inside it (symlinks not followed)."""
    absolute = Path(os.path.abspath(path))
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else str(path)


def console_spec() -> Spec | None:
    """bench/console.py with the flags its --help lists (it is being written alongside)."""
    script = BENCH / "console.py"
    if not script.exists():
        return None
    try:
        out = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    flags = {word.strip("[],") for word in out.split() if word.startswith(("--", "[--"))}
    quick: tuple[str, ...] = ("--quick",) if "--quick" in flags else ()
    if not quick:
        quick = tuple(x for flag, value in CONSOLE_QUICK.items() if flag in flags for x in (flag, value))
    return Spec(
        "console",
        "console.py",
        (),
        quick,
        (5400, 1200),
        json="--json" in flags,
        repeats_itself="--reps" in flags,
    )


def script_constants(script: Path) -> dict[str, Any]:
    """Module-level literal constants of a bench script (its TARGET_* and references), by AST:
    the report quotes each script's own targets without importing it."""
    try:
        tree = ast.parse(script.read_text())
    except (OSError, SyntaxError):
        return {}
    out: dict[str, Any] = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                out[target.id] = value
            elif isinstance(target, ast.Tuple) and isinstance(value, tuple):
                for elt, v in zip(target.elts, value, strict=False):
                    if isinstance(elt, ast.Name):
                        out[elt.id] = v
    return out


# --------------------------------------------------------------------------------------------
# Running the scripts


@dataclass
class Run:
    spec: Spec
    n: int
    argv: list[str]
    started: str = ""
    wall_s: float = 0.0
    rc: int | None = None
    data: dict[str, Any] | None = None
    text: str = ""
    stderr_tail: list[str] = field(default_factory=list)
    load_before: float = 0.0
    load_after: float = 0.0
    others_cores: float | None = None
    steal_cores: float | None = None
    status: str = "not run"  # ok | flagged | failed
    reason: str = ""

    @property
    def command(self) -> str:
        return shlex.join([_rel(sys.executable), *(_rel(a) for a in self.argv[1:])])


def _busy_s(t: Any) -> float:
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class TreeCpu:
    """CPU seconds of a process tree, sampled every second on a thread of its own: the last value
    seen per process, so that descendants nobody waits for still count as ours."""

    def __init__(self, pid: int) -> None:
        self._seen: dict[tuple[int, float], float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pid,), name="tree-cpu", daemon=True)
        self._thread.start()

    def _run(self, pid: int) -> None:
        try:
            root = psutil.Process(pid)
        except psutil.Error:
            return
        while not self._done.wait(1.0):
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    self._seen[(p.pid, p.create_time())] = t.user + t.system

    def stop(self) -> None:
        self._done.set()
        self._thread.join(10)

    def cpu_s(self) -> float:
        return sum(self._seen.values())


def _parse_json(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _stop_script(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the scripts clean up on it), then SIGKILL to its whole session."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_script(run: Run, timeout_s: float) -> None:
    """Run one script to the end (or its time limit); fill in ``run``."""
    spec = run.spec
    tag = f"[{spec.name} {run.n}]"
    _log(f"{tag} {run.command}")
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
    run.started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    run.load_before = os.getloadavg()[0]
    cpu0, ours0, t0 = psutil.cpu_times(), _children_cpu_s(), time.monotonic()
    timed_out = False
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            run.argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the report only; it stops the script
        )
        assert proc.stderr is not None
        stream = proc.stderr

        def copy() -> None:
            for raw in stream:
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                _log(f"  {tag} {line}")

        copier = threading.Thread(target=copy, name=f"stderr-{spec.name}", daemon=True)
        copier.start()
        tree = TreeCpu(proc.pid)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _log(f"{tag} over its {timeout_s:.0f} s limit; stopping it")
            _stop_script(proc)
        except BaseException:  # Ctrl-C or SIGTERM: stop the script, then unwind
            _stop_script(proc)
            raise
        finally:
            tree.stop()
            copier.join(10)
        out.seek(0)
        run.text = out.read().decode(errors="replace")
    run.wall_s = time.monotonic() - t0
    wall = max(run.wall_s, 1e-6)
    cpu1 = psutil.cpu_times()
    # the script and its descendants: what the kernel accounted to us (the ones waited for) or
    # what the sampler saw, whichever is more (each misses some)
    ours = max(_children_cpu_s() - ours0, tree.cpu_s())
    run.others_cores = max(0.0, (_busy_s(cpu1) - _busy_s(cpu0) - ours) / wall)
    run.steal_cores = (getattr(cpu1, "steal", 0.0) - getattr(cpu0, "steal", 0.0)) / wall
    run.load_after = os.getloadavg()[0]
    run.rc = proc.returncode
    run.stderr_tail = list(tail)
    run.data = _parse_json(run.text) if spec.json else None
    run.status, run.reason = classify(run, timed_out, timeout_s)
    _log(f"{tag} {run.status} in {run.wall_s:.0f} s{': ' + run.reason if run.reason else ''}")


def classify(run: Run, timed_out: bool, timeout_s: float) -> tuple[str, str]:
    """ok; flagged (exit 1 with figures: the script flags upload errors, lost frames or an
    incomplete run, never timing); failed (crashed, timed out, or a part could not run)."""
    if timed_out:
        return "failed", f"timed out after {timeout_s:.0f} s and was stopped"
    if run.spec.json and run.data is None:
        return "failed", f"exit code {run.rc}, no JSON on stdout"
    if run.rc not in (0, 1) or (not run.spec.json and run.rc != 0):
        return "failed", f"exit code {run.rc}"
    failures = (run.data or {}).get("failures") or []
    if failures:
        return "failed", "the script reported: " + "; ".join(str(f) for f in failures)[:400]
    if run.rc == 1:
        found = _flags(run.data or {})
        return "flagged", "exit code 1 with figures: " + (
            ", ".join(found) if found else "the script flags upload errors, lost frames or an incomplete run"
        )
    return "ok", ""


def _flags(data: dict[str, Any]) -> list[str]:
    """Why a script exited 1 with figures, from what it reports (ingest, sync, faces)."""
    res, found = data.get("results"), []
    if isinstance(res, list):
        errors = sum(_values([r.get("errors") for r in res]))
        found += [f"{errors:.0f} upload errors"] if errors else []
    elif isinstance(res, dict):
        frames = res.get("frames") or {}
        errors = sum(_values([frames.get("upload_errors"), _get(res, "live", "frames", "upload_errors")]))
        errors += sum(_values([r.get("upload_errors") for r in res.get("rate") or []]))
        found += [f"{errors:.0f} upload errors"] if errors else []
        found += [f"{frames['lost']} frames lost"] if frames.get("lost") else []
        if _values([frames.get("searchable_in_emulated_phase"), frames.get("acked_226")]) and (
            frames.get("searchable_in_emulated_phase", 0) < frames.get("acked_226", 0)
        ):
            found.append("not every photo was searchable before the settle deadline")
        if _get(res, "phases_s", "drained") is False:
            found.append("the drain did not finish")
    return found


# --------------------------------------------------------------------------------------------
# Figures


def _get(d: Any, *path: Any) -> Any:
    for key in path:
        if isinstance(d, dict):
            d = d.get(key)
        elif isinstance(d, list) and isinstance(key, int) and -len(d) <= key < len(d):
            d = d[key]
        else:
            return None
    return d


def _num(value: float) -> str:
    size = abs(value)
    if size >= 100 or value == int(value):
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _values(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def cell(values: Sequence[Any], unit: str = "") -> str:
    """median (min-max) over the runs that have the figure."""
    vals = _values(values)
    if not vals:
        return "\u2014"
    med = _num(statistics.median(vals)) + unit
    if len(vals) == 1:
        return med
    return f"{med} ({_num(min(vals))}{DASH}{_num(max(vals))})"


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


# --------------------------------------------------------------------------------------------
# The sections


def fig(
    label: str, box: str | Sequence[Any], anchor: str = "", ratio: str = "", target: str = ""
) -> list[str]:
    """A table row: figure | shutterbox | anchor | ratio | target."""
    return [label, box if isinstance(box, str) else cell(box), anchor, ratio, target]


FIG_HEADER = ["figure", "shutterbox", "anchor", "ratio", "target"]


def ingest_section(sec: Section, consts: dict[str, Any]) -> None:
    datas = sec.datas
    fpm_target, ratio_target = consts.get("TARGET_FRAMES_PER_MIN"), consts.get("TARGET_MBPS_RATIO")
    anchors = [a for a in ("vsftpd", "pure-ftpd") if any(_rows_of(d, a) for d in datas)]
    phases = list(dict.fromkeys(r["phase"] for d in datas for r in d.get("results", [])))
    cfg = datas[0].get("config", {})
    versions = ", ".join(f"{a} {_get(datas[0], 'versions', a) or '?'}" for a in anchors)
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
        ("226 latency p50, ms", lambda r: _get(r, "lat_226_ms", "p50")),
        ("226 latency p99, ms", lambda r: _get(r, "lat_226_ms", "p99")),
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
                target = sec.target(text, verdicts(_vals(datas, "targets", "frames_per_min")))
            elif i == 0 and label == "MB/s" and ratio_target and "vsftpd" in anchors:
                text = f">= {ratio_target:g}x vsftpd MB/s in every phase"
                target = sec.target(text, verdicts(_vals(datas, "targets", "mbps_ratio")))
            elif label == "MB/s" and ratio_target and "vsftpd" in anchors:
                ok = [_cmp(_get(d, "ratios", phase), ratio_target) for d in datas]
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
    got, frames = (int(sum(_values([r.get(k) for r in rows]))) for k in ("stored_intact", "frames"))
    errors = int(sum(_values([r.get("errors") for r in rows])))
    return f"{got}/{frames}" + (f", {errors} upload errors" if errors else "")


def _cmp(value: Any, limit: float, below: bool = False) -> str | None:
    if not isinstance(value, int | float):
        return None
    return "PASS" if (value < limit if below else value >= limit) else "FAIL"


def _vals(datas: Sequence[Any], *path: Any) -> list[Any]:
    return [_get(d, *path) for d in datas]


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
        return _vals(res, *path)

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
        _vals(sec.datas, "config", "frames_per_s"),
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


def faces_live_section(sec: Section, consts: dict[str, Any]) -> None:
    datas = sec.datas
    live = [_get(d, "results", "live") or {} for d in datas]
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
        return _vals(live, *path)

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
    for w in sorted({r.get("workers") for d in datas for r in _get(d, "results", "rate") or []}):
        rate = [_rate_row(d, w).get("photos_per_min") for d in datas]
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
                [_rate_row(d, w).get("faces_per_min") for d in datas],
            )
        )
    sec.lines += table([*FIG_HEADER[:-1], "target (faces.py)"], rows)


def _reached(values: Sequence[Any], never: str) -> str:
    text = cell(values)
    return f"not reached ({never} never searchable)" if text == "\u2014" and never != "\u2014" else text


def _rate_row(d: dict[str, Any], workers: Any) -> dict[str, Any]:
    return next((r for r in _get(d, "results", "rate") or [] if r.get("workers") == workers), {})


def faces_search_section(sec: Section, consts: dict[str, Any]) -> None:
    srch = [_get(d, "results", "search") or {} for d in sec.datas]
    ev = srch[0].get("event") or {}
    conc = _get(srch[0], "concurrent", "concurrency")
    sec.lines += [
        f"A guest's selfie (`obama-3.jpg`) searched through `POST /api/events/<code>/search` on an event of"
        f" {ev.get('photos')} photos / {ev.get('faces')} faces seeded into the box's database"
        f" ({ev.get('true_photos')} photos show the guest), cloud sync off: one cold search, then"
        f" sequential ones, then {conc} guests at once. No anchor runs here (Rekognition's"
        " SearchFacesByImage cannot be measured offline).",
        "",
    ]

    def v(*path: Any) -> list[Any]:
        return _vals(srch, *path)

    limit = consts.get("TARGET_SEARCH_P95_S", 0)
    seq, con = (f"selfie to results p95 < {limit:g} s ({k}" for k in ("seq", "con"))
    errors = [sum(_values([_get(x, p, "errors") for p in ("sequential", "concurrent")])) for x in srch]
    matches = sorted({m for x in srch for m in _get(x, "sequential", "match_counts") or []})
    rows = [
        fig("cold search (first after a restart), s", v("cold", "seconds")),
        fig("sequential p50, s", v("sequential", "p50_s")),
        fig("sequential p95, s", v("sequential", "p95_s"), target=sec.target(
            f"p95 < {limit:g} s, sequential", faces_verdicts(sec.datas, seq))),
        fig("sequential max, s", v("sequential", "max_s")),
        fig(f"{conc} at once: p50, s", v("concurrent", "p50_s")),
        fig(f"{conc} at once: p95, s", v("concurrent", "p95_s"), target=sec.target(
            f"p95 < {limit:g} s, {conc} at once", faces_verdicts(sec.datas, con))),
        fig(f"{conc} at once: searches per s", v("concurrent", "searches_per_s")),
        fig("failed searches", errors),
        fig("photos returned per search", ", ".join(map(str, matches)) or "\u2014",
            f"{ev.get('expected_matches')} expected"),
    ]  # fmt: skip
    sec.lines += table([*FIG_HEADER[:-1], "target (faces.py)"], rows)


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
        if not limit or not _values(values):
            return ""
        return sec.target(f"box < {limit:g} MB, {what}", verdicts([_cmp(x, limit, True) for x in values]))

    rows = []
    if ing := datas("ingest"):
        peak = _vals(ing, "servers", "shutterbox", "peak_rss_mb")
        for name in ("vsftpd", "pure-ftpd"):
            ref = _vals(ing, "servers", name, "peak_rss_mb")
            if _values(ref):
                ratio = ratio_cell(list(zip(peak, ref, strict=True)))
                rows.append(
                    fig(f"ingest.py: FTP server peak, MB, vs {name}", peak, f"{cell(ref)}: {name}", ratio)
                )
        rows.append(fig("ingest.py: box peak, MB", peak, target=budget(peak, "FTP ingest")))
        rows.append(fig("ingest.py: box idle, MB", _vals(ing, "servers", "shutterbox", "idle_rss_mb")))
    if syn := datas("sync"):
        peak = _vals(syn, "results", "box", "peak_rss_mb")
        rows.append(fig("sync.py: box peak, MB", peak, target=budget(peak, "cloud sync")))
        rows.append(fig("sync.py: box idle, MB", _vals(syn, "results", "box", "idle_rss_mb")))
    if fac := datas("faces"):
        rows.append(
            fig("faces.py live: box steady, MB", _vals(fac, "results", "live", "box", "memory", "steady_mb"))
        )
        peak = _vals(fac, "results", "live", "box", "memory", "peak_mb")
        rows.append(fig("faces.py live: box peak, MB", peak, target=budget(peak, "live face indexing")))
        for w in sorted({r.get("workers") for d in fac for r in _get(d, "results", "rate") or []}):
            peak = [_get(_rate_row(d, w), "memory", "peak_mb") for d in fac]
            rows.append(
                fig(
                    f"faces.py rate, {w} face worker(s): box peak, MB",
                    peak,
                    target=budget(peak, f"faces.workers {w}"),
                )
            )
        peak = _vals(fac, "results", "search", "box", "memory", "peak_mb")
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
            max(_values(_vals(d.get("summary") or [], "console_peak_rss_mb", "max")), default=None)
            for d in con
        ]
        rows.append(fig("console.py: the console's peak, MB", peak))
    sec.lines += table(FIG_HEADER, rows)


def _faces_peak(d: dict[str, Any]) -> float | None:
    res = d.get("results") or {}
    peaks = [_get(res, "live", "box", "memory", "peak_mb"), _get(res, "search", "box", "memory", "peak_mb")]
    peaks += _vals(res.get("rate") or [], "memory", "peak_mb")
    return max(_values(peaks), default=None)


def _spread(values: Sequence[Any], ratio: bool = False) -> str:
    """A figure console.py aggregates itself ({median, min, max, n}); from several runs: the
    median and range of their medians."""
    dicts = [v for v in values if isinstance(v, dict) and v.get("median") is not None]
    if not dicts:
        return "\u2014"
    show = (lambda x: f"{x:.2f}x") if ratio else _num
    if len(dicts) > 1:
        meds = [d["median"] for d in dicts]
        return f"{show(statistics.median(meds))} ({show(min(meds))}{DASH}{show(max(meds))})"
    s = dicts[0]
    if s.get("n", 1) <= 1 or s["min"] == s["max"]:
        return show(s["median"])
    return f"{show(s['median'])} ({show(s['min'])}{DASH}{show(s['max'])})"


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
        fig("idle box: console CPU, % of one core", _vals(idle, "cpu_pct_of_one_core", "console")),
        fig("idle box: box CPU with the console, % of one core", _vals(idle, "cpu_pct_of_one_core", "box"),
            f"{cell(_vals(idle, 'box_alone_cpu_pct'))}: no console"),
        fig("idle box: console peak RSS, MB", _vals(idle, "console_rss_mb", "peak")),
    ]  # fmt: skip
    for mode, console in dict.fromkeys((s.get("mode"), s.get("console")) for g in sums for s in g):
        if console == "none":
            continue
        with_c, alone, cmp = pick(sums, mode, console), pick(sums, mode, "none"), pick(cmps, mode, console)
        label = f"{mode}, console on {console}"
        rows += [
            fig(f"{label}: frames/min", _spread(_vals(with_c, "frames_per_min")),
                f"{_spread(_vals(alone, 'frames_per_min'))}: no console",
                _spread(_vals(cmp, "frames_per_min_ratio"), ratio=True)),
            fig(f"{label}: 226 latency p50, ratio to no console", "", "",
                _spread(_vals(cmp, "lat_226_p50_ratio"), ratio=True)),
            fig(f"{label}: console CPU, % of one core", _spread(_vals(with_c, "console_cpu_pct"))),
            fig(f"{label}: box CPU, % of one core", _spread(_vals(with_c, "box_cpu_pct")),
                f"{_spread(_vals(alone, 'box_cpu_pct'))}: no console"),
        ]  # fmt: skip
        for endpoint in _get(with_c[0], "api_pooled") or {}:
            busy, quiet = (
                _vals(with_c, "api_pooled", endpoint, "p95_ms"),
                _vals(idle, "api", endpoint, "p95_ms"),
            )
            ratio = ratio_cell(list(zip(busy, quiet, strict=True)))
            rows.append(
                fig(f"{label}: admin API {endpoint} p95, ms", busy, f"{cell(quiet)}: idle box", ratio)
            )
    sec.lines += table(FIG_HEADER[:-1], [r[:-1] for r in rows])


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


AREAS: tuple[tuple[str, str, Callable[[Section, dict[str, Any]], None]], ...] = (
    ("ingest", "Ingest: shutterbox vs vsftpd and pure-ftpd", ingest_section),
    ("sync", "Cloud sync under the emulated venue link", sync_section),
    ("faces", "Local shutter to searchable (face index)", faces_live_section),
    ("faces", "Selfie to results", faces_search_section),
    ("console", "Console and admin API", console_section),
    ("faces_accuracy", "Face-match accuracy (not timed)", accuracy_section),
    (
        "hostile",
        "A hostile neighbour on the LAN: connections held, searches under a burst, memory",
        lambda sec, consts: generic_section(sec),
    ),
)


# --------------------------------------------------------------------------------------------
# The report


def _disk(path: Path) -> str:
    device, fstype = _filesystem(path.resolve())
    usage = psutil.disk_usage(str(path))
    rotational = "?"
    name = Path(device).name
    for candidate in (name, name.rstrip("0123456789")):
        with contextlib.suppress(OSError):
            flag = Path(f"/sys/block/{candidate}/queue/rotational").read_text().strip()
            rotational = "rotational" if flag == "1" else "non-rotational"
            break
    size = f"{usage.total / 1e9:.0f} GB, {usage.free / 1e9:.0f} GB free"
    return f"`{path}`: {fstype} on {device} ({rotational}), {size}"


def _command(args: argparse.Namespace) -> str:
    cmd = shlex.join([_rel(sys.executable), _rel(sys.argv[0]), *sys.argv[1:]])
    return f"{cmd}  (via `make bench`)" if os.environ.get("MAKELEVEL") else cmd


def noise_statement(runs: Sequence[Run], load_start: Sequence[float], cpus: int) -> str:
    """What other load there was, measured, and whether that makes the figures noisy."""
    others = [r.others_cores for r in runs if r.others_cores is not None and r.wall_s > 0]
    weights = [r.wall_s for r in runs if r.others_cores is not None and r.wall_s > 0]
    avg = sum(o * w for o, w in zip(others, weights, strict=True)) / sum(weights) if weights else None
    busy_before = _values([_get(r.data, "busy_before_pct") for r in runs])
    for r in runs:  # ingest.py measures it before each server
        busy_before += _values(
            _vals(list((_get(r.data, "servers") or {}).values()), "machine_busy_before_pct")
        )
    steal = _values([r.steal_cores for r in runs])
    facts = [f"1-min load average {load_start[0]:.2f} on {cpus} CPUs before the first run"]
    if avg is not None:
        facts.append(
            f"other processes (not this report or its benchmarks) used {avg:.2f} cores on average while"
            f" the benchmarks ran (max {max(others):.2f} during one run)"
        )
    if busy_before:
        lo, hi = f"{min(busy_before):.0f}", f"{max(busy_before):.0f}"
        facts.append(
            f"the scripts found the machine {lo if lo == hi else lo + DASH + hi}% busy in the second"
            " before they started"
        )
    if steal and max(steal) > 0.05:
        facts.append(f"the hypervisor stole up to {max(steal):.2f} cores")
    noisy = (
        load_start[0] / cpus >= NOISY_LOAD_PER_CPU
        or (avg is not None and avg >= NOISY_OTHER_CORES)
        or (bool(busy_before) and statistics.median(busy_before) >= NOISY_BUSY_PCT)
    )
    text = "; ".join(facts) + "."
    if noisy:
        return (
            "**The machine was shared and busy while this report ran, so its figures are noisy and"
            f" pessimistic.** Measured: {text} Benchmarks and anchors still ran in the same runs under the"
            " same load, so ratios are fairer than absolute figures; compare absolute figures across"
            " reports only from a quiet machine."
        )
    return f"The machine looked quiet while this report ran. Measured: {text}"


def git_commit() -> str:
    """The commit the scripts run from (taken before the first run, so later edits do not count),
    flagged when tracked files differ from it."""

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *argv], capture_output=True, text=True, timeout=30, check=True
        )
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return f"{head} with uncommitted changes" if dirty else head


def render(
    args: argparse.Namespace,
    runs: Sequence[Run],
    specs: Sequence[Spec],
    consts: dict[str, dict[str, Any]],
    started: str,
    load_start: Sequence[float],
    load_end: Sequence[float],
    interrupted: bool,
) -> str:
    m = machine_info()
    by_bench: dict[str, list[Run]] = {}
    for r in runs:
        by_bench.setdefault(r.spec.name, []).append(r)
    total_s = sum(r.wall_s for r in runs)
    statement = noise_statement(runs, load_start, m["cpus"] or 1)
    out = ["# Benchmarks", ""]
    if args.quick:
        out += [
            "> **Quick smoke run (`--quick`), not the benchmark figures.** Every script ran with its"
            " short settings (few frames, short shoots, small pools), so the figures show that the"
            " whole report works, not what the box can do. Regenerate with `make bench`.",
            "",
        ]
    if interrupted:
        out += ["> **Interrupted**: the report holds the runs that finished before it was stopped.", ""]
    out += [
        "Written by `bench/report.py`; do not edit by hand. Each figure is the median over the runs,"
        f" with min{DASH}max in brackets; each ratio is the median of the per-run ratios, shutterbox and"
        " its anchor measured in the same run.",
        "",
        f"- **Date**: {started} to {dt.datetime.now().astimezone().isoformat(timespec='seconds')}"
        f" ({total_s / 60:.0f} min of benchmarks)",
        f"- **Command**: `{_command(args)}` from the repository root; {args.runs} run(s) per script",
        f"- **Commit**: {getattr(args, 'commit', None) or git_commit()}",
        f"- **Machine**: {m['cpu_model']}, {m['cpus']} CPUs, {m['ram_gb']} GB RAM, Linux {m['kernel']},"
        f" Python {m['python']} ({platform.machine()})",
        f"- **Disk**: work dir {_disk(ROOT)}; benchmark data in {_disk(_work_base())}",
    ]
    versions = _versions(by_bench)
    if versions:
        out.append(f"- **Versions**: {versions}")
    out += [
        f"- **Load average** (1/5/15 min): before {' '.join(f'{x:.2f}' for x in load_start)}, after"
        f" {' '.join(f'{x:.2f}' for x in load_end)}",
        f"- **Root**: {'yes' if os.geteuid() == 0 else 'no (the FTP anchors need root and were skipped)'}",
        *_left_out(specs),
        "",
        statement,
        "",
    ]
    failed = [r for r in runs if r.status == "failed"]
    flagged = [r for r in runs if r.status == "flagged"]
    if failed or flagged:
        out += ["**Problems**", ""]
        out += [f"- FAILED: {r.spec.script} run {r.n}: {r.reason}" for r in failed]
        out += [f"- flagged: {r.spec.script} run {r.n}: {r.reason}" for r in flagged]
        out.append("")
    sections: list[Section] = []
    for bench, title, fn in AREAS:
        bench_runs = by_bench.get(bench, [])
        sec = Section(title, bench_runs)
        spec = next((s for s in specs if s.name == bench), None)
        if spec is None:
            if bench == "console":
                sec.lines.append("*bench/console.py does not exist yet; not measured.*")
                sections.append(sec)
            continue
        if not bench_runs:
            sec.lines.append("*Not run (interrupted before it, or left out with --benches).*")
        elif not sec.datas and spec.json:
            sec.lines.append("*No figures: every run failed (see Problems and Runs).*")
        else:
            try:
                fn(sec, consts.get(bench, {}))
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                sec.lines = [
                    f"*The report could not read this script's figures ({type(exc).__name__}: {exc});"
                    " its JSON changed shape? Every number it printed, by JSON path:*",
                    "",
                ]
                generic_section(sec)
        bad = [r for r in bench_runs if r.status != "ok"]
        if bad:
            sec.lines += ["", *[f"*Run {r.n} {r.status}: {r.reason}*" for r in bad]]
        if bench_runs:
            times = "" if len(bench_runs) == 1 else f" ({len(bench_runs)} times)"
            sec.lines += ["", f"Reproduce: `{bench_runs[0].command}`{times}"]
        sections.append(sec)
    memory = Section("Memory", runs)
    try:
        memory_section(memory, by_bench, consts)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        memory.lines = [f"*Could not read the memory figures ({type(exc).__name__}: {exc}).*"]
    memory.lines += ["", "Reproduce: the commands of the sections above."]
    sections.insert(len([s for s in sections if s.title != "Face-match accuracy (not timed)"]), memory)
    targets = [t for s in sections for t in s.targets]
    if targets:
        out += ["## Targets at a glance", "", *table(["area", "target", "verdict per run"], targets), ""]
        out += [
            "Targets and verdicts are the scripts' own (their TARGET_* constants and PASS/FAIL per run)."
            " A verdict is about this machine under the load stated above, not the box.",
            "",
        ]
    for sec in sections:
        out += [f"## {sec.title}", "", *[ln for ln in sec.lines], ""]
    out += ["## Runs", ""]
    rows = [
        [
            r.spec.script,
            str(r.n),
            r.status,
            f"{r.wall_s:.0f}",
            f"{r.load_before:.2f} -> {r.load_after:.2f}",
            "\u2014" if r.others_cores is None else f"{r.others_cores:.2f}",
            f"`{r.command}`",
        ]
        for r in runs
    ]
    out += table(["script", "run", "status", "wall s", "load avg", "others' cores", "command"], rows)
    out += [
        "",
        "others' cores = CPU time of the whole machine minus that of this report's own process tree"
        " (the larger of what the kernel accounted to it and what a 1 s sampler saw), over the run's"
        " wall time; approximate, and if anything high.",
    ]
    for r in failed:
        out += ["", f"<details><summary>{r.spec.script} run {r.n}: last lines of stderr</summary>", "", "```"]
        out += [*r.stderr_tail, "```", "", "</details>"]
    return "\n".join(out).rstrip() + "\n"


def _left_out(specs: Sequence[Spec]) -> list[str]:
    known = {s.script for s in (*SPECS, *specs)} | {"console.py", Path(__file__).name}
    rest = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.name not in known)
    why = [f"`{name}`: {LEFT_OUT.get(name, 'a script this report does not know yet')}" for name in rest]
    return [f"- **Not in this report**: {'; '.join(why)}"] if why else []


def _versions(by_bench: dict[str, list[Run]]) -> str:
    found: dict[str, Any] = {}
    for runs in by_bench.values():
        for r in runs:
            versions = _get(r.data, "versions")
            if isinstance(versions, dict):
                for k, v in versions.items():
                    found.setdefault(k, v)
    return ", ".join(f"{k} {v}" for k, v in found.items() if v)


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each script (default 3)")
    parser.add_argument("--quick", action="store_true", help="every script's short settings: a smoke run")
    parser.add_argument(
        "--benches",
        help="comma-separated subset of: " + ", ".join([s.name for s in SPECS] + ["console"]),
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the Markdown report")
    parser.add_argument("--json", action="store_true", help="also print every run's figures as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwind: the running script is stopped, the report written


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    specs = list(SPECS)
    console = console_spec()
    if console is not None:
        specs.append(console)
    if args.benches:
        wanted = {b.strip() for b in args.benches.split(",") if b.strip()}
        unknown = wanted - {s.name for s in specs} - {"console"}
        if unknown:
            _log(f"unknown --benches: {', '.join(sorted(unknown))}")
            return 2
        specs = [s for s in specs if s.name in wanted]
    consts = {s.name: script_constants(BENCH / s.script) for s in specs}
    plan: list[Run] = []
    for n in range(1, args.runs + 1):
        for spec in specs:
            if n > 1 and (spec.once or spec.repeats_itself):
                continue
            extra = ["--reps", str(args.runs)] if spec.repeats_itself else []
            argv_ = [
                sys.executable,
                str(BENCH / spec.script),
                *(spec.quick if args.quick else spec.full),
                *extra,
                *(["--json"] if spec.json else []),
            ]
            plan.append(Run(spec, n, argv_))
    started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    load_start = os.getloadavg()
    args.commit = git_commit()
    _log(f"{len(plan)} script runs; writing {_rel(args.output)} at the end")
    done: list[Run] = []
    interrupted = False
    try:
        for run in plan:
            done.append(run)
            run_script(run, run.spec.timeout_s[1 if args.quick else 0])
    except KeyboardInterrupt:
        interrupted = True
        if done and done[-1].status == "not run":  # the one that was running
            done[-1].status, done[-1].reason = "interrupted", "stopped by Ctrl-C or SIGTERM; not used"
        _log("interrupted; writing what finished")
    text = render(args, done, specs, consts, started, load_start, os.getloadavg(), interrupted)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    _log(f"wrote {_rel(args.output)} ({sum(r.wall_s for r in done) / 60:.1f} min of benchmarks)")
    if args.json:
        print(
            json.dumps(
                [
                    {"script": r.spec.script, "run": r.n, "status": r.status, "reason": r.reason,
                     "rc": r.rc, "wall_s": round(r.wall_s, 1), "command": r.command, "data": r.data}
                    for r in done
                ],
                indent=2,
            )
        )  # fmt: skip
    if interrupted:
        return 130
    return 1 if any(r.status == "failed" for r in done) else 0


if __name__ == "__main__":
    sys.exit(main())
