"""Hostile and unlucky conditions at the FTP door: wrong passwords and bans, path escapes,
revoked keys, session caps, a full disk, an exhausted passive range, oversize files."""

from __future__ import annotations

import contextlib
import ftplib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.boxproc import BoxProcess, make_box, store
from tests.conftest import jpeg_bytes


def login_fails(box: BoxProcess, user: str, password: str) -> str:
    client = ftplib.FTP(timeout=10)
    try:
        client.connect("127.0.0.1", box.ftp_port)
        client.login(user, password)
    except (ftplib.error_perm, ftplib.error_temp) as exc:
        return str(exc)
    except (EOFError, ConnectionError) as exc:
        return f"disconnected: {exc!r}"
    finally:
        client.close()
    raise AssertionError("login unexpectedly succeeded")


def greeting(box: BoxProcess) -> str:
    """The server's first line; a refusal can also arrive as a reset (the server closes a socket
    it is refusing as soon as it has written the 421), reported as "reset"."""
    with socket.create_connection(("127.0.0.1", box.ftp_port), timeout=10) as sock:
        try:
            return sock.recv(200).decode() or "reset"
        except ConnectionResetError:
            return "reset"


def test_wrong_password_is_refused_and_not_logged(box: BoxProcess) -> None:
    user, password = box.new_key(camera="pw")
    assert login_fails(box, user, password + "x").startswith("530")
    assert login_fails(box, "nobody-here", "whatever").startswith("530")
    assert password not in box.log and password + "x" not in box.log
    with box.ftp(user, password) as ftp:
        assert ftp.pwd() == "/"


