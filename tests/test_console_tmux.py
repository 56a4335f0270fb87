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
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.boxproc import SHUTTERBOX, Box, make_box, store
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
def running_box(tmp_path: Path) -> Iterator[Box]:
    box = make_box(tmp_path / "data").start()
    yield box
    assert box.stop() == 0


def test_console_in_a_real_terminal(running_box: Box, tmux: Tmux, tmp_path: Path) -> None:
    box = running_box
    event = box.new_event("tmux event")
    user, password = box.new_key(event, camera="Canon R5 tmux")
    exit_file = tmp_path / "exit-code"
    command = shlex.join(console_command(box.data))
    tmux.start(["sh", "-c", f"{command}; echo $? > {shlex.quote(str(exit_file))}"])

    screen = tmux.wait_for(r"1 Dashboard", r"Photos\s+0\b", r"s Pause/resume sync", r"q Quit")
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
