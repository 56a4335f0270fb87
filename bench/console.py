"""Console benchmark: what the operator console costs, idle and during a 3,000 frames/min ingest.

What it measures
    A real ``shutterbox up`` (started as bench/ingest.py starts it: loopback, one upload key per
    FTP client) and a real console (``shutterbox console``) in a real terminal: a detached tmux
    session of 80x24 on a tmux server of the benchmark's own, which it kills at the end.

    * idle: the box's CPU without a console (``--baseline-seconds``), then the console on the
      dashboard of the idle box for ``--idle-seconds``: its CPU (% of one core), RSS, the tmux
      server's CPU (the terminal's share) and the box's; then the admin API's latency on the idle
      box without a console (``--baseline-seconds``), the baseline for the figures under load;
    * ingest: ``--reps`` repetitions, each on a fresh box (its frames are deleted after). In each,
      every ``--modes`` entry (``paced``: ``--frames`` frames at ``--pace`` frames/min in all;
      ``unpaced``: ``--unpaced-frames`` frames as fast as the box takes them) runs once per
      console variant: ``none``, then one per ``--screens`` entry (the console attached, showing
      that screen); every other repetition runs the variants in the opposite order. The uploads
      are bench/ingest.py's load generator (bench/_ftpload.py: ``--clients`` ftplib sessions,
      distinct 2 MB JPEGs); pacing hands frame i out no sooner than i/pace after the first.
      While frames flow, an API prober does what the console does (GET /api/status,
      /api/cameras and /metrics every 2 s, one after the other) plus /api/status at
      ``--probe-rate`` per second, each on its own keep-alive connection to DATA/run/control.sock.

    Reported per phase: frames/min, MB/s, 226 latency, CPU of the box (process tree), of the
    console, of the tmux server and of everything else on the machine (% of one core, over the
    uploads), the console's peak RSS, API latency p50/p95/max per endpoint over the uploads.
    Then per mode and variant the median and range over the repetitions, the API latencies of all
    repetitions pooled, and the issue's comparison: frames/min and 226 p50 with the console over
    without it, paired within each repetition, next to the spread of the no-console runs alone.
    The script prints figures; it never fails on timing.

How to reproduce
    make bench-console                     # or: .venv/bin/python bench/console.py
    .venv/bin/python bench/console.py --quick --json
    .venv/bin/python bench/console.py --frames 800 --unpaced-frames 1000 --reps 2 --idle-seconds 30
    See bench/README.md for the flags. Main thread: the steps in order; the prober runs on two
    threads of its own, the FTP clients in processes (bench/_ftpload.py).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import multiprocessing as mp
import os
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import (
    IDLE_CPU_FRACTION,
    SAMPLE_S,
    ProcTree,
    filesystem,
    fmt,
    free_range,
    fsync_probe,
    log,
    machine_info,
    pct,
    round_or_none,
    run_script,
    shutterbox_version,
    terminate,
    work_base,
)
from _ftpload import (
    MB,
    BaseImage,
    Endpoint,
    Frame,
    Phase,
    check_frame,
    count_intact,
    make_bases,
    make_frame,
    run_load,
)
from ingest import PASSIVE_PORTS, Row, shutterbox_server

CONSOLE_POLL_S = 2.0  # tui.app.POLL_SECONDS: the console asks the box for its data every 2 s
TERMINAL = (80, 24)
SCREENS = {"dashboard": ("1", "Frames/min"), "cameras": ("2", "Event/function")}  # key, text it shows
ENDPOINTS = ("/api/status", "/api/cameras", "/metrics")
SHOW_TIMEOUT_S = 30.0  # the console must show its screen by then
CALM_PCT = 10.0  # the console has settled once it uses less than this for a second
CALM_TIMEOUT_S = 15.0
QUIET_TIMEOUT_S = 30.0  # after a phase, wait at most this long for the box's main process
API_TIMEOUT_S = 10.0
BUSY_WARN_PCT = 10.0


# --------------------------------------------------------------------------------------------
# The terminal and the console in it


class ConsoleFailed(RuntimeError):
    """The console did not start, did not show its screen, or died."""


class Terminal:
    """A tmux server of our own (socket in the work dir): real ptys, killed as a whole."""

    def __init__(self, work: Path) -> None:
        self.socket = work / "tmux.sock"
        self.conf = work / "tmux.conf"
        # no status line: the console gets all 24 rows; a dead pane stays to show why it died
        self.conf.write_text("set -g status off\nset -g remain-on-exit on\n")
        self.sessions = 0

    def tmux(self, *args: str, check: bool = True) -> str:
        cmd = ["tmux", "-S", str(self.socket), "-f", str(self.conf), *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        if check and out.returncode != 0:
            raise ConsoleFailed(f"tmux {args[0]} failed: {out.stderr.strip()}")
        return out.stdout

    def server(self) -> psutil.Process | None:
        """The tmux server process (its own CPU is the terminal's share; the console is its child)."""
        with contextlib.suppress(ConsoleFailed, ValueError, psutil.Error):
            return psutil.Process(int(self.tmux("display-message", "-p", "#{pid}")))
        return None

    def close(self) -> None:
        if self.socket.exists():
            self.tmux("kill-server", check=False)


@dataclass
class Console:
    terminal: Terminal
    session: str
    tree: ProcTree

    def text(self) -> str:
        return self.terminal.tmux("capture-pane", "-p", "-t", self.session, check=False)

    def dead(self) -> bool:
        return self.terminal.tmux("display-message", "-p", "-t", self.session, "#{pane_dead}") != "0\n"

    def show(self, screen: str, press: bool = True) -> None:
        key, marker = SCREENS[screen]
        if press:
            self.terminal.tmux("send-keys", "-t", self.session, key)
        deadline = time.monotonic() + SHOW_TIMEOUT_S
        while marker not in self.text():
            if self.dead():
                raise ConsoleFailed(f"the console exited:\n{self.text().rstrip()}")
            if time.monotonic() > deadline:
                raise ConsoleFailed(f"the console did not show {screen}:\n{self.text().rstrip()}")
            time.sleep(0.2)

    def calm(self) -> None:
        """Wait until its start-up work is over (under CALM_PCT for a second)."""
        deadline = time.monotonic() + CALM_TIMEOUT_S
        while time.monotonic() < deadline:
            before = self.tree.cpu_s()
            time.sleep(1.0)
            after = self.tree.cpu_s()
            if before is None or after is None or (after - before) * 100 < CALM_PCT:
                return


@contextlib.contextmanager
def attached(terminal: Terminal, argv: Sequence[str], screen: str) -> Iterator[Console]:
    """The console in a new tmux session, showing ``screen`` and settled; gone on exit."""
    terminal.sessions += 1
    session = f"console{terminal.sessions}"
    width, height = TERMINAL
    terminal.tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", session,
                  f"exec {shlex.join(argv)}")  # fmt: skip
    pid = int(terminal.tmux("display-message", "-p", "-t", session, "#{pane_pid}"))
    try:
        console = Console(terminal, session, ProcTree(pid))
        console.show("dashboard", press=False)  # the screen it starts on
        if screen != "dashboard":
            console.show(screen)
        console.calm()
        if "not reachable" in console.text():
            raise ConsoleFailed(f"the console cannot reach the box:\n{console.text().rstrip()}")
        yield console
        if console.dead():
            raise ConsoleFailed(f"the console died during the phase:\n{console.text().rstrip()}")
    finally:
        terminal.tmux("kill-session", "-t", session, check=False)  # SIGHUP, as a closed SSH session
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            try:
                proc.wait(5)
            except psutil.TimeoutExpired:
                proc.kill()


