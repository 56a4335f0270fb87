"""Running one bench script for the report: its process tree's CPU sampled, its progress
copied through, its JSON read, and the outcome classified (ok, crashed, timed out, partial)."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _report_table import at_path, numbers

ROOT = Path(__file__).resolve().parents[1]


STOP_GRACE_S = 60.0  # a script that overran its time limit gets this long to clean up


STDERR_TAIL = 25


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


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def rel(path: str | Path) -> str:
    """``path`` relative to the repository root when inside it (symlinks not followed)."""
    absolute = Path(os.path.abspath(path))
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else str(path)


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
        return shlex.join([rel(sys.executable), *(rel(a) for a in self.argv[1:])])


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
    log(f"{tag} {run.command}")
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
                log(f"  {tag} {line}")

        copier = threading.Thread(target=copy, name=f"stderr-{spec.name}", daemon=True)
        copier.start()
        tree = TreeCpu(proc.pid)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            log(f"{tag} over its {timeout_s:.0f} s limit; stopping it")
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
    log(f"{tag} {run.status} in {run.wall_s:.0f} s{': ' + run.reason if run.reason else ''}")


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
        errors = sum(numbers([r.get("errors") for r in res]))
        found += [f"{errors:.0f} upload errors"] if errors else []
    elif isinstance(res, dict):
        frames = res.get("frames") or {}
        errors = sum(numbers([frames.get("upload_errors"), at_path(res, "live", "frames", "upload_errors")]))
        errors += sum(numbers([r.get("upload_errors") for r in res.get("rate") or []]))
        found += [f"{errors:.0f} upload errors"] if errors else []
        found += [f"{frames['lost']} frames lost"] if frames.get("lost") else []
        if numbers([frames.get("searchable_in_emulated_phase"), frames.get("acked_226")]) and (
            frames.get("searchable_in_emulated_phase", 0) < frames.get("acked_226", 0)
        ):
            found.append("not every photo was searchable before the settle deadline")
        if at_path(res, "phases_s", "drained") is False:
            found.append("the drain did not finish")
    return found
