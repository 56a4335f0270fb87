"""What venue WiFi does to an upload: FIN, RST, ABOR, a dropped control connection, and a box
killed mid-stream. A frame the camera was told is delivered (226) is never lost; a truncated
frame is never queued; a resume produces a byte-identical photo."""

from __future__ import annotations

import ftplib
import hashlib
import random
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from tests.boxproc import BoxProcess, store
from tests.conftest import jpeg_bytes


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def half_upload(ftp: ftplib.FTP, name: str, data: bytes, *, how: str) -> None:
    """Send the first half of ``data`` then end the data connection as ``how`` says."""
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd(f"STOR {name}")
    conn.sendall(data[: len(data) // 2])
    if how == "rst":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def wait_for_rejection(box: BoxProcess, name: str, count: int = 1) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = [r for r in box.rejections() if r["original_name"] == name]
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"no rejection recorded for {name}")


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_truncated_upload_is_not_acknowledged_nor_queued(box: BoxProcess, how: str) -> None:
    user, password = box.new_key(camera=f"cut-{how}")
    frame = jpeg_bytes(1600, 1200, seed=100)
    with box.ftp(user, password) as ftp:
        half_upload(ftp, "IMG_0001.JPG", frame, how=how)
        with pytest.raises((ftplib.error_temp, ftplib.error_perm)) as failed:
            ftp.voidresp()
        assert not str(failed.value).startswith("226")
        assert str(failed.value)[:3] in {"451", "426"}
    assert not [p for p in box.photos() if p["username"] == user]
    [rejection] = [r for r in wait_for_rejection(box, "IMG_0001.JPG") if r["username"] == user]
    if how == "fin":
        assert rejection["size"] == len(frame) // 2
    # an RST may discard bytes still in flight: whatever arrived is kept for the operator
    if rejection["size"]:
        assert Path(str(rejection["quarantine_path"])).exists()


@pytest.mark.parametrize("verb", ["REST", "APPE"])
def test_resume_after_a_cut_gives_a_byte_identical_photo(box: BoxProcess, verb: str) -> None:
    user, password = box.new_key(camera=f"resume-{verb}")
    frame = jpeg_bytes(2000, 1500, seed=101)
    with box.ftp(user, password) as ftp:
        half_upload(ftp, "DSC_0001.JPG", frame, how="fin")
        with pytest.raises(ftplib.error_temp):
            ftp.voidresp()
        offset = ftp.size("DSC_0001.JPG")
        assert offset == len(frame) // 2, "the partial answers SIZE so the camera can resume"
        conn = (
            ftp.transfercmd("STOR DSC_0001.JPG", rest=offset)
            if verb == "REST"
            else ftp.transfercmd("APPE DSC_0001.JPG")
        )
        conn.sendall(frame[offset:])
        conn.close()
        assert ftp.voidresp().startswith("226")
        assert ftp.size("DSC_0001.JPG") == len(frame)
    [photo] = [p for p in box.photos() if p["username"] == user]
    assert photo["sha256"] == sha(frame)
    assert Path(photo["stored_path"]).read_bytes() == frame


def test_a_cut_then_resumed_upload_is_not_counted_as_a_rejection(box: BoxProcess) -> None:
    # A spurious cut (a TLS 1.3 reset, a WiFi blip) followed by a successful resume is one frame
    # with a resumed transfer: the diagnostic stays, the camera's error count does not grow.
    user, password = box.new_key(camera="resumer")
    frame = jpeg_bytes(2000, 1500, seed=104)
    rejected_before = box.status()["queue"]["rejections"]
    with box.ftp(user, password) as ftp:
        half_upload(ftp, "DSC_0002.JPG", frame, how="fin")
        with pytest.raises(ftplib.error_temp):
            ftp.voidresp()
        assert box.status()["queue"]["rejections"] == rejected_before + 1, "a cut counts while unresolved"
        offset = ftp.size("DSC_0002.JPG")
        conn = ftp.transfercmd("STOR DSC_0002.JPG", rest=offset)
        conn.sendall(frame[offset:])
        conn.close()
        assert ftp.voidresp().startswith("226")
    [photo] = [p for p in box.photos() if p["username"] == user]
    [row] = [r for r in box.rejections() if r["username"] == user]
    assert row["resumed_photo_id"] == photo["id"]
    assert box.status()["queue"]["rejections"] == rejected_before
    [camera] = [c for c in box.cli("cameras") if c["username"] == user]
    assert camera["errors"] == 0, camera
    assert "completed by a resume" in box.log


def test_abor_mid_transfer(box: BoxProcess) -> None:
    user, password = box.new_key(camera="abort")
    frame = jpeg_bytes(1600, 1200, seed=102)
    with box.ftp(user, password) as ftp:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR IMG_ABOR.JPG")
        conn.sendall(frame[: len(frame) // 3])
        time.sleep(0.2)
        ftp.putcmd("ABOR")
        replies = {ftp.getline()[:3], ftp.getline()[:3]}
        conn.close()
        assert "226" in replies or "225" in replies
        assert "426" in replies
        assert ftp.sendcmd("NOOP").startswith("200"), "the session survives an ABOR"
    assert not [p for p in box.photos() if p["username"] == user]
    wait_for_rejection(box, "IMG_ABOR.JPG")


def test_control_connection_dropped_mid_transfer(box: BoxProcess) -> None:
    user, password = box.new_key(camera="dropped")
    frame = jpeg_bytes(1600, 1200, seed=103)
    ftp = box.ftp(user, password)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR IMG_DROP.JPG")
    conn.sendall(frame[: len(frame) // 2])
    ftp.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ftp.sock.close()  # the camera's WiFi vanished: control connection reset
    ftp.file.close()
    wait_for_rejection(box, "IMG_DROP.JPG")
    conn.close()
    assert not [p for p in box.photos() if p["username"] == user]
    with box.ftp(user, password) as again:
        offset = again.size("IMG_DROP.JPG")
        assert offset is not None and 0 < offset <= len(frame) // 2, "bytes that arrived are kept"
        conn = again.transfercmd("STOR IMG_DROP.JPG", rest=offset)
        conn.sendall(frame[offset:])
        conn.close()
        assert again.voidresp().startswith("226")
    [photo] = [p for p in box.photos() if p["username"] == user]
    assert photo["sha256"] == sha(frame)


def test_data_channel_cut_after_all_bytes_is_fine(box: BoxProcess) -> None:
    """An RST right after the last byte still delivers a whole file: structure decides."""
    user, password = box.new_key(camera="rst-at-end")
    frame = jpeg_bytes(seed=104)
    with box.ftp(user, password) as ftp:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR whole.jpg")
        conn.sendall(frame)
        conn.shutdown(socket.SHUT_WR)
        time.sleep(0.3)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        assert ftp.voidresp().startswith("226")
    assert [p["sha256"] for p in box.photos() if p["username"] == user] == [sha(frame)]


@pytest.mark.slow
def test_kill_9_during_a_stream_loses_no_acknowledged_frame(fresh_box: BoxProcess) -> None:
    """Four cameras stream; the box is SIGKILLed three times. Every frame that got 226 is in
    the queue exactly once with the right SHA-256 and its file on disk."""
    fresh_box.start()
    event = fresh_box.new_event("kill -9")
    keys = [fresh_box.new_key(event, camera=f"cam{i}") for i in range(4)]
    pool = [jpeg_bytes(1600, 1067, seed=200 + i) for i in range(4)]
    acknowledged: dict[str, str] = {}
    lock = threading.Lock()
    rng = random.Random(7)

    def camera(i: int, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            try:
                with fresh_box.ftp(*keys[i], timeout=5) as ftp:
                    while not stop.is_set():
                        n += 1
                        data = pool[i] + f"cam{i}-{n}".encode()  # bytes after EOI: unique, still valid
                        name = f"IMG_{n % 10000:04d}.JPG"
                        reply = store(ftp, name, data)
                        if reply.startswith("226"):
                            with lock:
                                acknowledged[sha(data)] = name
            except (OSError, EOFError, ftplib.Error):
                time.sleep(0.05)  # the box is down: retry like a camera

    for _ in range(3):
        stop = threading.Event()
        threads = [threading.Thread(target=camera, args=(i, stop)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(1.5, 3.0))
        fresh_box.kill9()
        stop.set()
        for t in threads:
            t.join(20)
        fresh_box.start()
    fresh_box.stop()
    photos = fresh_box.photos(event)
    by_sha: dict[str, int] = {}
    for photo in photos:
        by_sha[photo["sha256"]] = by_sha.get(photo["sha256"], 0) + 1
        assert sha(Path(photo["stored_path"]).read_bytes()) == photo["sha256"]
    assert len(acknowledged) > 20, "the stream should have delivered frames between kills"
    missing = set(acknowledged) - set(by_sha)
    assert not missing, f"{len(missing)} acknowledged frames lost"
    assert all(count == 1 for count in by_sha.values())