def console_argv(kind: str, data: Path) -> list[str]:
    bin_dir = Path(sys.executable).parent
    if kind == "cli":
        return [str(bin_dir / "shutterbox"), "console", "--data", str(data)]
    return [sys.executable, "-m", "tui", "--data", str(data)]


# --------------------------------------------------------------------------------------------
# Admin API prober


class ApiProber:
    """Times GET requests to the admin API over the control socket, on two threads: the
    console's own polling (``ENDPOINTS`` one after the other every CONSOLE_POLL_S) and a faster
    probe of /api/status. A tick that comes due while the last one is still running is skipped
    (counted as ``skipped``), so a slow box gets no pile-up."""

    def __init__(self, socket: Path, probe_rate: float) -> None:
        self.socket = socket
        self.samples: dict[str, list[tuple[float, float]]] = {}  # name -> (sent at, seconds)
        self.errors: dict[str, list[tuple[float, str]]] = {}
        self.skipped: dict[str, int] = {}
        self._stop = threading.Event()
        plans: list[tuple[tuple[str, ...], float, str]] = [(ENDPOINTS, CONSOLE_POLL_S, "")]
        if probe_rate > 0:
            plans.append((("/api/status",), 1 / probe_rate, f" @{probe_rate:g}/s"))
        self._threads = [
            threading.Thread(target=self._run, args=plan, name=f"api-prober-{i}", daemon=True)
            for i, plan in enumerate(plans)
        ]
        for paths, _interval, suffix in plans:
            for path in paths:
                self.samples[path + suffix], self.errors[path + suffix] = [], []
                self.skipped[path + suffix] = 0

    def __enter__(self) -> ApiProber:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(API_TIMEOUT_S + 5)

    def _run(self, paths: Sequence[str], interval: float, suffix: str) -> None:
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, base_url="http://shutterbox", timeout=API_TIMEOUT_S) as client:
            due = time.monotonic()
            while not self._stop.is_set():
                for path in paths:
                    name = path + suffix
                    t0 = time.monotonic()
                    try:
                        client.get(path).raise_for_status()
                    except httpx.HTTPError as exc:
                        self.errors[name].append((t0, f"{type(exc).__name__}: {exc}"))
                        continue
                    self.samples[name].append((t0, time.monotonic() - t0))
                due += interval
                now = time.monotonic()
                if due < now:
                    missed = int((now - due) // interval) + 1
                    for path in paths:
                        self.skipped[path + suffix] += missed
                    due += missed * interval
                self._stop.wait(due - now)

    def latencies(self, since: float, until: float) -> dict[str, list[float]]:
        return {
            name: [lat for t, lat in samples if since <= t <= until] for name, samples in self.samples.items()
        }

    def summary(self, since: float, until: float) -> dict[str, dict[str, Any]]:
        lats = self.latencies(since, until)
        return {
            name: _latency_stats(lats[name])
            | {
                "errors": sum(since <= t <= until for t, _ in self.errors[name]),
                "error_samples": [e for t, e in self.errors[name] if since <= t <= until][:3],
                "skipped": self.skipped[name],
            }
            for name in self.samples
        }


def _latency_stats(seconds: Sequence[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round_or_none(pct(ms, 50), 1),
        "p95_ms": round_or_none(pct(ms, 95), 1),
        "max_ms": round_or_none(max(ms, default=None), 1),
    }


def box_status(socket: Path) -> dict[str, Any]:
    transport = httpx.HTTPTransport(uds=str(socket))
    with httpx.Client(transport=transport, base_url="http://shutterbox", timeout=API_TIMEOUT_S) as client:
        return dict(client.get("/api/status").raise_for_status().json())


# --------------------------------------------------------------------------------------------
# CPU accounting


def _own_cpu_s(proc: psutil.Process) -> float | None:
    """CPU seconds of ``proc`` itself (not of children it waited for)."""
    with contextlib.suppress(psutil.Error):
        t = proc.cpu_times()
        return float(t.user + t.system)
    return None


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (guest time is already in user time)."""
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


@dataclass(frozen=True)
class CpuSnap:
    t: float
    box: float | None
    console: float | None
    tmux: float | None
    harness: float | None  # this process: the prober threads and the load generator's parent
    machine: float


@dataclass
class Watch:
    """The processes whose CPU a step accounts for."""

    box: ProcTree
    console: ProcTree | None = None
    tmux: psutil.Process | None = None  # the server alone: the console is a child of it
    snaps: list[CpuSnap] = field(default_factory=list)

    def snap(self) -> CpuSnap:
        snap = CpuSnap(
            time.monotonic(),
            self.box.cpu_s(),
            self.console.cpu_s() if self.console else None,
            _own_cpu_s(self.tmux) if self.tmux else None,
            _own_cpu_s(psutil.Process()),
            _machine_busy_s(),
        )
        self.snaps.append(snap)
        return snap

    def box_cpu(self) -> float | None:
        """For run_load: called just before the uploads start and once they are done."""
        return self.snap().box

    def sample(self) -> None:
        self.box.sample()
        if self.console:
            self.console.sample()

    def percent(self, a: CpuSnap, b: CpuSnap, client_cpu_s: float = 0.0) -> dict[str, float | None]:
        """% of one core between two snaps; ``other`` is everything else the machine ran."""
        wall = b.t - a.t

        def pct(x: float | None, y: float | None) -> float | None:
            return None if x is None or y is None or wall <= 0 else round((y - x) / wall * 100, 1)

        ours = [
            v
            for v in (
                pct(a.box, b.box),
                pct(a.console, b.console),
                pct(a.tmux, b.tmux),
                pct(a.harness, b.harness),
            )
            if v is not None
        ]
        machine = pct(a.machine, b.machine) or 0.0
        clients = client_cpu_s / wall * 100 if wall > 0 else 0.0
        return {
            "box": pct(a.box, b.box),
            "console": pct(a.console, b.console),
            "tmux": pct(a.tmux, b.tmux),
            "harness_and_clients": round((pct(a.harness, b.harness) or 0.0) + clients, 1),
            "other": round(max(0.0, machine - sum(ours) - clients), 1),
            "machine": round(machine, 1),
        }


def wait_quiet(pid: int) -> float:
    """Wait until the box's main process (FTP, ingest, API; not its niced face workers) stays
    under IDLE_CPU_FRACTION of a core for a second; seconds waited."""
    t0 = time.monotonic()
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        while time.monotonic() - t0 < QUIET_TIMEOUT_S:
            before = sum(proc.cpu_times()[:2])
            time.sleep(1.0)
            if sum(proc.cpu_times()[:2]) - before < IDLE_CPU_FRACTION:
                break
    return time.monotonic() - t0


# --------------------------------------------------------------------------------------------
# Pacing


class PacedFrames(tuple[Frame, ...]):
    """A phase's frames that the load generator's clients get no sooner than their slot: frame
    i at t0 + i * 60 / per_min, t0 being when the first is asked for. Clients are forked
    processes; the slot clock lives in shared memory and CLOCK_MONOTONIC is system-wide.
    Iterating (verification, byte counts) does not wait."""

    interval: float
    origin: Any

    def __new__(cls, frames: Sequence[Frame], per_min: float) -> PacedFrames:
        self = super().__new__(cls, frames)
        self.interval = 60.0 / per_min
        self.origin = mp.get_context("fork").Value("d", 0.0)
        return self

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, int):
            with self.origin.get_lock():
                if not self.origin.value:
                    self.origin.value = time.monotonic()
                t0 = self.origin.value
            delay = t0 + index * self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return super().__getitem__(index)


# --------------------------------------------------------------------------------------------
# Steps


@dataclass
class Result:
    """One ingest phase: ingest.py's figures (``row``) plus the console's and the API's."""

    rep: int
    mode: str
    console: str  # "none" or the screen shown
    pace: float | None
    row: Row
    cpu: dict[str, float | None]
    console_rss_mb: float | None
    api: dict[str, dict[str, Any]]
    api_lats: dict[str, list[float]]
    faces_backlog: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rep": self.rep,
            "mode": self.mode,
            "console": self.console,
            "pace_frames_per_min": self.pace,
            "ingest": self.row.to_dict(),
            "cpu_pct_of_one_core": self.cpu,
            "console_peak_rss_mb": round_or_none(self.console_rss_mb, 1),
            "api": self.api,
            "faces_backlog_at_start": self.faces_backlog,
        }


@dataclass
class Run:
    """What the steps observed, kept when a later step fails."""

    args: argparse.Namespace
    run_id: str
    terminal: Terminal
    bases: Sequence[BaseImage]
    idle: dict[str, Any] | None = None
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    console_broken: bool = False


@dataclass
class Box:
    pid: int
    data: Path
    endpoints: list[Endpoint]
    tree: ProcTree
    console_argv: list[str]

    @property
    def socket(self) -> Path:
        return self.data / "run" / "control.sock"


def measure_idle(run: Run, box: Box) -> dict[str, Any]:
    """The box alone, then with the console on its dashboard, then API latency with neither."""
    args = run.args
    watch = Watch(box.tree)
    a = watch.snap()
    time.sleep(args.baseline_seconds)
    out: dict[str, Any] = {"box_alone_cpu_pct": watch.percent(a, watch.snap())["box"]}
    log(f"idle: console on the dashboard for {args.idle_seconds:g} s ...")
    with attached(run.terminal, box.console_argv, "dashboard") as console:
        watch = Watch(box.tree, console.tree, run.terminal.server())
        a = watch.snap()
        while time.monotonic() - a.t < args.idle_seconds:
            watch.sample()
            time.sleep(SAMPLE_S)
        b = watch.snap()
        rss = [mb for t, mb in console.tree.samples if t >= a.t]
    out |= {
        "seconds": round(b.t - a.t, 1),
        "cpu_pct_of_one_core": watch.percent(a, b),
        "console_rss_mb": {
            "mean": round_or_none(statistics.mean(rss), 1) if rss else None,
            "peak": round_or_none(max(rss, default=None), 1),
        },
    }
    log(f"idle: API latency without a console for {args.baseline_seconds:g} s ...")
    with ApiProber(box.socket, args.probe_rate) as prober:
        t0 = time.monotonic()
        time.sleep(args.baseline_seconds)
    out["api"] = prober.summary(t0, time.monotonic())
    return out


def run_phase(run: Run, box: Box, rep: int, n: int, mode: str, screen: str) -> Result:
    """Upload one phase's frames (the console attached on ``screen`` unless "none") while the
    prober times the API; then sync, verify and wait for the box's main process to calm down."""
    args = run.args
    pace = args.pace if mode == "paced" else None
    count = args.frames if mode == "paced" else args.unpaced_frames
    tag = f"R{rep}P{n}"
    frames = tuple(
        make_frame(f"{tag}-{i:05d}.JPG", run.bases[i % len(run.bases)], run.run_id) for i in range(count)
    )
    phase = Phase(tag, PacedFrames(frames, pace) if pace else frames)
    log(f"rep {rep}: {mode} x{count}, console {screen} ...")
    with contextlib.ExitStack() as stack:
        watch = Watch(box.tree)
        if screen != "none":
            console = stack.enter_context(attached(run.terminal, box.console_argv, screen))
            watch = Watch(box.tree, console.tree, run.terminal.server())
        backlog = box_status(box.socket).get("faces", {}).get("photos_pending")
        t0 = time.monotonic()
        with ApiProber(box.socket, args.probe_rate) as prober:
            load = run_load(box.endpoints, phase, args.clients, watch.box_cpu, watch.sample)
    # the console has left (after the uploads); now what ingest.py does after a phase
    t_sync = time.monotonic()
    os.sync()
    sync_s = time.monotonic() - t_sync
    intact = count_intact(box.data, phase, run.run_id)
    row = Row(phase, "shutterbox", load, intact, box.tree.peak_mb(since=t0), sync_s, wait_quiet(box.pid))
    started = [w for w in load.workers if w.end]  # first STOR to last 226, CLOCK_MONOTONIC
    first = min((w.start for w in started), default=0.0)
    last = max((w.end for w in started), default=0.0)
    result = Result(
        rep,
        mode,
        screen,
        pace,
        row,
        watch.percent(watch.snaps[0], watch.snaps[-1], load.client_cpu_s),
        watch.console.peak_mb(since=t0) if watch.console else None,
        prober.summary(first, last),
        prober.latencies(first, last),
        backlog,
    )
    log(
        f"  {row.frames_per_min:.0f} frames/min, {len(load.errors)} errors,"
        f" box {fmt(result.cpu['box'], '.0f')}%, console {fmt(result.cpu['console'], '.1f')}%,"
        f" /api/status p95 {fmt(result.api['/api/status']['p95_ms'], '.0f')} ms"
    )
    return result


def phase_plan(rep: int, args: argparse.Namespace) -> list[tuple[str, str]]:
    """(mode, console) pairs of one repetition; every other one runs the variants reversed."""
    variants = ["none", *args.screens]
    if rep % 2 == 0:
        variants.reverse()
    return [(mode, variant) for mode in args.modes for variant in variants]


def run_rep(run: Run, rep: int, work: Path, passive: tuple[int, int]) -> None:
    """A fresh box, every (mode, console) phase against it, the box and its frames gone after."""
    args = run.args
    rep_dir = work / f"rep{rep}"
    rep_dir.mkdir()
    notes: list[str] = []
    try:
        with shutterbox_server(rep_dir, passive, args.clients) as server:
            notes = server.notes  # the context manager appends the log's problems on exit
            argv = console_argv(args.console, server.upload_root)
            box = Box(server.pid, server.upload_root, server.endpoints, ProcTree(server.pid), argv)
            box.tree.wait_idle()
            if rep == 1 and args.idle_seconds > 0:
                try:
                    run.idle = measure_idle(run, box)
                except ConsoleFailed as exc:
                    run.failures.append(f"idle console: {exc}")
                    log(f"console failed: {exc}")
            for n, (mode, screen) in enumerate(phase_plan(rep, args), 1):
                if screen != "none" and run.console_broken:
                    continue
                try:
                    run.results.append(run_phase(run, box, rep, n, mode, screen))
                except ConsoleFailed as exc:
                    run.failures.append(f"rep {rep} {mode} console {screen}: {exc}")
                    run.console_broken = True
                    log(f"console failed, skipping the console phases: {exc}")
    finally:
        run.notes += [f"rep {rep}: {n}" for n in notes]
        shutil.rmtree(rep_dir, ignore_errors=True)  # 2 MB a frame: free the disk for the next one


# --------------------------------------------------------------------------------------------
# Figures


def _spread(values: Sequence[float | None]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(vals), 3), "min": min(vals), "max": max(vals), "n": len(vals)}


