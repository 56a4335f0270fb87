"""Cameras' FTP dialogues against a real box: every quirk a Canon, Nikon or Sony client uses,
and what lands in the queue (content hash, attribution, metadata)."""

from __future__ import annotations

import ftplib
import hashlib
import shutil
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from tests.boxproc import BoxProcess, store
from tests.conftest import jpeg_bytes


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def iso_bmff(brand: bytes, payload: bytes) -> bytes:
    ftyp = struct.pack(">I4s4sI4s", 20, b"ftyp", brand, 0, brand)
    mdat = struct.pack(">I4s", 8 + len(payload), b"mdat") + payload
    return ftyp + mdat


def test_upload_is_queued_with_hash_attribution_and_metadata(box: BoxProcess) -> None:
    event = box.cli("event", "create", "Wedding", "--function", "ceremony")["code"]  # declared first
    user, password = box.new_key(event, camera="Canon R5 #1", function="ceremony")
    frame = jpeg_bytes(1200, 800, seed=1, exif=True)
    with box.ftp(user, password) as ftp:
        reply = store(ftp, "IMG_0001.JPG", frame)
    assert reply.startswith("226")
    [photo] = box.photos(event)
    assert photo["sha256"] == sha(frame)
    assert photo["size"] == len(frame)
    assert (photo["original_name"], photo["camera"], photo["function"]) == (
        "IMG_0001.JPG",
        "Canon R5 #1",
        "ceremony",
    )
    assert photo["state"] == "queued"
    assert photo["kind"] == "jpeg" and photo["searchable"] is True
    assert photo["capture_time"] == "2026-06-13T15:42:07"
    assert photo["body_serial"] == "012345678901"
    assert photo["orientation"] == 6
    assert (photo["width"], photo["height"]) == (1200, 800)
    assert (photo["make"], photo["model"]) == ("Canon", "Canon EOS R5")
    stored = Path(photo["stored_path"])
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == photo["sha256"]
    assert not stored.stat().st_mode & 0o222, "stored photos are read-only"


def test_canon_dialogue_probe_and_card_layout(box: BoxProcess) -> None:
    """Canon WFT: MKD+RMD probe, then one MKD per level of DCIM/100EOSR5, SIZE, LIST."""
    user, password = box.new_key(camera="canon")
    frame = jpeg_bytes(seed=2)
    with box.ftp(user, password) as ftp:
        assert ftp.sendcmd("SYST").startswith("215")
        assert "UTF8" in ftp.sendcmd("FEAT") or ftp.sendcmd("FEAT").startswith("211")
        assert ftp.mkd("canon_test") == "/canon_test"
        assert ftp.rmd("canon_test").startswith("250")
        assert ftp.mkd("DCIM").startswith("/DCIM")
        assert ftp.mkd("DCIM").startswith("/DCIM"), "MKD of an existing folder succeeds"
        ftp.cwd("DCIM")
        ftp.mkd("100EOSR5")
        ftp.cwd("100EOSR5")
        assert ftp.pwd() == "/DCIM/100EOSR5"
        ftp.voidcmd("TYPE I")
        store(ftp, "IMG_0001.CR3.JPG", frame)
        assert ftp.size("IMG_0001.CR3.JPG") == len(frame)
        assert ftp.sendcmd("MDTM IMG_0001.CR3.JPG").startswith("213")
        assert "IMG_0001.CR3.JPG" in ftp.nlst()
        facts = dict(ftp.mlsd(facts=["size"]))
        assert facts["IMG_0001.CR3.JPG"]["size"] == str(len(frame))
        lines: list[str] = []
        ftp.retrlines("LIST", lines.append)
        assert any("IMG_0001.CR3.JPG" in line for line in lines)
        assert ftp.sendcmd("NOOP").startswith("200")
        ftp.cwd("/")
        assert ftp.pwd() == "/"
    [photo] = [p for p in box.photos() if p["username"] == user]
    assert photo["ftp_path"] == "/DCIM/100EOSR5/IMG_0001.CR3.JPG"


def test_nested_mkd_creates_parents(box: BoxProcess) -> None:
    user, password = box.new_key(camera="nikon")
    with box.ftp(user, password) as ftp:
        assert ftp.mkd("a/b/c") == "/a/b/c"
        ftp.cwd("/a/b/c")
        store(ftp, "DSC_0001.JPG", jpeg_bytes(seed=3))
    assert (box.jail(user) / "a" / "b" / "c" / "DSC_0001.JPG").is_file()


