"""Pieces of ``bench/soak.py``: everything that goes wrong on purpose, and the box's keeper.

- ``BoxKeeper`` owns the ``shutterbox up`` process: SIGKILL and restart, graceful restart with
  new settings, and a watchdog that notices a box that died on its own (a crash, restarted too);
- ``Disk`` puts the box's data folder on a size-limited filesystem (a loop-mounted ext4 image,
  else a tmpfs of that size, both need root) and drives it to the box's reserve with a ballast
  file; without either it restarts the box with ``storage.reserve_mb`` just above the free space
  for the window instead (SIGHUP reloads only the log level);
- ``S3Faults`` wraps moto's WSGI app (no file of tests/fakes is touched): the next write
  requests (PUT/POST under ``events/``) answer 503 SlowDown or 500 InternalError;
- ``Timeline`` runs a planned list of faults on its own thread: kills, uplink slow-downs,
  stalls and blackouts (FaultProxy), an RST mid-body to S3, S3 and Rekognition throttling and
  5xx (``FakeRekognition.fail_next``), disk squeezes and transfer cuts for the cameras (FIN,
  RST, TLS without close-notify, or the whole session dropped mid-file);
- ``RssSampler`` sums RSS over the box's process tree (face and selfie workers included) every
  few seconds, whichever process is the box at the time, and over the processes killed boxes
  left running (``BoxKeeper.leftovers``: a SIGKILLed box's face workers and resource tracker are
  not killed with it).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import psutil
from _common import ProcTree, log
from _sync_helpers import BUCKET
from moto.server import ThreadedMotoServer

from tests.boxproc import BoxProcess

MiB = 1 << 20


# --------------------------------------------------------------------------------------------
# The box process


class BoxKeeper:
    """Starts, kills and restarts the box; one lock serialises every change of the process."""

    def __init__(self, box: BoxProcess, start_timeout: float = 120.0) -> None:
        self.box = box
        self.start_timeout = start_timeout
        self.lock = threading.RLock()
        self.kills = 0
        self.restarts = 0  # starts after the first one, for whatever reason
        self.graceful = 0
        self.crashes: list[str] = []  # the box exited on its own, failed to start or to stop cleanly
        self.pids: list[int] = []
        self.seen: dict[int, float] = {}  # pid -> create time of every process the box ever had
        self._halt = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="box-watchdog", daemon=True)

    def start(self) -> None:
        with self.lock:
            self._start()
        self._watchdog.start()

    def _start(self) -> None:
        for attempt in range(3):
            try:
                self.box.start(timeout=self.start_timeout)
            except (RuntimeError, TimeoutError) as exc:
                self.crashes.append(f"start failed (attempt {attempt + 1}): {str(exc)[-1500:]}")
                with contextlib.suppress(Exception):
                    self.box.stop()
                continue
            assert self.box.proc is not None
            self.pids.append(self.box.proc.pid)
            return
        raise RuntimeError("the box does not start any more")

    def pid(self) -> int | None:
        proc = self.box.proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def remember_children(self) -> None:
        """Note the box's descendants (face workers, the multiprocessing resource tracker)."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.seen.setdefault(child.pid, child.create_time())

    def leftovers(self) -> list[psutil.Process]:
        """Processes the box started that still run although the box that started them is gone."""
        current = self.pid()
        alive = []
        for pid, created in self.seen.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() != created or proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                parents = {p.pid for p in proc.parents()}
                if current is None or current not in parents:
                    alive.append(proc)
        return alive

    def leftover_mb(self) -> float:
        total = 0
        for proc in self.leftovers():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / MiB

    def reap(self) -> int:
        """SIGKILL what the box left behind (by pid, checked against its start time)."""
        gone = self.leftovers()
        for proc in gone:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(gone, timeout=10)
        return len(gone)

    def kill9(self, down_s: float) -> None:
        """SIGKILL at once, stay down ``down_s`` (cameras and guests meet a dead port), start."""
        with self.lock:
            self.remember_children()
            self.box.kill9()
            self.kills += 1
            time.sleep(down_s)
            self._start()
            self.restarts += 1

    def restart(self, **env: str) -> None:
        """SIGTERM (uploads in flight drain), new environment, start."""
        with self.lock:
            self.remember_children()
            code = self.box.stop()
            if code != 0:
                self.crashes.append(f"graceful stop exited with {code}")
            self.box.env.update(env)
            self._start()
            self.restarts += 1
            self.graceful += 1

    def stop(self) -> int | None:
        self._halt.set()
        if self._watchdog.is_alive():
            self._watchdog.join(10)
        with self.lock:
            self.remember_children()
            code = self.box.stop()
        if code not in (0, None):
            self.crashes.append(f"final stop exited with {code}")
        return code

    def _watch(self) -> None:
        while not self._halt.wait(1.0):
            with self.lock:
                proc = self.box.proc
                if proc is None or proc.poll() is None:
                    continue
                tail = "\n".join(self.box.log.splitlines()[-15:])
                self.crashes.append(f"box exited on its own with {proc.returncode}; log tail:\n{tail}")
                log(f"  !! the box exited on its own ({proc.returncode}); restarting it")
                try:
                    self._start()
                    self.restarts += 1
                except RuntimeError:
                    return


