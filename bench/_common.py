"""What the benchmark scripts share: logging to stderr, nearest-rank percentiles and number
formatting, the machine's description, free ports, the disk's fsync cost, and the CPU time and
memory of a process tree. No script imports another script's private names: they import these."""

from __future__ import annotations

import contextlib
import ftplib
import importlib.metadata
import math
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import psutil

HOST = "127.0.0.1"
MB = 1024 * 1024
PASSIVE_PORTS_FROM = 61000  # above Linux's ephemeral range (32768-60999)
IDLE_CPU_FRACTION = 0.05  # "idle" = the tree used < 5% of a core over one second
IDLE_TIMEOUT_S = 60.0
SAMPLE_S = 0.5
FTP_ERRORS: tuple[type[BaseException], ...] = (*ftplib.all_errors, EOFError)  # a camera's failed upload


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def shutterbox_version() -> str | None:
    try:
        return importlib.metadata.version("shutterbox")
    except importlib.metadata.PackageNotFoundError:
        return None


def filesystem(path: Path) -> tuple[str, str]:
    """(device, fstype) of the mount holding ``path``."""
    best = None
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint
        inside = str(path).startswith(mount.rstrip("/") + "/") or str(path) == mount
        if inside and (best is None or len(mount) > len(best.mountpoint)):
            best = part
    return (best.device, best.fstype) if best else ("?", "?")


def work_base() -> Path:
    """A directory on a real disk: fsync on tmpfs would measure nothing."""
    for candidate in (Path(tempfile.gettempdir()), Path("/var/tmp")):
        if filesystem(candidate.resolve())[1] not in ("tmpfs", "ramfs"):
            return candidate
    return Path("/var/tmp")


def fsync_probe(directory: Path, count: int = 16) -> float:
    """Median ms to write and fsync a 2 MB file there: how dear durability is on this disk."""
    payload = os.urandom(2 * MB)
    times = []
    for i in range(count):
        path = directory / f"fsync-probe-{i}"
        t0 = time.monotonic()
        with path.open("wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        times.append(time.monotonic() - t0)
        path.unlink()
    return statistics.median(times) * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_range(count: int, taken: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """``count`` consecutive bindable ports above Linux's ephemeral range, not in ``taken``."""
    for lo in range(PASSIVE_PORTS_FROM, 65536 - count, count):
        hi = lo + count - 1
        if any(lo <= t_hi and t_lo <= hi for t_lo, t_hi in taken):
            continue
        if all(port_free(p) for p in range(lo, hi + 1)):
            return lo, hi
    raise RuntimeError(f"no {count} consecutive free ports above {PASSIVE_PORTS_FROM}")


class ProcTree:
    """CPU time and memory of a server process and all its descendants."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []  # (monotonic time, RSS MB)

    def _procs(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []

    def rss_mb(self) -> float:
        total = 0
        for p in self._procs():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total / 2**20

    def cpu_s(self) -> float | None:
        total = 0.0
        procs = self._procs()
        if not procs:
            return None
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        with contextlib.suppress(psutil.Error):
            t = self.root.cpu_times()
            total += t.children_user + t.children_system  # sessions that already exited
        return total

    def sample(self) -> None:
        self.samples.append((time.monotonic(), self.rss_mb()))

    def peak_mb(self, since: float = 0.0) -> float | None:
        values = [rss for t, rss in self.samples if t >= since]
        return max(values) if values else None

    def wait_idle(self) -> float:
        """Sample until the tree stays under IDLE_CPU_FRACTION for a second; seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < IDLE_TIMEOUT_S:
            before = self.cpu_s()
            self.sample()
            time.sleep(SAMPLE_S)
            self.sample()
            time.sleep(SAMPLE_S)
            after = self.cpu_s()
            if before is None or after is None or after - before < IDLE_CPU_FRACTION:
                break
        return time.monotonic() - t0


def pct(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def round_or_none(value: float | None, digits: int = 2) -> float | None:
    """``value`` rounded; None for no value or an infinite one (not reached in time)."""
    return None if value is None or math.isinf(value) else round(value, digits)


def fmt(value: Any, spec: str = ".1f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[ok]


def terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwind through the finally blocks


def log_problems(log: Path, limit: int = 5) -> list[str]:
    """The first WARNING/ERROR lines of the box's log (it is deleted with the work dir)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    bad = [line for line in lines if " WARNING " in line or " ERROR " in line]
    problems = [f"shutterbox log: {line}" for line in bad[:limit]]
    if len(bad) > limit:
        problems.append(f"shutterbox log: {len(bad) - limit} more warnings/errors")
    return problems


def run_script(main: Callable[[], int]) -> NoReturn:
    """A script's ``if __name__ == "__main__"``: exit with what ``main`` returns; Ctrl-C (or the
    SIGTERM the scripts turn into one) ends with 130 after the cleanup ``main`` does on the way."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