def test_passive_and_extended_passive(box: BoxProcess) -> None:
    user, password = box.new_key(camera="sony")
    with box.ftp(user, password) as ftp:
        ftp.af = __import__("socket").AF_INET6  # makes ftplib use EPSV
        store(ftp, "DSC00001.JPG", jpeg_bytes(seed=4))
        ftp.af = __import__("socket").AF_INET
        ftp.set_pasv(True)
        store(ftp, "DSC00002.JPG", jpeg_bytes(seed=5))
        low, high = (int(p) for p in box.info["passive_ports"].split("-"))
        host, port = ftplib.parse227(ftp.sendcmd("PASV"))
        assert low <= port <= high
        assert host == "127.0.0.1"
    assert len([p for p in box.photos() if p["username"] == user]) == 2


def test_dele_and_rmd_never_lose_a_queued_photo(box: BoxProcess) -> None:
    user, password = box.new_key(camera="deleter")
    frame = jpeg_bytes(seed=6)
    with box.ftp(user, password) as ftp:
        ftp.mkd("X")
        store(ftp, "X/IMG_1.JPG", frame)
        assert ftp.delete("X/IMG_1.JPG").startswith("250")
        assert ftp.rmd("X").startswith("250")
    [photo] = [p for p in box.photos() if p["username"] == user]
    assert Path(photo["stored_path"]).read_bytes() == frame


def test_rename_after_upload_is_followed(box: BoxProcess) -> None:
    user, password = box.new_key(camera="renamer")
    with box.ftp(user, password) as ftp:
        store(ftp, "upload.tmp", jpeg_bytes(seed=7))
        ftp.rename("upload.tmp", "DSC_0042.JPG")
        assert "DSC_0042.JPG" in ftp.nlst()
    [photo] = [p for p in box.photos() if p["username"] == user]
    assert (photo["original_name"], photo["ftp_path"]) == ("DSC_0042.JPG", "/DSC_0042.JPG")
    assert photo["kind"] == "jpeg", "the format is read from the content, not the name"


def test_stou_stores_under_a_unique_name(box: BoxProcess) -> None:
    user, password = box.new_key(camera="stou")
    with box.ftp(user, password) as ftp:
        ftp.voidcmd("TYPE I")
        conn, _ = ftp.ntransfercmd("STOU")
        conn.sendall(jpeg_bytes(seed=8))
        conn.close()
        assert ftp.voidresp().startswith("226")
        assert len(ftp.nlst()) == 1
    assert len([p for p in box.photos() if p["username"] == user]) == 1


def test_same_name_new_content_keeps_both_same_content_is_one(box: BoxProcess) -> None:
    """Two bodies with the same counter, or a counter past 9999: both frames are kept.
    A retry of the same bytes is the same photo."""
    event = box.new_event()
    user, password = box.new_key(event, camera="body-a")
    first, second = jpeg_bytes(seed=9), jpeg_bytes(seed=10)
    with box.ftp(user, password) as ftp:
        r1 = store(ftp, "IMG_0001.JPG", first)
        r2 = store(ftp, "IMG_0001.JPG", second)
        r3 = store(ftp, "IMG_0001.JPG", second)
    assert r2 == r3 != r1
    photos = box.photos(event)
    assert sorted(p["sha256"] for p in photos) == sorted([sha(first), sha(second)])


def test_two_sessions_upload_the_same_name_at_once(box: BoxProcess) -> None:
    event = box.new_event()
    keys = [box.new_key(event, camera=f"body-{i}") for i in range(2)]
    frames = [jpeg_bytes(2400, 1600, seed=20 + i) for i in range(2)]
    replies: list[str] = []
    barrier = threading.Barrier(2)

    def upload(i: int) -> None:
        with box.ftp(*keys[i]) as ftp:
            barrier.wait()
            replies.append(store(ftp, "IMG_7777.JPG", frames[i]))

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r.startswith("226") for r in replies) and len(replies) == 2
    assert sorted(p["sha256"] for p in box.photos(event)) == sorted(sha(f) for f in frames)