# --------------------------------------------------------------------------------------------
# The staging disk


class Disk:
    """The box's data folder on a filesystem of ``size_mb`` (mode ``loop`` or ``tmpfs``), or on
    the work folder's own disk (mode ``reserve``: the squeeze is emulated by the setting)."""

    def __init__(self, work: Path, size_mb: int, want: str = "auto") -> None:
        self.work, self.size_mb, self.want = work, size_mb, want
        self.mount = work / "disk"
        self.image = work / "disk.img"
        self.ballast = self.mount / "ballast"
        self.mode = "reserve"
        self.mounted = False
        self.device = ""  # the loop device, in mode ``loop``
        self.notes: list[str] = []
        self.squeezes = 0
        self.normal_reserve_mb = 0

    @property
    def data(self) -> Path:
        return self.mount / "data"

    def setup(self) -> Path:
        self.mount.mkdir(parents=True, exist_ok=True)
        order = {"auto": ("loop", "tmpfs", "reserve")}.get(self.want, (self.want,))
        for mode in order:
            try:
                getattr(self, f"_mount_{mode}")()
            except (OSError, subprocess.SubprocessError) as exc:
                self.notes.append(f"{mode}: {exc}")
                continue
            self.mode = mode
            break
        else:
            raise RuntimeError(f"no usable disk mode among {order}: {self.notes}")
        self.data.mkdir(parents=True, exist_ok=True)
        return self.data

    def _run(self, *cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def _mount_loop(self) -> None:
        if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None or shutil.which("losetup") is None:
            raise OSError("needs root, mkfs.ext4 and losetup")
        with self.image.open("wb") as handle:
            handle.truncate(self.size_mb * MiB)  # sparse: only what is written takes disk space
        try:
            self._run("mkfs.ext4", "-q", "-F", "-m", "0", str(self.image))
            found = subprocess.run(
                ["losetup", "--find", "--show", str(self.image)],
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
            )
            self.device = found.stdout.strip()
            self._run("mount", self.device, str(self.mount))
        except subprocess.CalledProcessError as exc:
            self._detach()
            self.image.unlink(missing_ok=True)
            raise OSError(exc.stderr.strip() or str(exc)) from exc
        self.mounted = True

    def _detach(self) -> None:
        if self.device:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._run("losetup", "-d", self.device)  # deferred by the kernel while still busy
            self.device = ""

    def _mount_tmpfs(self) -> None:
        if os.geteuid() != 0:
            raise OSError("needs root")
        try:
            self._run("mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.mount))
        except subprocess.CalledProcessError as exc:
            raise OSError(exc.stderr.strip() or str(exc)) from exc
        self.mounted = True

    def _mount_reserve(self) -> None:
        pass

    def free_mb(self) -> int:
        return shutil.disk_usage(self.data).free // MiB

    def squeeze(self, keeper: BoxKeeper, reserve_mb: int, margin_mb: int = 3) -> str:
        """Leave the box ``margin_mb`` above its reserve: a frame or two more, then 452."""
        self.squeezes += 1
        if self.mode == "reserve":
            raised = self.free_mb() + 1024
            keeper.restart(SHUTTERBOX_STORAGE__RESERVE_MB=str(raised))
            return f"box restarted with storage.reserve_mb {raised} (free {self.free_mb()} MB)"
        take = (self.free_mb() - reserve_mb - margin_mb) * MiB
        if take > 0:
            fd = os.open(self.ballast, os.O_CREAT | os.O_WRONLY, 0o600)
            try:
                os.posix_fallocate(fd, 0, take)
            finally:
                os.close(fd)
        return f"ballast {take // MiB} MB: {self.free_mb()} MB free, reserve {reserve_mb} MB"

    def release(self, keeper: BoxKeeper, reserve_mb: int) -> str:
        if self.mode == "reserve":
            keeper.restart(SHUTTERBOX_STORAGE__RESERVE_MB=str(reserve_mb))
            return f"box restarted with storage.reserve_mb {reserve_mb}"
        self.ballast.unlink(missing_ok=True)
        return f"ballast removed: {self.free_mb()} MB free"

    def teardown(self) -> None:
        if self.mounted:
            for args in (("umount", str(self.mount)), ("umount", "-l", str(self.mount))):
                try:
                    self._run(*args)
                    break
                except (OSError, subprocess.SubprocessError) as exc:
                    self.notes.append(f"{' '.join(args)}: {exc}")
                    time.sleep(1.0)
            self.mounted = False
        self._detach()
        self.image.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# S3 errors: a WSGI layer in front of moto


class S3Faults:
    """The next write requests to the bucket's ``events/`` keys answer an S3 error instead of
    reaching moto. Reads are never touched (the fake Rekognition reads proxies from moto)."""

    BODY = (
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        "<Message>{message}</Message><RequestId>SOAK{n:08d}</RequestId></Error>"
    )
    ERRORS: ClassVar[dict[str, tuple[str, str]]] = {
        "SlowDown": ("503 Slow Down", "Please reduce your request rate."),
        "InternalError": ("500 Internal Server Error", "We encountered an internal error. Please try again."),
    }

    def __init__(self, moto: ThreadedMotoServer) -> None:
        server = moto._server
        assert server is not None, "moto is not started"
        self.app: Callable[..., Iterable[bytes]] = server.app
        server.app = self
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self.injected: dict[str, int] = {}

    def fail_next(self, code: str, times: int) -> None:
        with self._lock:
            self._pending += [code] * times

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        code = None
        if environ.get("REQUEST_METHOD") in ("PUT", "POST") and str(environ.get("PATH_INFO", "")).startswith(
            f"/{BUCKET}/events/"
        ):
            with self._lock:
                code = self._pending.pop(0) if self._pending else None
                if code is not None:
                    self.injected[code] = self.injected.get(code, 0) + 1
        if code is None:
            return self.app(environ, start_response)
        stream = environ["wsgi.input"]  # drain the body, so the keep-alive connection stays in step
        if environ.get("wsgi.input_terminated"):
            while stream.read(1 << 20):
                pass
        else:
            remaining = int(environ.get("CONTENT_LENGTH") or 0)
            while remaining > 0 and (chunk := stream.read(min(remaining, 1 << 20))):
                remaining -= len(chunk)
        status, message = self.ERRORS[code]
        body = self.BODY.format(code=code, message=message, n=sum(self.injected.values())).encode()
        start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]


# --------------------------------------------------------------------------------------------
# The fault timeline


@dataclass(order=True, frozen=True)
class Action:
    at: float  # seconds after the first shutter
    kind: str
    arg: str = ""


@dataclass(frozen=True)
class FaultPlan:
    """How often each fault comes, in seconds of shooting (0: never)."""

    kill_every: float
    blackout_every: float
    blackout_s: float
    stall_every: float
    stall_s: float
    slow_every: float
    slow_s: float
    slow_mbit: float
    s3_every: float
    rekognition_every: float
    disk_every: float
    disk_s: float
    cut_every: float


def _times(
    rng: random.Random, duration: float, every: float, *, least: int = 1, lo: float = 0.08, hi: float = 0.9
) -> list[float]:
    """``duration / every`` times, at least ``least`` (none when ``every`` is 0), spread over
    [lo, hi] of the run, each jittered inside its own slot."""
    if every <= 0:
        return []
    count = max(least, round(duration / every))
    span = (hi - lo) * duration
    return sorted(lo * duration + (i + rng.uniform(0.15, 0.85)) * span / count for i in range(count))


def _variants(times: list[float], kind: str, variants: tuple[str, ...]) -> list[Action]:
    return [Action(t, kind, variants[i % len(variants)]) for i, t in enumerate(times)]


def plan(p: FaultPlan, duration: float, seed: int) -> list[Action]:
    """The faults of a run, by kind; every kind with several variants gets each of them once."""
    rng = random.Random(seed)
    actions = [
        Action(t, "kill", f"{rng.uniform(1.0, 4.0):.1f}")
        for t in _times(rng, duration, p.kill_every, lo=0.15, hi=0.85)
    ]
    actions += _variants(_times(rng, duration, p.blackout_every), "blackout", ("reset", "stall", "refuse"))
    actions += [Action(t, "stall") for t in _times(rng, duration, p.stall_every)]
    for t in _times(rng, duration, p.slow_every):
        actions += [Action(t, "slow"), Action(t + p.slow_s, "unslow")]
    actions += _variants(
        _times(rng, duration, p.s3_every, least=3), "s3", ("SlowDown", "rst", "InternalError")
    )
    actions += _variants(
        _times(rng, duration, p.rekognition_every, least=3), "rekognition", ("throttle", "search", "5xx")
    )
    for t in _times(rng, duration, p.disk_every, lo=0.2, hi=0.7):
        actions += [Action(t, "squeeze"), Action(t + p.disk_s, "release")]
    if p.cut_every > 0:
        count = max(3, round(duration / p.cut_every))
        actions += _variants(
            [(i + 0.5) * duration / count for i in range(count)], "cut", ("rst", "tls", "fin", "drop")
        )
    return sorted(actions)


@dataclass
class Done:
    at: float  # seconds after the first shutter, when it was applied
    kind: str
    arg: str
    note: str


class Timeline(threading.Thread):
    """Applies ``actions`` at their times (``t0`` is monotonic), one handler per kind. Kinds in
    ``background`` (a kill and its restart, which takes a while) run on a thread of their own, so
    the faults after them keep their times and may overlap them."""

    def __init__(
        self,
        actions: list[Action],
        t0: float,
        handlers: dict[str, Callable[[str], str]],
        halt: threading.Event,
        background: frozenset[str] = frozenset({"kill"}),
    ) -> None:
        super().__init__(name="fault-timeline", daemon=True)
        self.actions, self.t0, self.handlers, self.halt = actions, t0, handlers, halt
        self.background = background
        self.done: list[Done] = []
        self.errors: list[str] = []
        self._workers: list[threading.Thread] = []

    def run(self) -> None:
        for action in self.actions:
            if self.halt.wait(max(0.0, self.t0 + action.at - time.monotonic())):
                return
            if action.kind in self.background:
                worker = threading.Thread(target=self._apply, args=(action,), name=f"fault-{action.kind}")
                self._workers.append(worker)
                worker.start()
            else:
                self._apply(action)

    def _apply(self, action: Action) -> None:
        started = time.monotonic() - self.t0
        try:
            note = self.handlers[action.kind](action.arg)
        except Exception as exc:  # a failed injection is reported, the run goes on
            self.errors.append(f"{action.kind} {action.arg}: {exc!r}\n{traceback.format_exc(limit=3)}")
            return
        self.done.append(Done(started, action.kind, action.arg, note))
        log(f"  t={started:5.0f}s fault {action.kind} {action.arg}: {note}")

    def finish(self, timeout: float) -> None:
        """Wait for every action (the last ones are due by the end of the shooting), then stop."""
        self.join(timeout)
        self.halt.set()
        self.join(10)
        for worker in self._workers:
            worker.join(timeout)

    def count(self, kind: str, arg: str | None = None) -> int:
        return sum(d.kind == kind and (arg is None or d.arg == arg) for d in self.done)


# --------------------------------------------------------------------------------------------
# Memory


class RssSampler(threading.Thread):
    """RSS of the box's process tree every ``period`` s: (wall clock, pid, MB)."""

    def __init__(self, keeper: BoxKeeper, period: float = 2.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.keeper, self.period = keeper, period
        self.samples: list[tuple[float, int, float]] = []  # (wall clock, box pid, MB of its tree)
        self.left: list[tuple[float, float]] = []  # (wall clock, MB of processes dead boxes left)
        self._halt = threading.Event()
        self._trees: dict[int, ProcTree] = {}

    def run(self) -> None:
        while not self._halt.wait(self.period):
            pid = self.keeper.pid()
            if pid is None:
                continue
            self.keeper.remember_children()
            with contextlib.suppress(Exception):  # the box may be gone between the two calls
                tree = self._trees.get(pid) or self._trees.setdefault(pid, ProcTree(pid))
                self.samples.append((time.time(), pid, tree.rss_mb()))
                self.left.append((time.time(), self.keeper.leftover_mb()))

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(10)

    def peak(self) -> float | None:
        return max((mb for _, _, mb in self.samples), default=None)

    def peak_with_leftovers(self) -> float | None:
        """The box's tree plus what killed boxes left running, at the same sample."""
        both = [tree + left for (_, _, tree), (_, left) in zip(self.samples, self.left, strict=False)]
        return max(both, default=None)

    def runs(self) -> list[tuple[float, float]]:
        """(minutes sampled, peak MB) of each box process, in order."""
        spans: dict[int, list[float]] = {}
        for t, pid, mb in self.samples:
            first, _last, peak = spans.get(pid, [t, t, mb])
            spans[pid] = [first, t, max(peak, mb)]
        return [((last - first) / 60, peak) for first, last, peak in spans.values()]
