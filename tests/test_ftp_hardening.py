"""A hostile neighbour on the venue LAN: pre-login floods, file-handle exhaustion, password
guessing across keys and connections, MFMT games with partials, oversize uploads, terminal
escapes in file names and log floods from banned addresses. Every test talks to a real box over
loopback (127.0.0.0/8 source addresses stand in for the LAN's hosts)."""

from __future__ import annotations

import contextlib
import ftplib
import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import StorageSettings
from appliance.ingest.janitor import Janitor
from appliance.layout import Layout
from tests.boxproc import BoxProcess, make_box, store
from tests.conftest import jpeg_bytes


@contextlib.contextmanager
def running(tmp_path: Path, **settings: str) -> Iterator[BoxProcess]:
    box = make_box(tmp_path / "data", **settings).start()
    try:
        yield box
    finally:
        box.stop()


def connect_from(box: BoxProcess, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    """A raw control connection from ``source`` (any 127.x.y.z address is a host of its own)."""
    return socket.create_connection(("127.0.0.1", box.ftp_port), timeout=timeout, source_address=(source, 0))


def read_reply(sock: socket.socket) -> str:
    """One reply line, or "" when the box closed (or reset) the connection."""
    data = b""
    try:
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(1)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data.decode(errors="replace")


def is_closed(sock: socket.socket) -> bool:
    """True when the box has closed this socket (whatever it said before that)."""
    sock.setblocking(False)
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def upload(box: BoxProcess, user: str, password: str, name: str, data: bytes) -> str:
    with box.ftp(user, password, timeout=10) as ftp:
        return store(ftp, name, data)


def corrupt_jpeg(seed: int) -> bytes:
    whole = jpeg_bytes(seed=seed)
    return whole[: len(whole) // 2]


def quarantined(box: BoxProcess) -> list[Path]:
    return sorted(p for p in (box.data / "quarantine").rglob("*") if p.is_file())


# --- 1. pre-login connections


def test_pre_login_flood_does_not_keep_a_camera_out(tmp_path: Path) -> None:
    with running(tmp_path) as box:
        user, password = box.new_key(camera="flooded")
        flood: list[socket.socket] = []
        try:
            for host in range(10, 30):
                for _ in range(15):
                    with contextlib.suppress(OSError):
                        flood.append(connect_from(box, f"127.0.0.{host}", timeout=5))
            assert len(flood) == 300
            time.sleep(0.5)
            still_open = sum(1 for sock in flood if not is_closed(sock))
            assert still_open <= 32, f"{still_open} pre-login connections kept"
            assert upload(box, user, password, "IMG_0001.JPG", jpeg_bytes(seed=701)).startswith("226")
        finally:
            for sock in flood:
                sock.close()


def test_pre_login_connection_is_closed_at_the_login_deadline(tmp_path: Path) -> None:
    with running(tmp_path, ftp__login_timeout="3") as box:
        with connect_from(box, "127.0.0.7") as sock:
            assert read_reply(sock).startswith("220")
            started = time.monotonic()
            replies = []
            while time.monotonic() - started < 8:
                with contextlib.suppress(OSError):
                    sock.sendall(b"NOOP\r\n")
                reply = read_reply(sock)
                if not reply:
                    break
                replies.append(reply)
                time.sleep(1)
            took = time.monotonic() - started
        assert any(r.startswith("421") for r in replies), replies
        assert took < 6, f"closed after {took:.1f} s, NOOP kept it open"


# --- 2. out of file handles


def test_listener_survives_running_out_of_file_handles(tmp_path: Path) -> None:
    with running(tmp_path) as box:
        user, password = box.new_key(camera="fds")
        assert box.proc is not None
        pid = box.proc.pid
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 16, hard))  # the soft limit counts
        held: list[socket.socket] = []
        try:
            for host in range(40, 50):
                for _ in range(4):
                    held.append(connect_from(box, f"127.0.0.{host}", timeout=5))
            time.sleep(1.5)
            assert box.proc.poll() is None, box.log[-3000:]
        finally:
            for sock in held:
                sock.close()
        time.sleep(1.5)
        assert box.proc.poll() is None, box.log[-3000:]
        assert upload(box, user, password, "IMG_0002.JPG", jpeg_bytes(seed=702)).startswith("226")
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        warnings = [line for line in box.log.splitlines() if "file handles" in line]
        assert 1 <= len(warnings) <= 4, warnings
        assert "Traceback" not in box.log, box.log[-3000:]


# --- 3. failure scores


def test_good_login_with_another_key_does_not_clear_the_score(tmp_path: Path) -> None:
    with running(tmp_path, ftp__ban_threshold="4", ftp__ban_time="60") as box:
        event = box.new_event()
        key_a, _ = box.new_key(event, camera="a")
        key_b, password_b = box.new_key(event, camera="b")
        replies = []
        for attempt in ("A", "A", "B", "A", "B", "A"):
            client = ftplib.FTP(timeout=10)
            try:
                client.connect("127.0.0.1", box.ftp_port)
                if attempt == "B":
                    client.login(key_b, password_b)
                    replies.append("230")
                else:
                    client.login(key_a, "wrong")
                    replies.append("230?!")
            except (ftplib.error_perm, ftplib.error_temp) as exc:
                replies.append(str(exc)[:3])
            except (EOFError, ConnectionError):
                replies.append("closed")
            finally:
                client.close()
        assert replies == ["530", "530", "230", "530", "230", "421"], replies