def test_repeated_failures_ban_the_ip_for_a_growing_time(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", ftp__ban_threshold="3", ftp__ban_time="2").start()
    try:
        user, password = box.new_key(camera="ban")
        replies = [login_fails(box, user, "wrong") for _ in range(3)]
        assert replies[0].startswith("530") and replies[1].startswith("530")
        assert replies[2].startswith("421") and "banned" in replies[2]
        assert greeting(box).startswith("421"), "a banned IP is turned away at connect"
        assert login_fails(box, user, password).startswith(("421", "disconnected"))
        time.sleep(2.2)
        with box.ftp(user, password) as ftp:  # the ban expired
            assert ftp.pwd() == "/"
        for _ in range(3):
            login_fails(box, user, "wrong")
        time.sleep(2.2)
        assert greeting(box).startswith("421"), "the second ban lasts twice as long"
        status = box.status()
        assert status["ftp"]["counters"]["banned"] == 2
    finally:
        box.stop()


def test_unknown_users_score_higher_than_wrong_passwords(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", ftp__ban_threshold="4").start()
    try:
        assert login_fails(box, "ghost1", "x").startswith("530")
        assert login_fails(box, "ghost2", "x").startswith("421")
    finally:
        box.stop()


@pytest.mark.parametrize(
    "path",
    [
        "../../escape.jpg",
        "/../../../escape.jpg",
        "..%2f..%2fescape.jpg",
        "a/../../../../escape.jpg",
        "\u2025/escape.jpg",
    ],
)
def test_paths_never_leave_the_jail(box: BoxProcess, path: str) -> None:
    user, password = box.new_key(camera="escaper")
    jail = box.jail(user).resolve()
    with box.ftp(user, password) as ftp:
        ftp.cwd("/../../..")
        assert ftp.pwd() == "/"
        with contextlib.suppress(ftplib.error_perm):
            store(ftp, path, jpeg_bytes(seed=300))
    jails = (box.data / "ftp").resolve()
    found = list(box.data.parent.rglob("escape.jpg"))
    outside = [p for p in found if p.resolve().parent.parent != jails]
    assert not outside, f"written outside the jail roots: {outside}"
    for photo in box.photos():
        if photo["username"] == user:
            assert photo["ftp_path"].startswith("/")
            assert (jail / photo["ftp_path"].lstrip("/")).resolve().is_relative_to(jail)


def test_symlink_inside_the_jail_cannot_be_followed_out(box: BoxProcess, tmp_path: Path) -> None:
    user, password = box.new_key(camera="linker")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    box.jail(user).mkdir(parents=True, exist_ok=True)
    os.symlink(outside, box.jail(user) / "door")
    with box.ftp(user, password) as ftp:
        with pytest.raises(ftplib.error_perm):
            ftp.cwd("door")
        with pytest.raises(ftplib.error_perm):
            store(ftp, "door/planted.jpg", jpeg_bytes(seed=301))
        with pytest.raises(ftplib.error_perm):
            ftp.size("door/secret.txt")
        with pytest.raises(ftplib.error_perm):
            ftp.delete("door/secret.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_nul_and_huge_arguments_are_refused_and_the_session_survives(box: BoxProcess) -> None:
    user, password = box.new_key(camera="fuzz")
    ftp = box.ftp(user, password)
    try:
        for bad in ("MKD a\x00b", "CWD " + "x" * 1500, "SIZE \x00", "MKD " + "\u00e9" * 600):
            with pytest.raises(ftplib.error_perm, match=r"^5"):
                ftp.sendcmd(bad)
        assert ftp.sendcmd("NOOP").startswith("200")
        ftp.putcmd("CWD " + "x" * 5000)
        assert ftp.getline().startswith("500 Command too long"), "a flood line is refused"
    finally:
        ftp.close()


def test_revoking_a_key_ends_its_sessions_and_logins(box: BoxProcess) -> None:
    user, password = box.new_key(camera="revoked")
    ftp = box.ftp(user, password)
    store(ftp, "before.jpg", jpeg_bytes(seed=302))
    result = box.cli("key", "revoke", user)
    assert result["sessions_cut"] == 1 and result["revoked_at"]
    with pytest.raises((EOFError, OSError, ftplib.Error)):
        ftp.sendcmd("NOOP")
    ftp.close()
    assert login_fails(box, user, password).startswith("530")
    assert [p["original_name"] for p in box.photos() if p["username"] == user] == ["before.jpg"]


def test_sessions_per_key_are_capped(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", ftp__max_sessions_per_key="2").start()
    try:
        user, password = box.new_key(camera="greedy")
        first, second = box.ftp(user, password), box.ftp(user, password)
        assert login_fails(box, user, password).startswith("421")
        first.quit()
        with box.ftp(user, password) as third:
            assert third.pwd() == "/"
        second.quit()
    finally:
        box.stop()


def test_session_cap_holds_when_logins_race(tmp_path: Path) -> None:
    """Logins of one key arriving together: the cap was checked before the password and counted
    after the 230, so every login that passed the check while another was hashing got in (CI saw
    a third session under a cap of two)."""
    box = make_box(tmp_path / "data", ftp__max_sessions_per_key="2").start()
    held: list[ftplib.FTP] = []
    refused: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def login() -> None:
        client = ftplib.FTP(timeout=20)
        client.connect("127.0.0.1", box.ftp_port)
        start.wait()
        try:
            client.login(user, password)
        except (ftplib.error_temp, EOFError, ConnectionError) as exc:
            client.close()
            with lock:
                refused.append(str(exc))
            return
        with lock:
            held.append(client)

    try:
        user, password = box.new_key(camera="racing")
        threads = [threading.Thread(target=login) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(held) == 2, f"{len(held)} sessions logged in under a cap of 2; refused: {refused}"
        assert len(refused) == 4 and all(r.startswith("421") for r in refused if r), refused
    finally:
        for client in held:
            client.close()
        box.stop()


def test_disk_reserve_refuses_before_any_byte(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", storage__reserve_mb=str(10**9)).start()
    try:
        user, password = box.new_key(camera="full")
        with box.ftp(user, password) as ftp:
            ftp.voidcmd("TYPE I")
            with pytest.raises(ftplib.error_temp, match=r"^452"):
                ftp.storbinary("STOR full.jpg", __import__("io").BytesIO(jpeg_bytes(seed=303)))
            assert ftp.sendcmd("NOOP").startswith("200")
        assert box.photos() == [] or all(p["username"] != user for p in box.photos())
        assert not list((box.data / "tmp").iterdir())
        assert box.status()["disk"]["accepting_uploads"] is False
    finally:
        box.stop()


def test_oversize_file_is_refused_with_552(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", ftp__max_file_size_mb="1").start()
    try:
        user, password = box.new_key(camera="big")
        big = jpeg_bytes(2400, 1800, seed=304, quality=98)
        assert len(big) > 1 << 20
        with box.ftp(user, password) as ftp:
            ftp.voidcmd("TYPE I")
            conn = ftp.transfercmd("STOR big.jpg")
            with contextlib.suppress(OSError):  # the box may cut the data connection at the limit
                conn.sendall(big)
            conn.close()
            with pytest.raises(ftplib.error_perm, match=r"^552"):
                ftp.voidresp()
        assert all(p["username"] != user for p in box.photos())
    finally:
        box.stop()


def test_passive_range_exhausted_answers_425_never_a_port_outside(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data")
    low = int(box.env["SHUTTERBOX_FTP__PASSIVE_PORTS"].split("-")[0])
    box.env["SHUTTERBOX_FTP__PASSIVE_PORTS"] = f"{low}-{low}"
    box.start()
    try:
        user, password = box.new_key(camera="pasv")
        with box.ftp(user, password) as a, box.ftp(user, password) as b:
            _, port = ftplib.parse227(a.sendcmd("PASV"))
            assert port == low
            with pytest.raises(ftplib.error_temp, match=r"^425"):
                b.sendcmd("PASV")
            with pytest.raises(ftplib.error_temp, match=r"^425"):
                b.sendcmd("EPSV")
            assert b.sendcmd("NOOP").startswith("200")
    finally:
        box.stop()


def test_connections_per_ip_are_capped(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", ftp__max_connections_per_ip="2").start()
    try:
        held = [socket.create_connection(("127.0.0.1", box.ftp_port), timeout=10) for _ in range(2)]
        assert all(sock.recv(100).startswith(b"220") for sock in held)
        assert greeting(box).startswith(("421", "reset"))
        for sock in held:
            sock.close()
        # The server frees a slot when it has handled the close, an instant later; each probe
        # below holds a slot of its own until the server has handled its close too, so the
        # answer that counts is the first 220, not one more probe after it.
        deadline = time.monotonic() + 10
        answer = greeting(box)
        while not answer.startswith("220") and time.monotonic() < deadline:
            time.sleep(0.2)
            answer = greeting(box)
        assert answer.startswith("220"), f"slots free up when connections close: {answer!r}"
    finally:
        box.stop()


def test_camera_cannot_chmod_or_retime_a_landed_photo(box: BoxProcess) -> None:
    user, password = box.new_key(camera="chmodder")
    with box.ftp(user, password) as ftp:
        store(ftp, "IMG_1.JPG", jpeg_bytes(seed=305))
        with pytest.raises(ftplib.error_perm):
            ftp.sendcmd("SITE CHMOD 666 IMG_1.JPG")
        assert ftp.sendcmd("MFMT 20000101000000 IMG_1.JPG").startswith("213")
    [photo] = [p for p in box.photos() if p["username"] == user]
    stored = Path(photo["stored_path"]).stat()
    assert not stored.st_mode & 0o222, "the stored photo stays read-only"
    assert stored.st_mtime > 946684800 + 86400, "and keeps its own mtime"


def test_tls_required_covers_the_data_channel(tmp_path: Path) -> None:
    box = make_box(tmp_path / "data", ftp__tls_required="true").start()
    try:
        user, password = box.new_key(camera="tls-only")
        with ftplib.FTP_TLS(timeout=10) as ftp:
            ftp.connect("127.0.0.1", box.ftp_port)
            ftp.auth()
            ftp.login(user, password)  # ftplib sends PBSZ/PROT only on prot_p()
            with pytest.raises(ftplib.error_perm, match=r"^550 SSL/TLS required on the data channel"):
                store(ftp, "clear.jpg", jpeg_bytes(seed=306))
            ftp.prot_p()
            assert store(ftp, "private.jpg", jpeg_bytes(seed=306)).startswith("226")
    finally:
        box.stop()


def test_concurrent_passive_requests_never_drop_a_session(tmp_path: Path) -> None:
    """Sessions racing for the same passive port: pyftpdlib let the loser's listen() fail with
    EADDRINUSE and dropped that camera's control connection. Every session must survive."""
    box = make_box(tmp_path / "data", ftp__max_connections_per_ip="32")
    low = int(box.env["SHUTTERBOX_FTP__PASSIVE_PORTS"].split("-")[0])
    box.env["SHUTTERBOX_FTP__PASSIVE_PORTS"] = f"{low}-{low + 2}"
    box.start()
    event = box.new_event()
    keys = [box.new_key(event, camera=f"racer{i}") for i in range(8)]
    replies: list[str] = []
    failures: list[BaseException] = []

    def racer(i: int) -> None:
        try:
            with box.ftp(*keys[i]) as ftp:
                for _ in range(100):
                    try:
                        replies.append(ftp.sendcmd("PASV")[:3])
                    except ftplib.error_temp as exc:
                        replies.append(str(exc)[:3])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        box.stop()
    assert not failures, f"sessions dropped: {failures[:3]}"
    assert len(replies) == 8 * 100 and set(replies) <= {"227", "425"} and "227" in replies