def summarize(results: Sequence[Result]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[Result]] = {}
    variants = ["none", *SCREENS]
    for r in sorted(results, key=lambda r: (r.mode, variants.index(r.console))):
        groups.setdefault((r.mode, r.console), []).append(r)
    summary = []
    for (mode, console), rs in groups.items():
        lats: dict[str, list[float]] = {}
        for r in rs:
            for name, values in r.api_lats.items():
                lats.setdefault(name, []).extend(values)
        summary.append(
            {
                "mode": mode,
                "console": console,
                "frames_per_min": _spread([round(r.row.frames_per_min, 1) for r in rs]),
                "lat_226_p50_ms": _spread([r.row.to_dict()["lat_226_ms"]["p50"] for r in rs]),
                "lat_226_p99_ms": _spread([r.row.to_dict()["lat_226_ms"]["p99"] for r in rs]),
                "box_cpu_pct": _spread([r.cpu["box"] for r in rs]),
                "console_cpu_pct": _spread([r.cpu["console"] for r in rs]),
                "tmux_cpu_pct": _spread([r.cpu["tmux"] for r in rs]),
                "other_cpu_pct": _spread([r.cpu["other"] for r in rs]),
                "console_peak_rss_mb": _spread([round_or_none(r.console_rss_mb, 1) for r in rs]),
                "api_pooled": {
                    name: _latency_stats(values) | {"errors": sum(r.api[name]["errors"] for r in rs)}
                    for name, values in lats.items()
                },
            }
        )
    return summary


