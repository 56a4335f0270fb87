"""SIGTERM while a camera is mid-upload: the upload finishes and gets its 226 (within
ftp.drain_seconds), a camera that tries to log in meanwhile gets 421, and the frame is queued.
An upload that outlasts the drain is cut, never acknowledged, and kept for resume."""

from __future__ import annotations

import ftplib
import io
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.boxproc import BoxProcess, make_box
from tests.conftest import jpeg_bytes


class SlowReader(io.RawIOBase):
    """A file that yields ``chunk`` bytes every ``pause`` seconds (a camera on weak WiFi)."""

    def __init__(self, data: bytes, chunk: int, pause: float) -> None:
        self.data, self.chunk, self.pause, self.sent = data, chunk, pause, 0
        self.started = threading.Event()

    def read(self, size: int = -1) -> bytes:
        if self.sent:
            time.sleep(self.pause)
        self.started.set()
        piece = self.data[self.sent : self.sent + self.chunk]
        self.sent += len(piece)
        return piece


def upload_in_background(
    box: BoxProcess, user: str, password: str, name: str, reader: SlowReader
) -> tuple[dict[str, str], threading.Thread]:
    outcome: dict[str, str] = {}

    def run() -> None:
        try:
            with box.ftp(user, password) as ftp:
                outcome["reply"] = ftp.storbinary(f"STOR {name}", reader, blocksize=reader.chunk)
        except (ftplib.Error, OSError, EOFError) as exc:
            outcome["error"] = repr(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return outcome, thread


def login_reply(box: BoxProcess, user: str, password: str) -> str:
    client = ftplib.FTP(timeout=20)
    try:
        client.connect("127.0.0.1", box.ftp_port)
        return client.login(user, password)
    except ftplib.Error as exc:
        return str(exc)
    finally:
        client.close()


@pytest.fixture
def drained_box(tmp_path: Path) -> Iterator[BoxProcess]:
    box = make_box(tmp_path / "data", ftp__drain_seconds="8", faces__enabled="false")
    box.start(timeout=90)
    yield box
    box.stop()


def test_sigterm_lets_an_upload_in_flight_finish(drained_box: BoxProcess) -> None:
    box = drained_box
    event = box.new_event()
    user, password = box.new_key(event)
    frame = jpeg_bytes(1600, 1200, seed=77)
    reader = SlowReader(frame, chunk=len(frame) // 20 + 1, pause=0.15)  # ~3 s in all
    outcome, thread = upload_in_background(box, user, password, "IMG_0001.JPG", reader)
    assert reader.started.wait(10)
    time.sleep(0.5)
    assert box.proc is not None
    box.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert login_reply(box, user, password).startswith("421"), "no new work while draining"
    thread.join(30)
    assert outcome.get("reply", "").startswith("226"), outcome
    assert box.proc.wait(30) == 0
    box.start(timeout=90)
    photos = box.photos(event)
    assert [p["original_name"] for p in photos] == ["IMG_0001.JPG"] and photos[0]["size"] == len(frame)


def test_an_upload_longer_than_the_drain_is_cut_and_kept(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", ftp__drain_seconds="1", faces__enabled="false").start(timeout=90)
    try:
        event = box.new_event()
        user, password = box.new_key(event)
        frame = jpeg_bytes(1600, 1200, seed=78)
        reader = SlowReader(frame, chunk=len(frame) // 50 + 1, pause=0.2)  # ~10 s
        outcome, thread = upload_in_background(box, user, password, "IMG_0002.JPG", reader)
        assert reader.started.wait(10)
        time.sleep(0.5)
        assert box.proc is not None
        started = time.monotonic()
        box.proc.send_signal(signal.SIGTERM)
        assert box.proc.wait(30) == 0
        assert time.monotonic() - started < 8, "the drain is bounded"
        thread.join(30)
        assert "reply" not in outcome, "never acknowledged"
        box.start(timeout=90)
        assert box.photos(event) == []
        kept = list((box.data / "ftp" / user).rglob("IMG_0002.JPG"))
        assert kept and 0 < kept[0].stat().st_size < len(frame), "the partial is kept for REST/APPE"
    finally:
        box.stop()
