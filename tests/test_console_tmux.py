"""The console in a real terminal: tmux runs it at 80x24 against a real box, the test types keys
with ``send-keys`` and reads the screen with ``capture-pane``, as an operator over SSH would."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.boxproc import SHUTTERBOX, BoxProcess, make_box, store
from tests.conftest import jpeg_bytes

TMUX = shutil.which("tmux")
ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(TMUX is None, reason="tmux is not installed")]


class Tmux:
    """One private tmux server (its own socket), holding one 80x24 session."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert TMUX is not None
        return subprocess.run(
            [TMUX, "-L", self.name, *args],
            capture_output=True,
            text=True,
            timeout=20,
            env=self.env,
            check=False,
        )

    def start(self, command: list[str]) -> None:
        result = self.run(
            "new-session", "-d", "-s", "console", "-x", "80", "-y", "24", "-c", str(ROOT), shlex.join(command)
        )
        assert result.returncode == 0, result.stderr

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "console").stdout

    def keys(self, *keys: str) -> None:
        assert self.run("send-keys", "-t", "console", *keys).returncode == 0

    def wait_for(self, *patterns: str, seconds: float = 30) -> str:
        deadline = time.monotonic() + seconds
        while True:
            screen = self.screen()
            if all(re.search(p, screen) for p in patterns):
                return screen
            assert time.monotonic() < deadline, f"timed out waiting for {patterns}:\n{screen}"
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.run("has-session", "-t", "console").returncode == 0

    def kill(self) -> None:
        self.run("kill-server")


def console_command(data: Path) -> list[str]:
    """``shutterbox console`` once the CLI has it, else ``python -m tui`` (the same ``tui.app.run``)."""
    probe = subprocess.run([SHUTTERBOX, "console", "--help"], capture_output=True, timeout=60, check=False)
    if probe.returncode == 0:
        return [SHUTTERBOX, "console", "--data", str(data)]
    return [sys.executable, "-m", "tui", "--data", str(data)]


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    terminal = Tmux(f"shutterbox-console-{os.getpid()}-{tmp_path.name}")
    yield terminal
    terminal.kill()


@pytest.fixture
def running_box(tmp_path: Path) -> Iterator[BoxProcess]:
    box = make_box(tmp_path / "data").start()
    yield box
    assert box.stop() == 0


def test_console_in_a_real_terminal(running_box: BoxProcess, tmux: Tmux, tmp_path: Path) -> None:
    box = running_box
    event = box.new_event("tmux event")
    user, password = box.new_key(event, camera="Canon R5 tmux")
    exit_file = tmp_path / "exit-code"
    command = shlex.join(console_command(box.data))
    tmux.start(["sh", "-c", f"{command}; echo $? > {shlex.quote(str(exit_file))}"])

    screen = tmux.wait_for(r"1 Dashboard", r"Photos\s+0\b", r"Cloud sync off", r"\? Help", r"q Quit")
    assert "Pause/resume sync" not in screen, "nothing to pause without a cloud"
    assert len(screen.splitlines()) <= 24
    assert all(len(line) <= 80 for line in screen.splitlines())
    assert "box not reachable" not in screen

    with box.ftp(user, password) as ftp:
        assert store(ftp, "IMG_0001.JPG", jpeg_bytes(seed=601)).startswith("226")
    tmux.wait_for(r"Photos\s+1\b", r"Frames/min\s+1\.0")

    tmux.keys("2")
    screen = tmux.wait_for(r"Camera\s+Event/function\s+Live\s+Last frame", r"Canon R5 tmux")
    row = next(line for line in screen.splitlines() if "Canon R5 tmux" in line)
    assert re.search(rf"{event}/main\s+○ 0\s+\d+s ago\s+1\s+1\s+0", row), row

    tmux.keys("4")
    tmux.wait_for(r"Keys of all events", re.escape(user))

    tmux.keys("q")
    deadline = time.monotonic() + 20
    while tmux.alive():
        assert time.monotonic() < deadline, f"q did not quit:\n{tmux.screen()}"
        time.sleep(0.2)
    assert exit_file.read_text().strip() == "0"


# --- every screen at 80x24, compared with reviewed text snapshots

SNAPSHOTS = (
    ROOT / "tests" / "console-80x24-snapshots"
)  # not in __snapshots__: syrupy fails a run on files it does not own
SPARK = re.compile(r"(?<=│ )( *)([▁▂▃▄▅▆▇█]+)(?= │)")
BOX_ROW = re.compile(r"│ (Disk free|Full in|CPU temp|Load)\b[^│]*│$", re.MULTILINE)