def compare(results: Sequence[Result]) -> list[dict[str, Any]]:
    """Per mode and console screen: with / without, paired within each repetition."""
    by_key = {(r.rep, r.mode, r.console): r for r in results}
    out = []
    for mode in dict.fromkeys(r.mode for r in results):
        alone = [r for r in results if r.mode == mode and r.console == "none"]
        fpm_alone = [r.row.frames_per_min for r in alone]
        noise = None
        if len(fpm_alone) > 1 and statistics.median(fpm_alone):
            noise = round((max(fpm_alone) - min(fpm_alone)) / statistics.median(fpm_alone), 3)
        for screen in dict.fromkeys(r.console for r in results if r.console != "none"):
            fpm, p50, box = [], [], []
            for a in alone:
                b = by_key.get((a.rep, mode, screen))
                if b is None or not a.row.frames_per_min:
                    continue
                fpm.append(round(b.row.frames_per_min / a.row.frames_per_min, 3))
                pa, pb = a.row.to_dict()["lat_226_ms"]["p50"], b.row.to_dict()["lat_226_ms"]["p50"]
                if pa and pb:
                    p50.append(round(pb / pa, 3))
                if a.cpu["box"] is not None and b.cpu["box"] is not None:
                    box.append(round(b.cpu["box"] - a.cpu["box"], 1))
            out.append(
                {
                    "mode": mode,
                    "console": screen,
                    "frames_per_min_ratio": _spread(fpm),
                    "lat_226_p50_ratio": _spread(p50),
                    "box_cpu_diff_pct_points": _spread(box),
                    "no_console_frames_per_min_spread": noise,
                }
            )
    return out


