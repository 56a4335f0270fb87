"""The box speaks systemd's notify protocol to a real datagram socket: READY=1 once every
listener is bound, STATUS= lines, WATCHDOG=1 pings while every part beats, no pings while one
part (here the selfie process, frozen with SIGSTOP) is stalled, and pings again once it is back.
Also SIGHUP: RELOADING=1 then READY=1, and a changed log level applied without a restart."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.boxproc import BoxProcess, make_box


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._seen = 0

    def drain(self, seconds: float) -> list[str]:
        """Every message received within ``seconds`` (also kept in ``messages``)."""
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            got.append(data.decode())
            self.messages.append((time.monotonic(), got[-1]))
        return got

    def wait_for(self, needle: str, timeout: float) -> str:
        """The first message holding ``needle`` that no earlier wait_for returned or passed."""
        deadline = time.monotonic() + timeout
        while True:
            while self._seen < len(self.messages):
                message = self.messages[self._seen][1]
                self._seen += 1
                if needle in message:
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} within {timeout} s; got {self.messages[-5:]}")
            self.drain(0.2)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def test_ready_status_and_watchdog_follow_the_parts_heartbeats(tmp_path: Path, notify: NotifySocket) -> None:
    box: BoxProcess = make_box(tmp_path / "data", heartbeat_max_age="4")
    box.env.update({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"})  # ping every 0.5 s
    box.start(timeout=90)
    try:
        ready = notify.wait_for("READY=1", 10)
        assert "STATUS=" in ready and "photos" in ready
        assert (box.data / "run" / "box.json").exists(), "READY only once the listeners are bound"
        notify.drain(3)
        pings = [m for _, m in notify.messages if "WATCHDOG=1" in m]
        assert len(pings) >= 4, pings
        assert all("STATUS=" in p for p in pings)
        assert box.status()["stalled"] == []

        selfie = box.status()["faces"]["selfie_pid"]
        os.kill(selfie, signal.SIGSTOP)
        try:
            stalled = notify.wait_for("STATUS=stalled", 15)
            assert "faces" in stalled
            quiet = notify.drain(3)
            assert not [m for m in quiet if "WATCHDOG=1" in m], "no pings while a part is stalled"
            assert box.status()["stalled"] == ["faces"]
        finally:
            os.kill(selfie, signal.SIGCONT)
        notify.wait_for("WATCHDOG=1", 15)
        assert box.status()["stalled"] == []
    finally:
        box.stop()
    assert "STOPPING=1" in " ".join(m for _, m in notify.messages) + " ".join(notify.drain(1))


def test_sighup_reloads_the_log_level(tmp_path: Path, notify: NotifySocket) -> None:
    box: BoxProcess = make_box(tmp_path / "data", faces__enabled="false")
    box.env["NOTIFY_SOCKET"] = str(notify.path)
    box.start(timeout=90)
    try:
        notify.wait_for("READY=1", 10)
        (box.data / "shutterbox.toml").write_text('log_level = "DEBUG"\n[storage]\nquarantine_days = 3\n')
        assert box.proc is not None
        box.proc.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", 10)
        assert "MONOTONIC_USEC=" in reloading
        notify.wait_for("READY=1", 10)
        time.sleep(0.5)
        assert "log level INFO -> DEBUG" in box.log
        assert "[storage] changed; restart the box to apply" in box.log
        (box.data / "shutterbox.toml").write_text("log_level = 'LOUD'\n")
        box.proc.send_signal(signal.SIGHUP)
        notify.wait_for("READY=1", 10)
        time.sleep(0.5)
        assert "reload refused, settings unchanged" in box.log
        assert box.status()["stalled"] == []
    finally:
        box.stop()