def normalise(screen: str, names: dict[str, str]) -> str:
    """The screen with what changes from run to run masked at the same width: event codes,
    ports, sparklines, the box's own figures (disk, CPU, load), uptime and times of day."""
    for real, fake in names.items():
        screen = screen.replace(real, fake)
        for cut in range(1, len(real)):  # a code half hidden behind a form's border
            screen = re.sub(rf"(?m)^ {real[:cut]}(?=[╭│╰])", f" {fake[:cut]}", screen)
    screen = re.sub(r"(FTP port |127\.0\.0\.1:)(\d+)", lambda m: m[1] + "#" * len(m[2]), screen)
    screen = SPARK.sub(lambda m: m[1] + " " * len(m[2]), screen)
    screen = BOX_ROW.sub(lambda m: f"│ {m[1]} ".ljust(len(m[0]) - 1, "·") + "│", screen)
    screen = re.sub(r"\bup \d+[mhd]( \d+[mhs])?", "up #", screen)
    screen = re.sub(r"\b\d\d-\d\d \d\d:\d\d\b", "MM-DD hh:mm", screen)
    screen = re.sub(r"\b(just now|\d+ min ago)", "just now", screen)
    lines = [line.rstrip() for line in screen.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def snapshot_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BoxProcess, dict[str, str]]]:
    """One box for every snapshot: the demo event, one wedding with two functions and a camera."""
    box = make_box(tmp_path_factory.mktemp("console-80x24") / "data").start()
    try:
        demo = next(e["code"] for e in box.cli("event", "list") if e.get("demo"))
        wedding = box.cli(
            "event", "create", "Smith wedding", "--function", "ceremony", "--function", "reception"
        )["code"]
        box.new_key(wedding, camera="Canon R5 #1", function="ceremony")
        yield box, {demo: "demo2345", wedding: "abcd2345"}
    finally:
        assert box.stop() == 0


@pytest.fixture(scope="module")
def console(
    snapshot_box: tuple[BoxProcess, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tmux]:
    """One console in one 80x24 terminal, visited screen by screen."""
    box, _ = snapshot_box
    terminal = Tmux(f"shutterbox-console-{os.getpid()}-{tmp_path_factory.mktemp('tmux').name}")
    terminal.start(console_command(box.data))
    terminal.wait_for(r"Cloud sync off", r"FTP port \d+")
    yield terminal
    terminal.kill()


def _go(*keys: str) -> Callable[[Tmux], None]:
    def go(tmux: Tmux) -> None:
        tmux.keys("Escape")  # out of any form or help first
        time.sleep(0.3)
        for key in keys:
            tmux.keys("-l", key)  # literally: "?" and "Nikon Z9" are typed, not key names
            time.sleep(0.3)

    return go


# (snapshot name, keys from any screen, what shows once it is drawn)
SCREENS: list[tuple[str, Callable[[Tmux], None], tuple[str, ...]]] = [
    ("dashboard", _go("1"), (r"Cloud sync off", r"held for a cloud", r"FTP port")),
    ("cameras", _go("2"), (r"Canon R5 #1", r"user \w+-canon-r5-1")),
    ("events", _go("3"), (r"Smith wedding", r"Enter: the event's keys", r"just now|min ago")),
    ("keys", _go("4"), (r"Keys of all events: 2 active", r"canon-r5-1")),
    ("dead-letters", _go("5"), (r"No dead letters",)),
    ("guest-qr", _go("6"), (r"event \w{8} · no PIN", r"card\.pdf")),
    ("logs-warnings", _go("7", "w"), (r"w Warnings only",)),
    ("help", _go("1", "?"), (r"Keys of every screen", r"First start")),
    ("checklist", _go("c"), (r"Event and functions created", r"shutterbox doctor: \d+ of \d+")),
    ("new-event-form", _go("3", "n"), (r"New event", r"none \(proxies only\)")),
    ("add-camera-form", _go("2", "a", "Nikon Z9"), (r"Add a camera", r"\(●\) Nikon", r"reception|ceremony")),
    ("event-look-form", _go("3", "e"), (r"Guest pages of", r"\(●\) search on", r"Save")),
]


@pytest.mark.parametrize(("name", "go", "marks"), SCREENS, ids=[name for name, _, _ in SCREENS])
def test_screen_at_80x24_matches_its_reviewed_snapshot(
    console: Tmux,
    snapshot_box: tuple[BoxProcess, dict[str, str]],
    request: pytest.FixtureRequest,
    name: str,
    go: Callable[[Tmux], None],
    marks: tuple[str, ...],
) -> None:
    go(console)
    console.wait_for(*marks)
    time.sleep(2.5)  # a notification (the log filter's) is gone, the next poll has redrawn
    screen = console.wait_for(*marks)
    lines = screen.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), screen
    shown = normalise(screen, snapshot_box[1])
    if name == "checklist":  # the doctor's findings depend on the machine (its clock, its network)
        head, _, _ = shown.partition(" shutterbox doctor:")
        shown = head + " shutterbox doctor: (this machine's findings)\n"
    path = SNAPSHOTS / f"{name}.txt"
    update = bool(request.config.getoption("--snapshot-update"))
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(shown)
        if not update:
            pytest.fail(f"wrote {path.relative_to(ROOT)}: review it, then run again")
    assert shown == path.read_text(), f"{name} at 80x24 changed:\n{shown}"
