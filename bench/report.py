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
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
from _common import filesystem as _filesystem
from _common import machine_info
from _common import work_base as _work_base
from _report_console import console_section
from _report_faces import accuracy_section, faces_live_section, faces_search_section, memory_section
from _report_ingest import ingest_section
from _report_runs import ROOT, Run, Spec, log, rel, run_script
from _report_sync import sync_section
from _report_table import DASH, Section, at_path, column, generic_section, numbers, table

BENCH = ROOT / "bench"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
NOISY_LOAD_PER_CPU = 0.5  # 1-min load average per CPU before the first run above which: "busy"
NOISY_OTHER_CORES = 0.2  # others' CPU while a script ran (cores) above which: "busy" (faces.py's)
NOISY_BUSY_PCT = 10.0  # median CPU % the scripts saw in the second before they started (ingest.py's)


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
    "live.py": "the guest page's own figures (first result, live updates to watching phones, bytes"
    " per page); run it with `make bench-live`",
}
# console.py (bench/console.py) is optional; its quick settings, used for the flags it has
CONSOLE_QUICK = {
    "--frames": "150",
    "--unpaced-frames": "150",
    "--idle-seconds": "10",
    "--baseline-seconds": "5",
}


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


# --------------------------------------------------------------------------------------------
# Figures


# --------------------------------------------------------------------------------------------
# The sections


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
    cmd = shlex.join([rel(sys.executable), rel(sys.argv[0]), *sys.argv[1:]])
    return f"{cmd}  (via `make bench`)" if os.environ.get("MAKELEVEL") else cmd


def noise_statement(runs: Sequence[Run], load_start: Sequence[float], cpus: int) -> str:
    """What other load there was, measured, and whether that makes the figures noisy."""
    others = [r.others_cores for r in runs if r.others_cores is not None and r.wall_s > 0]
    weights = [r.wall_s for r in runs if r.others_cores is not None and r.wall_s > 0]
    avg = sum(o * w for o, w in zip(others, weights, strict=True)) / sum(weights) if weights else None
    busy_before = numbers([at_path(r.data, "busy_before_pct") for r in runs])
    for r in runs:  # ingest.py measures it before each server
        busy_before += numbers(
            column(list((at_path(r.data, "servers") or {}).values()), "machine_busy_before_pct")
        )
    steal = numbers([r.steal_cores for r in runs])
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
            versions = at_path(r.data, "versions")
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
            log(f"unknown --benches: {', '.join(sorted(unknown))}")
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
    log(f"{len(plan)} script runs; writing {rel(args.output)} at the end")
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
        log("interrupted; writing what finished")
    text = render(args, done, specs, consts, started, load_start, os.getloadavg(), interrupted)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    log(f"wrote {rel(args.output)} ({sum(r.wall_s for r in done) / 60:.1f} min of benchmarks)")
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