def test_connections_opened_before_a_ban_stop_at_the_threshold(tmp_path: Path) -> None:
    with running(tmp_path, ftp__ban_threshold="4", ftp__ban_time="60") as box:
        user, _ = box.new_key(camera="guessed")
        conns = [connect_from(box, "127.0.0.8") for _ in range(6)]
        try:
            for sock in conns:
                assert read_reply(sock).startswith("220")
            guesses_answered = 0
            refused = 0
            alive = list(conns)
            for _ in range(6):
                if not alive:
                    break
                for sock in alive:
                    with contextlib.suppress(OSError):
                        sock.sendall(f"USER {user}\r\nPASS wrong\r\n".encode())
                still = []
                for sock in alive:
                    replies = [read_reply(sock), read_reply(sock)]  # to USER, to PASS
                    if replies[1].startswith("530"):
                        guesses_answered += 1
                        still.append(sock)
                    elif any(r.startswith("421") for r in replies):
                        refused += 1
                        assert read_reply(sock) == "", "closed after the 421"
                alive = still
            assert guesses_answered <= 3, f"{guesses_answered} wrong passwords answered with 530"
            assert not alive, "every connection of the banned address is closed"
            assert refused == 6
        finally:
            for sock in conns:
                sock.close()


# --- 4. MFMT on a rejected partial


def test_mfmt_on_a_partial_changes_neither_its_quarantine_copy_nor_the_janitors_clock(
    tmp_path: Path,
) -> None:
    with running(tmp_path) as box:
        user, password = box.new_key(camera="timewarp")
        with box.ftp(user, password) as ftp:
            with pytest.raises(ftplib.error_temp, match=r"^451"):
                store(ftp, "IMG_0003.JPG", corrupt_jpeg(703))
            [copy] = quarantined(box)
            partial = box.jail(user) / "IMG_0003.JPG"
            assert not os.path.samefile(copy, partial), "the quarantine copy is a file of its own"
            before = copy.stat().st_mtime
            ftp.sendcmd("MFMT 19700101000000 IMG_0003.JPG")
            assert copy.stat().st_mtime == before
            assert partial.stat().st_mtime > time.time() - 3600
            ftp.sendcmd("MFMT 20990101000000 IMG_0003.JPG")
            assert copy.stat().st_mtime == before
    layout = Layout(box.data)
    janitor = Janitor(layout, store=None, settings=StorageSettings(partial_hours=24, quarantine_days=7))  # type: ignore[arg-type]
    assert janitor.sweep() == 0, "nothing is old yet"
    assert partial.exists() and copy.exists()
    assert janitor.sweep(now=time.time() + 25 * 3600) == 1, "the partial goes after partial_hours"
    assert not partial.exists() and copy.exists()
    assert janitor.sweep(now=time.time() + 8 * 86400) == 1, "the copy goes after quarantine_days"


# --- 5. oversize upload


def test_upload_stopped_at_the_size_limit_leaves_nothing_behind(tmp_path: Path) -> None:
    with running(tmp_path, ftp__max_file_size_mb="1") as box:
        user, password = box.new_key(camera="huge")
        with box.ftp(user, password) as ftp:
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("STOR BIG.JPG")
            with contextlib.suppress(OSError):
                conn.sendall(os.urandom(3 << 20))
            conn.close()
            with pytest.raises(ftplib.error_perm, match=r"^552"):
                ftp.voidresp()
            assert "BIG.JPG" not in ftp.nlst()
        assert not (box.jail(user) / "BIG.JPG").exists()
        assert quarantined(box) == []
        assert [p for p in (box.data / "tmp").iterdir() if p.stat().st_size] == []
        [rejection] = box.rejections()
        assert "size limit" in rejection["reason"]


# --- 6. control characters in camera-supplied names


def test_control_characters_in_file_names_are_escaped_in_the_log(tmp_path: Path) -> None:
    with running(tmp_path) as box:
        user, password = box.new_key(camera="escapist")
        good = "IMG_\x1b[31mRED\x07.JPG"
        bad = "IMG_\x1b]0;owned\x9b2J\x7f.JPG"
        with box.ftp(user, password) as ftp:
            assert store(ftp, good, jpeg_bytes(seed=706)).startswith("226")
            with pytest.raises(ftplib.error_temp, match=r"^451"):
                store(ftp, bad, corrupt_jpeg(707))
        client = ftplib.FTP(timeout=10)
        client.connect("127.0.0.1", box.ftp_port)
        with contextlib.suppress(ftplib.Error):
            client.login("\x1b[2Jnobody", "x")
        client.close()
        time.sleep(0.3)
        log = box.log
        assert "IMG_\\x1b[31mRED\\x07.JPG" in log, log[-2000:]
        assert "\\x9b2J\\x7f.JPG" in log, log[-2000:]
        for char in ("\x1b", "\x07", "\x9b", "\x7f"):
            assert char not in log, f"raw {char!r} in the log"


# --- 7. banned connects


def test_each_refused_connect_from_a_banned_address_is_one_line_at_most(tmp_path: Path) -> None:
    # from an address of its own: the box's health probe connects from 127.0.0.1
    attacker = "127.0.0.9"
    with running(tmp_path, ftp__ban_threshold="2", ftp__ban_time="60") as box:
        client = ftplib.FTP(timeout=10, source_address=(attacker, 0))
        client.connect("127.0.0.1", box.ftp_port)
        with pytest.raises(ftplib.error_temp, match=r"^421"):
            client.login("ghost", "x")  # an unknown user scores 2: banned
        client.close()
        time.sleep(0.3)
        before = len(box.log.splitlines())
        for _ in range(8):
            with connect_from(box, attacker) as sock:
                assert read_reply(sock).startswith("421")
        time.sleep(0.5)
        added = box.log.splitlines()[before:]
        assert "Traceback" not in "\n".join(added), "\n".join(added)
        about = [line for line in added if attacker in line]
        assert 1 <= len(about) <= 2, added