def _sp(s: dict[str, Any], spec: str) -> str:
    if s["median"] is None:
        return "-"
    if s["n"] == 1:
        return format(s["median"], spec)
    return f"{s['median']:{spec}} [{s['min']:{spec}}-{s['max']:{spec}}]"


def render(report: dict[str, Any]) -> str:
    m, c = report["machine"], report["config"]
    pace = f"paced {c['pace']:g} frames/min x {c['frames']}" if "paced" in c["modes"] else ""
    unpaced = f"unpaced x {c['unpaced_frames']}" if "unpaced" in c["modes"] else ""
    lines = [
        f"shutterbox console benchmark, {report['date']}",
        f"command: {report['command']}",
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, Linux {m['kernel']},"
        f" Python {m['python']}; {report['versions']}; {report['busy_before_pct']:.0f}% busy before",
        f"config: {c['clients']} FTP clients (one key each), {c['size_mb']:g} MB frames,"
        f" {', '.join(p for p in (pace, unpaced) if p)}, {c['reps']} repetitions (order alternates),"
        f" face indexing {c['faces']}",
        f"console: {c['console_cmd']} in tmux {c['terminal']}; API prober: {', '.join(ENDPOINTS)}"
        f" every {CONSOLE_POLL_S:g} s + /api/status at {c['probe_rate']:g}/s",
        f"data: {c['data_fs']}",
        "",
    ]
    idle = report.get("idle")
    if idle:
        cpu, rss = idle["cpu_pct_of_one_core"], idle["console_rss_mb"]
        lines += [
            f"Idle box, console on the dashboard ({idle['seconds']:g} s):",
            f"  console CPU {fmt(cpu['console'], '.1f')}% of one core, RSS {fmt(rss['mean'], '.0f')} MB"
            f" (peak {fmt(rss['peak'], '.0f')}); tmux server {fmt(cpu['tmux'], '.1f')}%;"
            f" box {fmt(cpu['box'], '.1f')}% (alone {fmt(idle['box_alone_cpu_pct'], '.1f')}%);"
            f" other {fmt(cpu['other'], '.1f')}%",
            "",
        ]
    lines.append("Ingest phases (CPU in % of one core over the uploads; API p95 in ms)")
    names = list(report["results"][0]["api"]) if report["results"] else []
    short = [n.replace("/api/", "").replace("/", "") for n in names]
    head = (
        f"{'rep':>3} {'mode':<8} {'console':<10}{'frames':>7}{'f/min':>7}{'226p50':>8}{'226p99':>8}"
        f"{'box':>6}{'cons':>6}{'tmux':>6}{'other':>6}{'RSS':>5}{'err':>4}"
        + "".join(f"{s:>{max(8, len(s) + 1)}}" for s in short)
    )
    lines.append(head)
    for d in report["results"]:
        i, cpu = d["ingest"], d["cpu_pct_of_one_core"]
        lines.append(
            f"{d['rep']:>3} {d['mode']:<8} {d['console']:<10}{i['frames_ok']:>7}{i['frames_per_min']:>7.0f}"
            f"{fmt(i['lat_226_ms']['p50'], '.1f'):>8}{fmt(i['lat_226_ms']['p99'], '.1f'):>8}"
            f"{fmt(cpu['box'], '.0f'):>6}{fmt(cpu['console'], '.1f'):>6}{fmt(cpu['tmux'], '.1f'):>6}"
            f"{fmt(cpu['other'], '.0f'):>6}{fmt(d['console_peak_rss_mb'], '.0f'):>5}{i['errors']:>4}"
            + "".join(
                f"{fmt(d['api'][n]['p95_ms'], '.0f'):>{max(8, len(s) + 1)}}"
                for n, s in zip(names, short, strict=True)
            )
        )
    lines += ["", "Summary: median [min-max] over the repetitions"]
    lines.append(
        f"{'mode':<8} {'console':<10}{'frames/min':>18}{'226 p99 ms':>20}{'box CPU %':>15}"
        f"{'console CPU %':>16}{'other CPU %':>15}{'RSS MB':>7}"
    )
    for s in report["summary"]:
        lines.append(
            f"{s['mode']:<8} {s['console']:<10}{_sp(s['frames_per_min'], '.0f'):>18}"
            f"{_sp(s['lat_226_p99_ms'], '.1f'):>20}{_sp(s['box_cpu_pct'], '.0f'):>15}"
            f"{_sp(s['console_cpu_pct'], '.1f'):>16}{_sp(s['other_cpu_pct'], '.0f'):>15}"
            f"{fmt(s['console_peak_rss_mb']['max'], '.0f'):>7}"
        )
    lines += ["", "Admin API latency (ms): idle box without console; during the uploads, repetitions pooled"]
    lines.append(
        f"{'mode':<8} {'console':<10}{'endpoint':<22}{'n':>6}{'p50':>8}{'p95':>8}{'max':>8}{'errors':>8}"
    )
    groups = [("idle", "none", idle["api"])] if idle else []
    groups += [(s["mode"], s["console"], s["api_pooled"]) for s in report["summary"]]
    for mode, console, api in groups:
        for name, a in api.items():
            lines.append(
                f"{mode:<8} {console:<10}{name:<22}{a['n']:>6}{fmt(a['p50_ms'], '.1f'):>8}"
                f"{fmt(a['p95_ms'], '.1f'):>8}{fmt(a['max_ms'], '.1f'):>8}{a['errors']:>8}"
            )
    lines += ["", "With the console / without it, paired within each repetition: median [min-max]"]
    for cmp in report["comparison"]:
        noise = cmp["no_console_frames_per_min_spread"]
        lines.append(
            f"  {cmp['mode']:<8} {cmp['console']:<10} frames/min {_sp(cmp['frames_per_min_ratio'], '.3f')},"
            f" 226 p50 {_sp(cmp['lat_226_p50_ratio'], '.2f')},"
            f" box CPU {_sp(cmp['box_cpu_diff_pct_points'], '+.0f')} points"
            + (
                f"; no-console runs alone spread {noise * 100:.1f}% (max-min)/median"
                if noise is not None
                else ""
            )
        )
    lines.append("")
    lines += [f"note: {n}" for n in report["notes"]]
    for d in report["results"]:
        lines += [f"upload error (rep {d['rep']} {d['mode']}): {e}" for e in d["ingest"]["error_samples"]]
    lines += [f"error: {e}" for e in report["failures"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Main


def _csv(choices: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        items = [s.strip() for s in text.split(",") if s.strip()]
        bad = [s for s in items if s not in choices]
        if bad or len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)} (no repeats), got {text!r}")
        return items

    return parse


FULL = {"frames": 1000, "unpaced_frames": 2000, "reps": 3, "idle_seconds": 60.0, "baseline_seconds": 20.0}
QUICK = {"frames": 150, "unpaced_frames": 300, "reps": 2, "idle_seconds": 10.0, "baseline_seconds": 5.0}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, help="frames per paced phase (default 1000; --quick 150)")
    p.add_argument("--unpaced-frames", type=int, help="frames per unpaced phase (default 2000; --quick 300)")
    p.add_argument("--pace", type=float, default=3000, help="frames/min of the paced phases, all clients")
    p.add_argument("--modes", type=_csv(["paced", "unpaced"]), default=["paced", "unpaced"],
                   help="paced, unpaced or both (default)")  # fmt: skip
    p.add_argument("--screens", type=_csv(list(SCREENS)), default=["dashboard"],
                   help="console screens, comma-separated: dashboard (default), cameras")  # fmt: skip
    p.add_argument("--reps", type=int, help="repetitions, each on a fresh box (default 3; --quick 2)")
    p.add_argument("--clients", type=int, default=8, help="FTP sessions, one upload key each")
    p.add_argument("--size-mb", type=float, default=2.0, help="frame size in MB (10^6 bytes)")
    p.add_argument(
        "--idle-seconds", type=float, help="console idle sampling, 0 skips (default 60; --quick 10)"
    )
    p.add_argument(
        "--baseline-seconds", type=float, help="box-alone and API-idle windows (default 20; --quick 5)"
    )
    p.add_argument(
        "--probe-rate", type=float, default=5, help="extra /api/status requests per second (0: none)"
    )
    p.add_argument("--faces", choices=["on", "off"], default="on", help="the box's local face indexing")
    p.add_argument("--console", choices=["cli", "module"], default="cli",
                   help="cli: shutterbox console; module: python -m tui")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke run (explicit flags win)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if min(args.frames, args.unpaced_frames, args.reps, args.clients) < 1 or args.pace <= 0:
        p.error("--frames, --unpaced-frames, --reps, --clients must be >= 1 and --pace > 0")
    if not 0 < args.size_mb <= 100 or min(args.probe_rate, args.baseline_seconds, args.idle_seconds) < 0:
        p.error("--size-mb must be in (0, 100]; --probe-rate, --*-seconds >= 0")
    return args