def test_other_formats_are_stored_but_not_searchable(box: BoxProcess) -> None:
    user, password = box.new_key(camera="video")
    sidecar = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'
    movie = iso_bmff(b"qt  ", b"\x00" * 5000)
    with box.ftp(user, password) as ftp:
        store(ftp, "DSC_0001.XMP", sidecar)
        store(ftp, "C0001.MOV", movie)
    photos = {p["original_name"]: p for p in box.photos() if p["username"] == user}
    assert (photos["DSC_0001.XMP"]["kind"], photos["DSC_0001.XMP"]["searchable"]) == ("other", False)
    assert (photos["C0001.MOV"]["kind"], photos["C0001.MOV"]["searchable"]) == ("video", False)


def test_corrupt_video_container_is_rejected(box: BoxProcess) -> None:
    user, password = box.new_key(camera="video2")
    movie = iso_bmff(b"qt  ", b"\x00" * 5000)[:-100]
    with box.ftp(user, password) as ftp, pytest.raises(ftplib.error_temp, match=r"^451"):
        store(ftp, "C0002.MOV", movie)
    assert not [p for p in box.photos() if p["username"] == user]


def test_session_without_quit_keeps_its_frames(box: BoxProcess) -> None:
    """Nikon transmitters drop the connection when the meter sleeps."""
    user, password = box.new_key(camera="nikon-sleepy")
    frame = jpeg_bytes(seed=30)
    ftp = box.ftp(user, password)
    store(ftp, "DSC_0100.JPG", frame)
    ftp.sock.close()  # no QUIT
    ftp.file.close()
    with box.ftp(user, password) as again:
        assert again.size("DSC_0100.JPG") == len(frame)
    assert [p["sha256"] for p in box.photos() if p["username"] == user] == [sha(frame)]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (apt-get install curl)")
def test_curl_upload_with_created_dirs(box: BoxProcess, tmp_path: Path) -> None:
    user, password = box.new_key(camera="curl")
    frame = jpeg_bytes(seed=31)
    path = tmp_path / "IMG_0009.JPG"
    path.write_bytes(frame)
    subprocess.run(
        [
            "curl",
            "-sS",
            "--ftp-create-dirs",
            "-T",
            str(path),
            "--user",
            f"{user}:{password}",
            f"ftp://127.0.0.1:{box.ftp_port}/DCIM/100NIKON/IMG_0009.JPG",
        ],
        check=True,
        timeout=30,
    )
    [photo] = [p for p in box.photos() if p["username"] == user]
    assert photo["ftp_path"] == "/DCIM/100NIKON/IMG_0009.JPG" and photo["sha256"] == sha(frame)


@pytest.mark.skipif(shutil.which("lftp") is None, reason="lftp is not installed (apt-get install lftp)")
def test_lftp_mirror_of_a_card(box: BoxProcess, tmp_path: Path) -> None:
    user, password = box.new_key(camera="lftp")
    card = tmp_path / "card" / "DCIM" / "101MSDCF"
    card.mkdir(parents=True)
    frames = {f"DSC0{i:04d}.JPG": jpeg_bytes(seed=40 + i) for i in range(3)}
    for name, data in frames.items():
        (card / name).write_bytes(data)
    script = (
        "set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 20; "
        f"open -u {user},{password} -p {box.ftp_port} 127.0.0.1; "
        f"mirror -R {tmp_path / 'card'} /; bye"
    )
    subprocess.run(["lftp", "-c", script], check=True, timeout=60)
    got = {p["original_name"]: p["sha256"] for p in box.photos() if p["username"] == user}
    assert got == {name: sha(data) for name, data in frames.items()}


def test_ascii_type_upload_is_stored_byte_exact(box: BoxProcess) -> None:
    """A camera left in TYPE A must not get its CRLF bytes rewritten (vsftpd's default too)."""
    user, password = box.new_key(camera="ascii")
    frame = jpeg_bytes(seed=50) + b"\r\n\r\n"
    assert b"\r\n" in frame
    with box.ftp(user, password) as ftp:
        ftp.voidcmd("TYPE A")
        conn = ftp.transfercmd("STOR ascii.jpg")
        conn.sendall(frame)
        conn.close()
        assert ftp.voidresp().startswith("226")
        assert ftp.size("ascii.jpg") == len(frame)
    [photo] = [p for p in box.photos() if p["username"] == user]
    assert photo["sha256"] == sha(frame)
