"""Hot folder: files dropped by tethering software or a card reader are ingested like uploads,
once each, only after they stopped growing; broken ones are rejected; restarts do not re-read."""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.boxproc import SHUTTERBOX, BoxProcess, make_box
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.e2e

T = TypeVar("T")
SETTLE = 0.5
EXIT_CONFIG = 4


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wait_for(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _photos_named(box: BoxProcess, event: str, *names: str) -> list[dict[str, Any]] | None:
    photos = box.photos(event)
    return photos if {p["original_name"] for p in photos} >= set(names) else None


def _all_photos(box: BoxProcess, event: str, count: int) -> list[dict[str, Any]] | None:
    photos = box.photos(event)
    return photos if len(photos) >= count else None


def _with_comment(data: bytes, text: str) -> bytes:
    """The same JPEG with a COM segment after SOI: still valid, different bytes."""
    body = text.encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + data[2:]


def _stop(box: BoxProcess, deadline: float = 20.0) -> int | None:
    """SIGTERM and wait; a box that has not exited by the deadline is killed and None returned."""
    assert box.proc is not None
    box.proc.send_signal(signal.SIGTERM)
    try:
        return box.proc.wait(deadline)
    except subprocess.TimeoutExpired:
        box.kill9()
        return None


def _start_with_hotfolder(box: BoxProcess, hot: Path) -> str:
    """The hot folder's event must exist before the box watches for it: create it on a first
    start, then restart with the hot folder configured."""
    box.start()
    event = box.new_event("tethered")
    assert box.stop() == 0
    box.env.update(
        {
            "SHUTTERBOX_HOTFOLDER__PATH": str(hot),
            "SHUTTERBOX_HOTFOLDER__EVENT": event,
            "SHUTTERBOX_HOTFOLDER__SETTLE_SECONDS": str(SETTLE),
        }
    )
    box.start()
    return event


def test_slowly_written_file_is_ingested_once_after_it_stops_growing(
    fresh_box: BoxProcess, tmp_path: Path
) -> None:
    hot = tmp_path / "hot"
    hot.mkdir()
    event = _start_with_hotfolder(fresh_box, hot)
    data = jpeg_bytes(1600, 1200, seed=300)
    chunks = 14
    size = -(-len(data) // chunks)

    with (hot / "IMG_0300.JPG").open("wb") as handle:
        for start in range(0, len(data), size):
            handle.write(data[start : start + size])
            handle.flush()
            time.sleep(0.15)  # ~2 s in all; each pause well under the settle time

    photos = _wait_for(lambda: _photos_named(fresh_box, event, "IMG_0300.JPG"), "the hot-folder photo")
    assert len(photos) == 1
    photo = photos[0]
    assert photo["sha256"] == _sha(data)
    assert photo["size"] == len(data)
    assert photo["camera"] == "hotfolder"
    assert photo["function"] == "main"
    # Taking the file while it grew would have left a truncated-JPEG rejection behind.
    assert [r for r in fresh_box.rejections() if r["original_name"] == "IMG_0300.JPG"] == []
    assert (hot / "IMG_0300.JPG").read_bytes() == data  # the source is left where it is
    assert _stop(fresh_box) == 0


def test_truncated_file_is_rejected_not_queued(fresh_box: BoxProcess, tmp_path: Path) -> None:
    hot = tmp_path / "hot"
    hot.mkdir()
    event = _start_with_hotfolder(fresh_box, hot)
    data = jpeg_bytes(seed=301)
    (hot / "CUT_0301.JPG").write_bytes(data[: len(data) // 2])
    (hot / "OK_0302.JPG").write_bytes(jpeg_bytes(seed=302))  # a good neighbour, as a marker

    rejected = _wait_for(
        lambda: [r for r in fresh_box.rejections() if r["original_name"] == "CUT_0301.JPG"],
        "the rejection of the truncated file",
    )
    _wait_for(lambda: _photos_named(fresh_box, event, "OK_0302.JPG"), "the good file")
    assert len(rejected) == 1
    assert rejected[0]["event"] == event
    assert rejected[0]["size"] == len(data) // 2
    assert "truncated" in rejected[0]["reason"]
    assert [p["original_name"] for p in fresh_box.photos(event)] == ["OK_0302.JPG"]
    assert _stop(fresh_box) == 0


def test_files_present_before_start_are_ingested_once(fresh_box: BoxProcess, tmp_path: Path) -> None:
    hot = tmp_path / "hot"
    (hot / "DCIM" / "100CANON").mkdir(parents=True)
    early = {
        "EARLY_1.JPG": jpeg_bytes(seed=303),
        "DCIM/100CANON/EARLY_2.JPG": jpeg_bytes(seed=304),
    }
    for name, data in early.items():
        (hot / name).write_bytes(data)

    event = _start_with_hotfolder(fresh_box, hot)
    photos = _wait_for(
        lambda: _photos_named(fresh_box, event, "EARLY_1.JPG", "EARLY_2.JPG"), "files from before"
    )
    first = {p["original_name"]: p for p in photos}
    assert {name: p["sha256"] for name, p in first.items()} == {
        Path(name).name: _sha(data) for name, data in early.items()
    }
    assert fresh_box.log.count("queued photo") == 2

    assert _stop(fresh_box) == 0
    log_before_restart = len(fresh_box.log)
    fresh_box.start()
    # A file dropped after the restart is a sync point: the files found at start were queued
    # for the worker before it, so they have been looked at by the time it lands.
    late = jpeg_bytes(seed=305)
    (hot / "LATE_3.JPG").write_bytes(late)
    photos = _wait_for(
        lambda: _photos_named(fresh_box, event, "LATE_3.JPG"), "the file dropped after restart"
    )

    assert len(photos) == 3
    again = {p["original_name"]: p for p in photos}
    for name in ("EARLY_1.JPG", "EARLY_2.JPG"):
        assert again[name]["id"] == first[name]["id"]
        assert again[name]["received_at"] == first[name]["received_at"]
    after_restart = fresh_box.log[log_before_restart:]
    assert "duplicate of" not in after_restart, after_restart
    assert "EARLY_" not in after_restart, after_restart
    assert after_restart.count("queued photo") == 1
    assert _stop(fresh_box) == 0


def test_stop_while_the_hot_folder_is_busy_exits_cleanly(fresh_box: BoxProcess, tmp_path: Path) -> None:
    """SIGTERM while the worker is landing a batch: the box must exit 0 promptly, and what it had
    not taken yet is taken at the next start, once."""
    hot = tmp_path / "hot"
    hot.mkdir()
    event = _start_with_hotfolder(fresh_box, hot)
    base = jpeg_bytes(320, 240, seed=310)
    frames = {f"B_{i:03d}.JPG": _with_comment(base, f"frame {i}") for i in range(200)}
    for name, data in frames.items():
        (hot / name).write_bytes(data)

    _wait_for(lambda: "queued photo" in fresh_box.log, "the batch to start landing", timeout=30)
    code = _stop(fresh_box)
    stop_log = fresh_box.log

    fresh_box.start()
    photos = _wait_for(
        lambda: _all_photos(fresh_box, event, len(frames)), "the rest of the batch", timeout=60
    )
    assert sorted(p["sha256"] for p in photos) == sorted(_sha(d) for d in frames.values())
    assert [r for r in fresh_box.rejections() if r["original_name"].startswith("B_")] == []
    second = _stop(fresh_box)
    assert code == 0, f"box did not exit cleanly on SIGTERM (None: hung, killed):\n{stop_log[-2000:]}"
    assert second == 0


def test_hot_folder_for_an_unknown_event_is_a_clear_config_error(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", hotfolder__path=str(tmp_path / "hot"), hotfolder__event="zzzzzzzz")
    result = subprocess.run(
        [SHUTTERBOX, "up", "--data", str(box.data)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **box.env},
        check=False,
    )
    assert result.returncode == EXIT_CONFIG, result.stderr[-2000:]
    assert "zzzzzzzz" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_wants_an_event_with_a_hot_folder_path(tmp_path: Path) -> None:
    # `up` refuses hotfolder.path without hotfolder.event (exit 4); check-config must agree.
    box = make_box(tmp_path / "data", hotfolder__path=str(tmp_path / "hot"))
    result = box.run_cli("check-config", "--json")
    assert result.returncode == EXIT_CONFIG, result.stdout[-500:]
    assert "hotfolder.event" in result.stderr