def _disk_needed(args: argparse.Namespace) -> float:
    """Bytes one repetition writes (frames, proxies, slack): a fresh box per repetition."""
    per_variant = args.frames * ("paced" in args.modes) + args.unpaced_frames * ("unpaced" in args.modes)
    return float(per_variant * (1 + len(args.screens)) * args.size_mb * MB * 1.3 + 2e9)


def build_report(run: Run, machine: dict[str, Any], busy: float, data_fs: str) -> dict[str, Any]:
    args = run.args
    notes = [
        "CPU % = CPU time / wall time over the uploads (100 = one core); box = its process tree"
        " (face workers included); console = the console process; tmux = the terminal's server"
        " alone; other = the rest of the machine, our FTP clients and this script excluded",
        "frames/min and 226 latency as bench/ingest.py: first STOR to last 226; API latency:"
        " request sent -> response read, over requests sent during the uploads",
        "the console runs in a detached tmux session (a real pty, no client attached); it polls"
        f" the box itself every {CONSOLE_POLL_S:g} s on top of the prober",
        f"clients, box, console and harness share this machine's {machine['cpus']} CPUs",
        *run.notes,
    ]
    if busy > BUSY_WARN_PCT:
        notes.append(f"WARNING: the machine was {busy:.0f}% busy before the run; other load skews figures")
    tmux = subprocess.run(["tmux", "-V"], capture_output=True, text=True, timeout=10).stdout.strip()
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine,
        "versions": f"shutterbox {shutterbox_version()}, textual {importlib.metadata.version('textual')},"
        f" {tmux}",
        "busy_before_pct": busy,
        "config": {
            "clients": args.clients,
            "size_mb": args.size_mb,
            "frames": args.frames,
            "unpaced_frames": args.unpaced_frames,
            "pace": args.pace,
            "modes": args.modes,
            "screens": args.screens,
            "reps": args.reps,
            "faces": args.faces,
            "probe_rate": args.probe_rate,
            "console_cmd": shlex.join(console_argv(args.console, Path("DATA"))),
            "terminal": f"{TERMINAL[0]}x{TERMINAL[1]}",
            "data_fs": data_fs,
        },
        "idle": run.idle,
        "results": [r.to_dict() for r in run.results],
        "summary": summarize(run.results),
        "comparison": compare(run.results),
        "notes": notes,
        "failures": run.failures,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminate)
    if not shutil.which("tmux"):
        log("tmux not found (apt-get install tmux)")
        return 2
    # shutterbox_server hands our environment to the box: its admin HTTP listener on a free port
    # (the default 8081 may be another box's), face indexing as asked
    os.environ["SHUTTERBOX_ADMIN__PORT"] = "0"
    if args.faces == "off":
        os.environ["SHUTTERBOX_FACES__ENABLED"] = "false"
    machine = machine_info()
    run_id = secrets.token_hex(4)
    busy = psutil.cpu_percent(interval=1.0)
    with tempfile.TemporaryDirectory(prefix="sbconsole-", dir=work_base()) as tmp:
        work = Path(tmp)
        free, needed = shutil.disk_usage(work).free, _disk_needed(args)
        if free < needed:
            log(f"{work}: {free / 1e9:.0f} GB free, one repetition needs ~{needed / 1e9:.0f} GB")
            return 2
        device, fstype = filesystem(work.resolve())
        data_fs = f"{work} ({fstype} on {device}; 2 MB write+fsync p50 {fsync_probe(work):.1f} ms)"
        bases = make_bases(args.size_mb)
        for base in bases:
            check_frame(make_frame("CHECK.JPG", base, run_id))
        passive = free_range(PASSIVE_PORTS, [])
        run = Run(args, run_id, Terminal(work), bases)
        try:
            for rep in range(1, args.reps + 1):
                try:
                    run_rep(run, rep, work, passive)
                except Exception as exc:  # report it with what completed
                    run.failures.append(f"rep {rep}: {type(exc).__name__}: {exc}")
                    log(f"rep {rep} failed: {exc}")
                    break
        finally:
            run.terminal.close()
    report = build_report(run, machine, busy, data_fs)
    print(json.dumps(report, indent=2) if args.json else render(report))
    errors = sum(len(r.row.load.errors) for r in run.results)
    return 1 if run.failures or errors else 0


if __name__ == "__main__":
    run_script(main)
